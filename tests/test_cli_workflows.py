"""`ims run` and `ims workflows` through click's runner, offline on the simulated provider."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from ims_kit.cli import cli

PROSE = "Summarise the history of Rome"
DIGITS = '{"type": "string", "pattern": "^[0-9]+$"}'  # no simulated answer matches it


@pytest.fixture
def digits(tmp_path):
    path = tmp_path / "digits.json"
    path.write_text(DIGITS)
    return str(path)


@pytest.fixture
def ims():
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(cli, list(args), catch_exceptions=False)

    invoke("init")
    return invoke


def test_run_prints_each_state_then_the_answer(ims):
    """`ims run` shows every state as it is entered, then the answer on stdout."""
    result = ims("run", "What is 2+2?", "--provider", "simulated")
    assert result.exit_code == 0
    progress = result.stderr.splitlines()
    states = [line.split(": ")[2].split(" ")[0] for line in progress]
    assert states == ["ANALYZING", "SELECTING_MODEL", "EXECUTING", "VALIDATING", "COMPLETED"]
    assert "(MODEL_SELECTED)  model=" in progress[2]
    assert result.stdout == "4\n"


def test_run_json_gives_the_result_and_history(ims):
    """--json prints the TaskResult with its history, and nothing else."""
    result = ims("run", "What is 2+2?", "--provider", "simulated", "--json")
    data = json.loads(result.stdout)
    assert data["state"] == "COMPLETED" and data["answer"]["text"] == "4"
    assert len(data["history"]) == 5 and result.stderr == ""


def test_run_that_fails_exits_1_with_one_line_of_reason(ims, digits):
    """A FAILED workflow ends the command with status 1 and the reason on one line."""
    result = ims("run", PROSE, "--provider", "simulated", "--schema", digits)
    assert result.exit_code == 1
    last = result.stderr.splitlines()[-1]
    assert last.startswith("Error: workflow ") and "FAILED: execution failed" in last
    assert "INVALID_OUTPUT" in last
    assert "Traceback" not in result.output and result.stdout == ""


def test_run_json_failure_still_prints_the_result(ims, digits):
    """With --json a FAILED result is printed as JSON and the exit status is 1."""
    result = ims("run", PROSE, "--provider", "simulated", "--schema", digits, "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["reason"].startswith("execution failed")


def test_run_validate_json_succeeds_offline(ims):
    """--validate json asks for JSON: the simulated provider answers it, the task completes."""
    result = ims("run", PROSE, "--provider", "simulated", "--validate", "json")
    assert result.exit_code == 0 and json.loads(result.stdout) == {}


def test_run_with_a_schema_file(ims, tmp_path):
    """--schema FILE validates the answer against a JSON schema."""
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps({"type": "integer"}))
    ok = ims("run", "What is 2+2?", "--provider", "simulated", "--schema", str(schema))
    assert ok.exit_code == 0 and ok.stdout == "4\n"
    schema.write_text("{not json")
    bad = ims("run", "What is 2+2?", "--provider", "simulated", "--schema", str(schema))
    assert bad.exit_code == 1 and "is not JSON" in bad.stderr


def test_workflows_lists_filters_and_prints_json(ims, digits):
    """`ims workflows` lists newest first; --state filters; --json gives the summaries."""
    ims("run", "What is 2+2?", "--provider", "simulated")
    ims("run", PROSE, "--provider", "simulated", "--schema", digits)
    table = ims("workflows").stdout.splitlines()
    assert table[0].split() == ["WORKFLOW", "STATE", "UPDATED", "STEPS", "MODEL", "/", "REASON"]
    assert [line.split()[1] for line in table[1:]] == ["FAILED", "COMPLETED"]
    assert "execution failed" in table[1]
    failed = json.loads(ims("workflows", "--state", "failed", "--json").stdout)
    assert [w["state"] for w in failed] == ["FAILED"]
    assert len(json.loads(ims("workflows", "--limit", "1", "--json").stdout)) == 1


def test_workflows_with_none_says_so(ims):
    """An empty listing says how to start a workflow."""
    assert "ims run PROMPT" in ims("workflows", "--state", "FAILED").stdout


def test_workflows_with_an_unknown_state_is_a_one_line_error(ims):
    """A state that does not exist: exit 1 and the known states."""
    result = ims("workflows", "--state", "DONE")
    assert result.exit_code == 1 and "known: IDLE, ANALYZING" in result.stderr


def test_workflows_show_prints_the_history(ims):
    """`ims workflows show ID` prints one line per transition; --json is the workflow's dict."""
    data = json.loads(ims("run", "What is 2+2?", "--provider", "simulated", "--json").stdout)
    wid = data["workflow_id"]
    lines = ims("workflows", "show", wid).stdout.splitlines()
    assert lines[0].startswith(f"workflow {wid}: COMPLETED, 5 transitions")
    assert "START" in lines[1] and "IDLE -> ANALYZING" in lines[1]
    assert "VALIDATING -> COMPLETED" in lines[-1]
    shown = json.loads(ims("workflows", "show", wid, "--json").stdout)
    assert shown["history"] == data["history"] and shown["state"] == "COMPLETED"


def test_workflows_show_of_a_failed_one_prints_the_reason(ims, digits):
    """A FAILED workflow's history ends with its reason."""
    ims("run", PROSE, "--provider", "simulated", "--schema", digits)
    wid = json.loads(ims("workflows", "--json").stdout)[0]["workflow_id"]
    assert ims("workflows", "show", wid).stdout.splitlines()[-1].startswith("reason: execution")


def test_workflows_show_of_an_unknown_id_is_a_one_line_error(ims):
    """An unknown id: exit 1, one line, no traceback, and nothing created."""
    result = ims("workflows", "show", "nope")
    assert result.exit_code == 1
    assert result.stderr == "Error: unknown workflow id 'nope'; `ims workflows` lists them\n"
    assert json.loads(ims("workflows", "--json").stdout) == []
