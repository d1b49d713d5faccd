"""`ims status`: one snapshot as text or JSON with the health as exit status, and the live
view in a pseudo-terminal."""

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

import pytest
from click.testing import CliRunner

from ims_kit.cli import cli


def ims(*args: str):
    return CliRunner().invoke(cli, ["status", *args])


@pytest.mark.parametrize("args", [("--once",), ("--json",)])
def test_a_missing_database_exits_2_and_is_not_created(db_path, args):
    """A missing file: health down, exit status 2, the fix printed, nothing created."""
    result = ims(*args)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"no database at {db_path}: run `ims init`" in result.stdout
    assert not db_path.exists()
    if args == ("--json",):
        snap = json.loads(result.stdout)
        assert snap["health"]["status"] == "down" and snap["database"]["exists"] is False


@pytest.mark.parametrize("args", [("--once",), ("--json",)])
def test_exit_status_is_the_health(busy, args):
    """Degraded exits 1; after the circuits are reset the database is ok and exits 0."""
    assert ims(*args).exit_code == 1
    busy.circuits.reset()
    assert ims(*args).exit_code == 0


def test_busy_database_is_still_read(busy, db_path):
    """Another connection holding a write transaction does not block status (WAL readers)."""
    writer = sqlite3.connect(db_path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("DELETE FROM usage")  # uncommitted: status must see the committed rows
    try:
        result = ims("--json")
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert result.exit_code == 1, result.output  # degraded (circuits), not down
    assert json.loads(result.stdout)["usage"]["all_time"]["requests"] == 21
    assert "health: DEGRADED" in ims("--once").stdout


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
    frames = text.split("\x1b[H\x1b[2J")[1:]  # Ctrl-C may cut the frame being drawn
    full = [f for f in frames if "refreshing every 0.5s" in f]
    assert full and "CIRCUITS" in full[-1] and "gemini-2.5-pro" in full[-1]
    assert "\x1b[31m" in full[-1]  # colour on a terminal
    assert code == 0 and "Traceback" not in text


def test_plain_output_when_not_a_terminal(busy):
    """Piped output has no ANSI codes and no screen clearing."""
    result = ims("--once")
    assert "\x1b" not in result.stdout and "health: DEGRADED" in result.stdout
