"""`ims chat`: a conversation in the terminal, offline on the simulated provider."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from ims_kit.cli import cli


@pytest.fixture
def chat(run, seeded):
    """``chat(input, *args)``: ims chat with these lines on stdin; the result."""

    def talk(lines: str, *args: str):
        return CliRunner().invoke(cli, ["chat", "--provider", "simulated", *args], input=lines)

    return talk


def turn_rows(kit):
    return kit.db.execute(
        "SELECT model_id, tokens_in, request_id FROM usage WHERE success = 1 ORDER BY id"
    ).fetchall()


def test_each_turn_sends_the_whole_conversation(chat, seeded):
    """Two turns: the second carries the first turn and its answer (more tokens in), both
    answered and logged as their own requests; the session line adds them up."""
    result = chat("Hello\nWhat is 2+2?\n", "--model", "claude-haiku-4-5")
    assert result.exit_code == 0, result.output
    assert "Hello! How can I help you today?" in result.stdout and "4" in result.stdout
    first, second = turn_rows(seeded)
    assert second[1] > first[1] and first[2] != second[2]
    lines = [line for line in result.stderr.splitlines() if line.startswith("ims: claude")]
    assert len(lines) == 2 and "session" in lines[1] and "simulated" in lines[1]
    assert result.stderr.splitlines()[-1].startswith("ims: 2 turns, ")


def test_reset_forgets_the_conversation(chat, seeded):
    """/reset: the next turn starts from nothing (as few tokens as a first turn)."""
    chat("What is 2+2?\nWhat is 2+2?\n/reset\nWhat is 2+2?\n/exit\nnever sent\n")
    first, second, third = turn_rows(seeded)
    assert second[1] > first[1] and third[1] == first[1]


def test_a_system_prompt_and_options_go_with_every_turn(chat, seeded):
    """--system and the options apply to each turn; a refused option is announced."""
    result = chat("hi\n", "--model", "gpt-5-mini", "--system", "Be brief.", "--temperature", "1")
    assert result.exit_code == 0
    assert "temperature not sent" in result.stderr
    ((tokens_in,),) = seeded.db.execute("SELECT tokens_in FROM usage").fetchall()
    assert tokens_in > 1  # "Be brief." counted with "hi"


def test_without_a_model_each_turn_is_placed(chat, seeded):
    """No --model: the selector places each turn (the strategy applies), every turn logged."""
    result = chat("hi\nping\n", "--strategy", "cost")
    assert result.exit_code == 0 and len(turn_rows(seeded)) == 2


def test_a_bad_option_is_one_line_before_any_turn(chat, seeded):
    """--temperature 5: refused before the conversation starts, one line, exit 1."""
    result = chat("hi\n", "--temperature", "5")
    assert result.exit_code == 1 and "temperature must be from 0 to 2" in result.stderr
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.output and turn_rows(seeded) == []
