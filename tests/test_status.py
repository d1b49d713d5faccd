"""`ims status`: the figures, their text, and the live view in a pseudo-terminal."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from ims_kit import status
from ims_kit.circuits import Permit
from ims_kit.cli import cli
from ims_kit.errors import ErrorKind


def ims(*args: str):
    return CliRunner().invoke(cli, ["status", *args])


@pytest.fixture
def busy(seeded):
    """A seeded database with usage rows, an open and a half-open circuit."""
    for i, (model, ok, provider) in enumerate(
        [("gpt-4o", True, "openai")] * 19
        + [("gpt-4o", False, "openai"), ("claude-sonnet-4", True, "simulated")]
    ):
        seeded.usage.log_execution(
            model_id=model,
            vendor_id="x",
            tokens_in=100,
            tokens_out=10,
            cost_per_mil_in=1.0,
            cost_per_mil_out=2.0,
            latency_ms=10.0 * (i + 1),
            success=ok,
            provider=provider,
            error_kind=None if ok else ErrorKind.TIMEOUT,
        )
    for model in ("gemini-2.5-pro", "gemini-2.5-flash"):
        for _ in range(seeded.circuits.failure_threshold):
            seeded.circuits.record_failure(Permit(model), ErrorKind.OVERLOAD)
    seeded.circuits.clock = lambda: time.time() + seeded.circuits.open_seconds + 1
    seeded.circuits.allow("gemini-2.5-flash")  # its open period is over: the probe starts
    seeded.circuits.clock = time.time
    return seeded


@pytest.mark.parametrize("args", [("--once",), ("--json",)])
def test_missing_database_is_reported_not_created(db_path, args):
    """A missing file gives a clear message (or health down in JSON), and is not created."""
    result = ims(*args)
    assert result.exit_code == 0 and "Traceback" not in result.output
    assert f"no database at {db_path}: run `ims init`" in result.stdout
    assert not db_path.exists()
    if args == ("--json",):
        snap = json.loads(result.stdout)
        assert snap["health"]["status"] == "down" and snap["database"]["exists"] is False


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"not a database" * 100, "cannot use"), (b"", "has no ims_kit tables")],
)
def test_foreign_file_is_a_clear_message(db_path, content, message):
    """A file that is not an ims_kit database is named, without a traceback."""
    db_path.write_bytes(content)
    result = ims("--once")
    assert result.exit_code == 0 and "Traceback" not in result.output
    assert message in result.stdout and "DOWN" in result.stdout


def test_empty_database_says_to_seed(kit):
    """A database with an empty registry is degraded, saying to run ims init."""
    snap = json.loads(ims("--json").stdout)
    assert snap["health"] == {
        "status": "degraded",
        "problems": ["the registry is empty: run `ims init`"],
    }
    assert snap["usage"]["all_time"]["requests"] == 0
    assert "no calls yet" in ims("--once").stdout


def test_seeded_database_figures(seeded):
    """Database, registry and provider figures match the stores; health is ok."""
    snap = json.loads(ims("--json").stdout)
    assert snap["health"] == {"status": "ok", "problems": []}
    assert snap["database"]["path"] == seeded.path
    assert snap["database"]["journal_mode"] == "wal" and snap["database"]["size_bytes"] > 0
    assert snap["registry"]["models"] == len(seeded.registry)
    assert snap["registry"]["active"] == len(seeded.registry.all(active=True))
    assert snap["registry"]["by_vendor"]["Google"]["active"] == 3
    assert snap["circuits"] == [] and snap["events"][0]["kind"] == "model.registered"
    text = ims("--once").stdout
    assert f"{len(seeded.registry)} models" in text and "all closed" in text


def test_usage_latency_and_circuits(busy):
    """Usage today and all time, p50/p95 by model, and every circuit that is not closed."""
    snap = status.snapshot(busy)
    for period in ("today", "all_time"):
        usage = snap["usage"][period]
        assert (usage["requests"], usage["failures"]) == (21, 1)
        assert usage["success_rate"] == pytest.approx(20 / 21)
        assert usage["cost_usd"] == pytest.approx(20 * 120e-6)  # simulated cost kept apart
        assert (usage["simulated_requests"], usage["simulated_cost_usd"]) == (1, 120e-6)
    [gpt] = [r for r in snap["usage"]["latency_by_model"] if r["model"] == "gpt-4o"]
    # status reads the histogram percentiles (within 2.5%), not an exact sort of every call
    assert (gpt["p50_latency_ms"], gpt["p95_latency_ms"]) == pytest.approx(
        (100.0, 190.0), rel=0.025
    )
    states = {c["model_id"]: c["state"] for c in snap["circuits"]}
    assert states == {"gemini-2.5-pro": "open", "gemini-2.5-flash": "half_open"}
    text = status.render(snap)
    assert "retries at" in text and "probe call in flight" in text
    assert snap["health"]["problems"] == [
        "circuit open: gemini-2.5-pro",
        "circuit half-open, probing: gemini-2.5-flash",
    ]


def test_today_starts_at_midnight_utc(busy):
    """Seen from tomorrow, today has no calls yet while all time still counts them."""
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    snap = status.snapshot(busy, now=tomorrow)
    assert snap["usage"]["today"]["requests"] == 0
    assert snap["usage"]["all_time"]["requests"] == 21


def test_low_success_rate_degrades_health(seeded):
    """Today's success rate under 90% over enough calls is a health problem."""
    for ok in [True] * 5 + [False] * 5:
        seeded.usage.log_execution(
            model_id="gpt-4o",
            vendor_id="OpenAI",
            tokens_in=1,
            tokens_out=1,
            cost_per_mil_in=None,
            cost_per_mil_out=None,
            latency_ms=1.0,
            success=ok,
        )
    snap = status.snapshot(seeded)
    assert snap["health"]["problems"] == ["today's success rate is 50% (5 failures)"]
    assert snap["usage"]["today"]["cost_usd"] is None  # unpriced, never $0


