"""The SQLite store: path resolution, WAL, migrations and the pinned schema."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest

from ims_kit import db as store
from ims_kit.errors import StoreError
from ims_kit.migrations import migrations as history

SCHEMA = {
    "models": [
        "model_id",
        "vendor",
        "display_name",
        "provider",
        "api_model",
        "base_url",
        "context_window",
        "max_output_tokens",
        "cost_per_mil_in",
        "cost_per_mil_out",
        "capabilities",
        "quality",
        "quality_source",
        "active",
        "price_source",
        "as_of",
        "created",
        "updated",
    ],
    "usage": [
        "id",
        "call_id",
        "ts",
        "session_id",
        "workflow_id",
        "model_id",
        "vendor_id",
        "provider",
        "tokens_in",
        "tokens_out",
        "token_source",
        "cost_per_mil_in",
        "cost_per_mil_out",
        "cost_usd",
        "latency_ms",
        "success",
        "error_kind",
        "attempt",
        "fallback_from",
        "strategy",
        "prompt",
        "response",
        "request_id",
    ],
    "events": ["id", "ts", "kind", "subject", "payload"],
    "circuits": [
        "model_id",
        "state",
        "consecutive_failures",
        "opened_at",
        "last_error_kind",
        "updated",
        "probe_started_at",
        "retry_at",
        "scope",
        "simulated",
    ],
    "workflows": ["workflow_id", "state", "context", "created", "updated"],
    "workflow_transitions": ["id", "workflow_id", "ts", "event", "source", "target", "context"],
}


def _columns(path, table):
    with sqlite3.connect(path) as conn:
        return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]


def test_migrating_an_empty_file_creates_the_pinned_schema(tmp_path):
    """A new file gets exactly the documented tables and columns (the schema is product)."""
    path = tmp_path / "new.db"
    store.open_db(path).close()
    with sqlite3.connect(path) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert set(SCHEMA) <= tables
    for table, columns in SCHEMA.items():
        assert _columns(path, table)[: len(columns)] == columns, table


def test_usage_call_id_is_unique(tmp_path):
    """The usage table refuses a second row with the same call_id."""
    db = store.open_db(tmp_path / "u.db")
    row = "INSERT INTO usage (call_id, ts, model_id, success) VALUES ('c1', 't', 'm', 1)"
    db.execute(row)
    with pytest.raises(sqlite3.IntegrityError):
        db.execute(row)


def test_opening_twice_applies_migrations_once(tmp_path):
    """Reopening an up-to-date file changes nothing and keeps the schema version."""
    path = tmp_path / "twice.db"
    first = store.open_db(path)
    version = store.file_info(first)["schema_version"]
    first.close()
    second = store.open_db(path)
    assert store.file_info(second)["schema_version"] == version >= 1


def test_file_is_in_wal_mode_with_a_busy_timeout(tmp_path):
    """Readers and writers in other processes can share the file."""
    db = store.open_db(tmp_path / "wal.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000


def test_default_path_follows_ims_db(monkeypatch, tmp_path):
    """IMS_DB decides where the file lives."""
    monkeypatch.setenv("IMS_DB", str(tmp_path / "x" / "chosen.db"))
    assert store.default_path() == tmp_path / "x" / "chosen.db"


def test_default_path_without_ims_db_is_per_user(monkeypatch, tmp_path):
    """Without IMS_DB the file lives in the per-user data directory."""
    monkeypatch.delenv("IMS_DB")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "share"))
    if sys.platform.startswith("linux"):
        assert store.default_path() == tmp_path / "share" / "ims_kit" / "ims.db"


def test_a_file_that_is_not_a_database_is_a_clear_error_and_is_left_alone(tmp_path):
    """Opening a non-SQLite file raises StoreError naming it, and the file is not modified."""
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are my notes, not a database\n" * 10)
    before = path.read_bytes()
    with pytest.raises(StoreError, match="notes.db"):
        store.open_db(path)
    assert path.read_bytes() == before


def test_immediate_rolls_back_on_error(tmp_path):
    """A failed write transaction leaves nothing behind."""
    db = store.open_db(tmp_path / "t.db")
    with pytest.raises(RuntimeError), store.immediate(db):
        db.execute("INSERT INTO events (ts, kind) VALUES ('t', 'x')")
        raise RuntimeError("boom")
    assert db.execute("SELECT count(*) FROM events").fetchone()[0] == 0


def test_two_processes_creating_the_same_file_at_once(tmp_path):
    """Concurrent first opens both succeed and migrate exactly once."""
    path = tmp_path / "race.db"
    code = "import sys; from ims_kit.db import open_db; open_db(sys.argv[1]).close()"
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path)]) for _ in range(4)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0, 0]
    with sqlite3.connect(path) as conn:
        total, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT name) FROM _sqlite_migrations"
        ).fetchone()
    assert total == distinct >= 1
    assert history.pending(store.open_db(path, migrate=False)) == []


def test_m005_backfills_retry_at_of_circuits_opened_before_it(tmp_path):
    """A circuit opened under the old schema keeps a retry time (opened + the default 60 s)."""
    db = store.open_db(tmp_path / "old.db", migrate=False)
    history.apply(db, stop_before="m005_circuit_retry_at")
    db.execute(
        "INSERT INTO circuits (model_id, state, opened_at, updated)"
        " VALUES ('m', 'open', '2026-01-01T00:00:00+00:00', 'x')"
    )
    history.apply(db)
    row = db.execute("SELECT retry_at FROM circuits WHERE model_id = 'm'").fetchone()
    assert row[0] == "2026-01-01T00:01:00+00:00"


def test_m015_drops_the_model_executed_copies_and_keeps_the_rest(tmp_path):
    """Older files stored each attempt twice (a usage row and an event): the copies go, the
    usage rows (read as those events from now on) and every other event stay."""
    db = store.open_db(tmp_path / "old.db", migrate=False)
    history.apply(db, stop_before="m015_executed_events_are_usage_rows")
    db.execute("INSERT INTO usage (call_id, ts, model_id, success) VALUES ('c1', 't', 'm', 1)")
    for kind in ("model.executed", "circuit.opened"):
        db.execute("INSERT INTO events (ts, kind, subject) VALUES ('t', ?, 'm')", [kind])
    history.apply(db)
    kinds = [k for (k,) in db.execute("SELECT kind FROM events")]
    assert kinds == ["circuit.opened"]
    assert db.execute("SELECT count(*) FROM usage").fetchone()[0] == 1
