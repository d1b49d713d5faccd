"""`ims init`, `ims models`, `ims prices`, `ims metrics`: the registry from the shell."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from ims_kit.cli import cli


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
    run("init")
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


def test_init_under_a_file_says_the_folder_is_a_file(tmp_path, monkeypatch):
    """IMS_DB whose parent is a file: ims init names that file instead of "File exists"."""
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.setenv("IMS_DB", str(blocker / "sub.db"))
    result = CliRunner().invoke(cli, ["init"])
    assert result.exit_code == 1
    assert f"{blocker} is a file, not a folder" in result.output
    assert blocker.read_text() == "x"


def test_init_never_overwrites_a_file_that_is_not_its_database(tmp_path, monkeypatch):
    """ims init on a garbage file or another program's SQLite file refuses and changes nothing."""
    import sqlite3

    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"garbage" * 100)
    monkeypatch.setenv("IMS_DB", str(garbage))
    result = CliRunner().invoke(cli, ["init"])
    assert result.exit_code == 1 and "not an SQLite database: move it aside" in result.output
    assert garbage.read_bytes() == b"garbage" * 100
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER)")
    monkeypatch.setenv("IMS_DB", str(other))
    result = CliRunner().invoke(cli, ["init"])
    assert result.exit_code == 1 and "another program's SQLite database" in result.output
    with sqlite3.connect(other) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert tables == {"invoices"}
