"""The README cannot drift: its tour runs, its CLI lines run, its tables match the code."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from click.testing import CliRunner

from ims_kit.cli import cli
from ims_kit.recovery import rules_table

README = (Path(__file__).parent.parent / "README.md").read_text()


def _block(after: str, lang: str) -> str:
    """The first fenced block of language ``lang`` ('' for plain) after a heading."""
    section = README[README.index(after) :]
    return next(
        body for tag, body in re.findall(r"```(\w*)\n(.*?)```", section, re.S) if tag == lang
    )


def test_the_classification_table_is_the_code_table():
    """The README prints exactly ims_kit.recovery.RULES."""
    shown = README.split("<!-- rules-table -->\n")[1].split("<!-- /rules-table -->")[0]
    assert shown.strip() == rules_table().strip()


def test_the_python_tour_runs_offline(db_path):
    """Every line of the ten-line tour runs against a fresh database."""
    exec(compile(_block("## A ten-line tour", "python"), "README.md", "exec"), {})


def test_the_cli_tour_runs_offline(db_path):
    """Every `ims` line of the tour exits 0."""
    runner = CliRunner()
    lines = [line.split("  #")[0].strip() for line in _block("## A ten-line tour", "").splitlines()]
    commands = [shlex.split(line)[1:] for line in lines if line.startswith("ims ")]
    assert len(commands) >= 6
    for args in commands:
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, (args, result.output)