def test_busy_database_is_still_read(busy, db_path):
    """Another connection holding a write transaction does not block status (WAL readers)."""
    writer = sqlite3.connect(db_path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("DELETE FROM usage")  # uncommitted: status must see the committed rows
    try:
        started = time.monotonic()
        result = ims("--json")
        elapsed = time.monotonic() - started
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["usage"]["all_time"]["requests"] == 21
    assert elapsed < 5  # far below the 30 s busy timeout a write lock would wait for
    assert "health: DEGRADED" in ims("--once").stdout


def test_provider_keys_by_name_never_value(seeded, monkeypatch):
    """Configured keys are listed by variable name; their values never appear."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-value-123456")
    monkeypatch.setenv("GOOGLE_API_KEY", "AIza-secret-value-123456")
    result = ims("--json")
    assert "secret-value" not in result.stdout
    keys = {k["provider"]: k for k in json.loads(result.stdout)["providers"]["keys"]}
    assert keys["openai"] == {"provider": "openai", "variable": "OPENAI_API_KEY", "set": True}
    assert keys["gemini"]["variable"] == "GOOGLE_API_KEY" and keys["gemini"]["set"]
    assert not keys["anthropic"]["set"]
    assert "secret-value" not in ims("--once").stdout


@pytest.mark.parametrize("installed", [True, False])
def test_gemini_cli_installed_or_not(seeded, monkeypatch, tmp_path, installed):
    """Status says whether the gemini CLI is installed, and how to install it if not."""
    exe = tmp_path / "gemini"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    monkeypatch.delenv("IMS_GEMINI_BIN", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path if installed else tmp_path / "nothing"))
    snap = json.loads(ims("--json").stdout)
    assert snap["providers"]["gemini_cli"] == {
        "installed": installed,
        "path": str(exe) if installed else None,
    }
    assert ("npm install -g @google/gemini-cli" in ims("--once").stdout) is not installed


@pytest.mark.parametrize("color", [True, False])
def test_colour_only_when_asked(busy, color):
    """ANSI codes appear when colour is asked for, never in plain text."""
    text = status.render(status.snapshot(busy), color=color)
    assert ("\x1b[" in text) is color
    assert "DEGRADED" in text


@pytest.mark.slow
def test_live_view_refreshes_in_a_terminal_and_quits_on_ctrl_c(busy):
    """In a pseudo-terminal the view redraws in place with colour; Ctrl-C exits cleanly."""
    main, child = pty.openpty()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from ims_kit.cli import main; main()",
            "status",
            "--interval",
            "0.5",
        ],
        stdin=child,
        stdout=child,
        stderr=child,
        close_fds=True,
    )
    os.close(child)
    screen = b""
    deadline = time.monotonic() + 20
    try:
        while screen.count(b"\x1b[H\x1b[2J") < 2 and time.monotonic() < deadline:
            if select.select([main], [], [], 0.2)[0]:
                screen += os.read(main, 65536)
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=10)
        while select.select([main], [], [], 0.2)[0]:
            try:
                screen += os.read(main, 65536)
            except OSError:  # the terminal closed with the process
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(main)
    text = screen.decode("utf-8", "replace")
    assert text.count("\x1b[H\x1b[2J") >= 2  # one refresh happened, in place
    last = text.split("\x1b[H\x1b[2J")[-1]
    assert "CIRCUITS" in last and "gemini-2.5-pro" in last and "refreshing every 0.5s" in last
    assert "\x1b[31m" in last  # colour on a terminal
    assert code == 0 and "Traceback" not in text


def test_plain_output_when_not_a_terminal(busy):
    """Piped output has no ANSI codes and no screen clearing."""
    result = ims("--once")
    assert "\x1b" not in result.stdout and "health: DEGRADED" in result.stdout
