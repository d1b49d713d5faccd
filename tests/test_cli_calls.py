"""`ims recommend` and `ims ask`: choosing and calling models from the shell."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from ims_kit.cli import cli


def test_cli_recommend_json(seeded):
    """`ims recommend --strategy performance --min-context 50000 --json` prints the ranking."""
    args = ["--prompt", "hi", "--strategy", "performance", "--min-context", "50000", "--json"]
    result = CliRunner().invoke(cli, ["recommend", *args])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["strategy"] == "performance" and data["candidates"][0]["rank"] == 1
    qualities = [seeded.registry.lookup(c["model_id"]).quality for c in data["candidates"]]
    assert qualities[0] == max(qualities)
    assert all(e["excluded_by"] for e in data["excluded"])


def test_cli_recommend_reads_strategy_from_env_and_filters_vendor(seeded):
    """IMS_STRATEGY=balanced with --vendor Anthropic recommends an Anthropic model."""
    result = CliRunner().invoke(
        cli,
        ["recommend", "--prompt", "Refactor this function ...", "--vendor", "Anthropic", "--json"],
        env={"IMS_STRATEGY": "balanced"},
    )
    data = json.loads(result.output)
    assert data["strategy"] == "balanced"
    assert seeded.registry.lookup(data["model_id"]).vendor == "Anthropic"


def test_cli_recommend_without_a_prompt_is_an_error(seeded):
    """`ims recommend` with no prompt exits non-zero saying how to give one."""
    result = CliRunner().invoke(cli, ["recommend"])
    assert result.exit_code == 2 and "--prompt TEXT or --prompt-file FILE" in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--strategy", "cheapest"], "cheapest"),
        (["--vendor", "Acme"], "unknown vendor 'Acme'"),
        (["--capability", "telepathy"], "unknown capability 'telepathy'"),
        (["--min-context", "-3"], "non-negative"),
        (["--min-context", "ten"], "ten"),
        (["--min-context", "5000000"], "no model satisfies"),
    ],
)
def test_cli_recommend_bad_input_is_one_line(seeded, args, message):
    """Bad options exit non-zero with a short message and no traceback."""
    result = CliRunner().invoke(cli, ["recommend", "--prompt", "hi", *args])
    assert result.exit_code != 0 and message in result.output
    assert "Traceback" not in result.output


def test_ask_offline_with_the_simulated_provider(run):
    """`ims ask --provider simulated --json` answers offline and logs a usage row."""
    run("init")
    data = json.loads(run("ask", "What is 2+2?", "--provider", "simulated", "--json").output)
    assert data["text"] == "4" and data["provider"] == "simulated"
    figures = json.loads(run("metrics", "--json").output)
    assert figures["total_executions"] == 1 and figures["simulated_executions"] == 1
    assert figures["total_cost_usd"] == 0.0 and figures["simulated_cost_usd"] > 0


def test_ask_a_real_model_without_its_key_names_the_variable(run):
    """A real provider without a key is one line naming the variable, never simulated data."""
    run("init")
    result = CliRunner().invoke(cli, ["ask", "hello", "--model", "gpt-4o-mini"])
    assert result.exit_code == 1 and "OPENAI_API_KEY" in result.output
    assert result.output.count("\n") == 1


def test_missing_keys_of_every_candidate_are_all_named(run):
    """A model and its fallback both without keys: the one line names both variables."""
    run("init")
    result = CliRunner().invoke(
        cli, ["ask", "hello", "--model", "claude-haiku-4-5", "--fallback", "gemini-2.5-flash"]
    )
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert "ANTHROPIC_API_KEY" in result.output and "GEMINI_API_KEY" in result.output


def test_ask_announces_a_fallback_on_stderr(run, monkeypatch):
    """Switching models is never silent: stderr says which model failed and why."""
    from ims_kit.providers.simulated import SimulatedProvider

    run("init")
    sim = SimulatedProvider()
    sim.fail_always("gpt-4o-mini", "OVERLOAD")
    monkeypatch.setattr("ims_kit.kit.Kit.provider", lambda self, name: sim)
    result = CliRunner().invoke(
        cli,
        ["ask", "hi", "--model", "gpt-4o-mini", "--fallback", "gpt-4o", "--provider", "simulated"],
    )
    assert result.exit_code == 0
    assert "gpt-4o-mini: OVERLOAD: fallback" in result.stderr
    assert "ims: gpt-4o (simulated)" in result.stderr


def test_a_binary_prompt_file_is_one_line(run, tmp_path):
    """A prompt file that is not text is refused in one line."""
    run("init")
    binary = tmp_path / "blob.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    result = CliRunner().invoke(cli, ["recommend", "--prompt-file", str(binary)])
    assert result.exit_code == 1 and "UTF-8" in result.output
    assert result.output.count("\n") == 1
