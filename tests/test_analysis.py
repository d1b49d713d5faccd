"""Reading a prompt's difficulty from its cues: what counts as code, math, several steps."""

from __future__ import annotations

import pytest

from ims_kit.analysis import REQUIRED_QUALITY, analyze


@pytest.mark.parametrize(
    ("prompt", "difficulty", "signals"),
    [
        ("What is 17 + 25?", "easy", ()),
        ("Explain the CAP theorem in two sentences.", "easy", ()),  # names a theorem, no math
        ("What is the return policy?", "easy", ()),  # 'return' is not code
        ("Summarise this: the quarterly plan", "easy", ()),  # 'plan' as a noun
        ("Prove that the square root of 2 is irrational.", "medium", ("math",)),
        ("Write a Python function that parses ISO-8601 timestamps.", "medium", ("code",)),
        ("Debug this stack trace: KeyError in registry.py", "medium", ("code",)),
        (
            "Design a rate limiter: compare token bucket and sliding window, explain the "
            "trade-offs and plan the rollout step by step.",
            "hard",
            ("multi-step reasoning cues x5",),
        ),
        (
            "Implement a thread-safe LRU cache class, first the design then the tests, and"
            " compare it with functools.lru_cache.",
            "hard",
            ("code", "multi-step reasoning cues x2"),
        ),
    ],
)
def test_cues_read_what_the_task_asks(prompt, difficulty, signals):
    """Each cue is a task the prompt asks for, not a word it happens to contain."""
    profile = analyze(prompt)
    assert (profile.difficulty, profile.signals) == (difficulty, signals)
    assert profile.required_quality == REQUIRED_QUALITY[difficulty]


def test_asking_for_a_short_answer_lowers_the_difficulty_one_step():
    """'in two sentences' makes a code question medium rather than hard, and says so."""
    long = analyze("Refactor this function and explain why.")
    short = analyze("Refactor this function and explain why in two sentences.")
    assert (long.difficulty, short.difficulty) == ("hard", "medium")
    assert "a short answer is asked for" in short.signals


def test_a_long_document_is_a_signal():
    """A prompt of many thousand tokens is noted as long input."""
    assert "long input" in analyze("word " * 30_000).signals[0]


def test_a_long_input_counts_and_cues_inside_a_pasted_document_do_not():
    """Length is a cue; words in the middle of a long pasted text are not read as the task."""
    body = " ".join(["the design of the architecture and the plan for it"] * 2_000)
    profile = analyze(f"Summarise:\n{body[:100]}\n{'x ' * 3000}\n{body[:100]}", 5_000)
    assert profile.signals[0] == "long input (~5,000 tokens)"
    assert profile.difficulty != "easy"
