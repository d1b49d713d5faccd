"""The `ims` command through click's runner, and once as a real subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from ims_kit.cli import cli


@pytest.fixture
def run():
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(cli, list(args), catch_exceptions=False)

    return invoke


def test_init_seeds_and_is_idempotent(run):
    """`ims init` creates and seeds the database; a second run adds nothing."""
    first = run("init", "--json")
    second = run("init", "--json")
    assert first.exit_code == 0 == second.exit_code
    assert json.loads(first.output)["added"] >= 24
    assert json.loads(second.output)["added"] == 0


def test_models_filters_and_prints_json(run):
    """`ims models --vendor --min-context --json` lists matching active models."""
    run("init")
    result = run("models", "--vendor", "Google", "--min-context", "1000000", "--json")
    rows = json.loads(result.output)
    assert rows and all(r["vendor"] == "Google" and r["context_window"] >= 1_000_000 for r in rows)
    table = run("models", "--capability", "vision").output
    assert "model_id" in table.splitlines()[0] and "gpt-4o" in table


def test_models_all_includes_inactive(run):
    """--all shows the inactive Llama rows that the default hides."""
    run("init")
    assert "llama-3.1-8b" not in run("models").output
    assert "llama-3.1-8b" in run("models", "--all").output


def test_models_import_reports_added(run, tmp_path):
    """`ims models import FILE` adds the user's models."""
    path = tmp_path / "mine.json"
    path.write_text(
        json.dumps(
            [
                {
                    "model_id": "mine",
                    "vendor": "Acme",
                    "provider": "openai_compatible",
                    "context_window": 4096,
                }
            ]
        )
    )
    result = run("models", "import", str(path), "--json")
    assert json.loads(result.output)["added"] == ["mine"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["models", "--vendor", "Nope"], "unknown vendor 'Nope'"),
        (["models", "--capability", "telepathy"], "unknown capability 'telepathy'"),
        (["models", "--min-context", "-5"], "non-negative"),
    ],
)
def test_bad_input_is_one_line_and_non_zero(run, args, message):
    """Bad options exit non-zero with one line naming the problem, no traceback."""
    run("init")
    result = CliRunner().invoke(cli, args)
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.output


def test_bad_import_file_changes_nothing(run, tmp_path):
    """A broken import file is refused with its name, and the registry is unchanged."""
    run("init")
    before = json.loads(run("models", "--all", "--json").output)
    bad = tmp_path / "broken.json"
    bad.write_text('{"models": [')
    result = CliRunner().invoke(cli, ["models", "import", str(bad)])
    assert result.exit_code == 1 and "broken.json" in result.output
    assert json.loads(run("models", "--all", "--json").output) == before


def test_metrics_json_has_the_seed_keys(run):
    """`ims metrics --json` prints the registry counters."""
    run("init")
    run("models", "--vendor", "OpenAI")
    figures = json.loads(run("metrics", "--json").output)
    assert figures["total_filter_queries"] == 1
    assert figures["total_models_registered"] >= 24 and "vendor_models:Google" in figures


def test_prices_sync_reports(run):
    """`ims prices sync` says what changed and what genai-prices does not know."""
    run("init")
    report = json.loads(run("prices", "sync", "--json").output)
    assert set(report) == {"changed", "unchanged", "unknown"}
    assert "llama-3.1-8b" in report["unknown"]


def _ims():
    exe = Path(sys.executable).parent / "ims"
    return str(exe) if exe.exists() else shutil.which("ims")


def test_real_subprocess_unknown_database_error_has_no_traceback(tmp_path):
    """As a real process: init works, and a non-database file gives one line and exit 1."""
    env = os.environ | {"IMS_DB": str(tmp_path / "real.db")}
    ok = subprocess.run([_ims(), "init"], env=env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "added" in ok.stdout
    junk = tmp_path / "junk.db"
    junk.write_text("not sqlite" * 100)
    bad = subprocess.run(
        [_ims(), "models"],
        env=env | {"IMS_DB": str(junk)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1
    assert bad.stderr.strip().count("\n") == 0 and "junk.db" in bad.stderr
    assert "Traceback" not in bad.stderr


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


def test_a_database_error_is_one_line(run, monkeypatch):
    """SQLite refusing a write (read-only file, lock held past the timeout) is one line."""
    import sqlite3 as _sqlite3

    run("init")

    def refuse(*args, **kwargs):
        raise _sqlite3.OperationalError("attempt to write a readonly database")

    monkeypatch.setattr("ims_kit.kit.Kit.recommend", refuse)
    result = CliRunner().invoke(cli, ["recommend", "--prompt", "hi"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip() == "Error: database error: attempt to write a readonly database"


def test_a_binary_prompt_file_is_one_line(run, tmp_path):
    """A prompt file that is not text is refused in one line."""
    run("init")
    binary = tmp_path / "blob.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    result = CliRunner().invoke(cli, ["recommend", "--prompt-file", str(binary)])
    assert result.exit_code == 1 and "UTF-8" in result.output
    assert result.output.count("\n") == 1
