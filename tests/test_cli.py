"""The `ims` group: one-line errors, no traceback, and read-only commands that never create."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from ims_kit.cli import cli


def _ims():
    exe = Path(sys.executable).parent / "ims"
    return str(exe) if exe.exists() else shutil.which("ims")


@pytest.mark.parametrize("command", [["models"], ["metrics"], ["workflows"], ["ask", "hi"]])
def test_commands_other_than_init_never_create_a_database(tmp_path, monkeypatch, command):
    """With IMS_DB in a folder that does not exist, a command says to run ims init and
    creates neither the folder nor the file."""
    target = tmp_path / "nowhere" / "ims.db"
    monkeypatch.setenv("IMS_DB", str(target))
    result = CliRunner().invoke(cli, command)
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: no database at {target}: run `ims init` to create it"
    assert not target.parent.exists()


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
