"""Verdicts on answers: yours and the workflow's validations, and the rows they make for
training a router on your own history."""

from __future__ import annotations

import pytest

from ims_kit.errors import AllModelsFailed, InvalidInputError


def test_a_verdict_needs_a_real_answer(seeded):
    """feedback() names an answered call; unknown or failed calls and non-bool verdicts are
    clear errors."""
    answer = seeded.ask("hi", provider="simulated")
    seeded.feedback(answer.call_id, good=False, note="rude")
    seeded.feedback(answer.call_id, good=True)  # a later verdict replaces the earlier one
    assert seeded.verdicts.count() == {"user": 1}
    assert seeded.db.execute("SELECT good FROM feedback").fetchone()[0] == 1
    with pytest.raises(InvalidInputError, match="no call 'nope'"):
        seeded.feedback("nope", good=True)
    with pytest.raises(InvalidInputError, match="True or False"):
        seeded.feedback(answer.call_id, good="yes")
    seeded.provider("simulated").inject("*", "invalid_request")
    with pytest.raises(AllModelsFailed):
        seeded.ask("hi", provider="simulated")
    failed = seeded.db.execute("SELECT call_id FROM usage WHERE success = 0").fetchone()[0]
    with pytest.raises(InvalidInputError, match="has no answer"):
        seeded.feedback(failed, good=True)


def test_the_workflow_records_its_validations(seeded):
    """run_task stores whether each answer passed validation."""
    seeded.run_task("What is 2+2?", provider="simulated", validate=lambda t: t == "never")
    counts = seeded.verdicts.count()
    assert counts["validation"] >= 2
    goods = {g for (g,) in seeded.db.execute("SELECT good FROM feedback").fetchall()}
    assert goods == {0}


def test_training_rows_pair_the_strong_and_weak_verdicts_on_one_prompt(seeded):
    """Prompts both models answered, each judged: one row; a user's verdict beats the
    validation's; prompts judged on one model only give no row."""
    seeded.usage.store_text = True
    for prompt, strong_ok, weak_ok in [("p1", True, False), ("p2", True, True)]:
        s = seeded.ask(prompt, model="gpt-4o", provider="simulated")
        w = seeded.ask(prompt, model="gpt-4o-mini", provider="simulated")
        seeded.verdicts.record(s.call_id, not strong_ok, source="validation")
        seeded.feedback(s.call_id, good=strong_ok)
        seeded.feedback(w.call_id, good=weak_ok)
    lonely = seeded.ask("p3", model="gpt-4o", provider="simulated")
    seeded.feedback(lonely.call_id, good=True)
    rows = seeded.verdicts.training_rows("gpt-4o", "gpt-4o-mini")
    assert rows == [
        {"prompt": "p1", "strong_correct": True, "weak_correct": False},
        {"prompt": "p2", "strong_correct": True, "weak_correct": True},
    ]


def test_training_rows_need_the_prompts_kept(seeded):
    """Without store_text the judged calls have no prompt: the error says how to keep them."""
    answer = seeded.ask("p", model="gpt-4o", provider="simulated")
    seeded.feedback(answer.call_id, good=True)
    with pytest.raises(InvalidInputError, match="IMS_STORE_TEXT=1"):
        seeded.verdicts.training_rows("gpt-4o", "gpt-4o-mini")


def test_training_rows_hold_what_the_router_scores(seeded):
    """With a system prompt or a conversation, a row's prompt is the latest user turn (what
    strategy "learned" scores), not the whole text the usage log keeps."""
    seeded.usage.store_text = True
    for model, good in (("gpt-4o", True), ("gpt-4o-mini", False)):
        answer = seeded.ask(
            messages=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
                      {"role": "user", "content": "What is 17 * 23?"}],
            system="You are terse.", model=model, provider="simulated",
        )  # fmt: skip
        seeded.feedback(answer.call_id, good=good)
    stored = seeded.db.execute("SELECT prompt, routed_prompt FROM usage").fetchall()
    assert stored[0] == ("You are terse.\nHi\nHello\nWhat is 17 * 23?", "What is 17 * 23?")
    rows = seeded.verdicts.training_rows("gpt-4o", "gpt-4o-mini")
    assert rows == [{"prompt": "What is 17 * 23?", "strong_correct": True, "weak_correct": False}]
    plain = seeded.ask("Just one turn", model="gpt-4o", provider="simulated")
    kept = seeded.db.execute(
        "SELECT routed_prompt FROM usage WHERE call_id = ?", [plain.call_id]
    ).fetchone()
    assert kept == (None,)  # the same as the prompt: not stored twice
