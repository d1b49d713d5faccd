"""run_task on the simulated provider: success, a retry on another model, total failure."""

from __future__ import annotations

import pytest

from ims_kit.errors import InvalidInputError, InvalidTransition
from ims_kit.tasks import TaskResult

PROSE = "Summarise the history of Rome"  # the simulator answers this with prose


def never_enough(text: str) -> str:
    """A validator no answer passes (the reason names itself)."""
    return "not enough detail"


HAPPY = ["START", "ANALYZED", "MODEL_SELECTED", "EXECUTION_COMPLETED", "VALIDATION_PASSED"]


def _events(result: TaskResult) -> list[str]:
    return [t.event for t in result.history]


def _usage(kit, workflow_id):
    return kit.db.execute(
        "SELECT model_id, success FROM usage WHERE workflow_id = ? ORDER BY id", [workflow_id]
    ).fetchall()


def _changes(kit, workflow_id):
    events = kit.events.recent(limit=1000, kind="workflow.state_changed")[::-1]
    return [
        (e.payload["event"], e.payload["source"], e.payload["target"])
        for e in events
        if e.subject == workflow_id
    ]


def test_a_task_completes_with_events_and_usage_linked_by_workflow_id(seeded):
    """A simple question runs IDLE to COMPLETED; every step is an event, the call a usage row."""
    result = seeded.run_task("What is 2+2?", provider="simulated")
    assert result.ok and result.state == "COMPLETED" and result.reason is None
    assert result.answer.text == "4" and str(result) == "4"
    assert _events(result) == HAPPY
    assert _changes(seeded, result.workflow_id) == [
        (t.event, t.source, t.target) for t in result.history
    ]
    assert _usage(seeded, result.workflow_id) == [(result.answer.model_id, 1)]
    ctx = result.context
    assert ctx["complexity"] == "easy" and ctx["tokens"] > 0 and ctx["validator"] == "nonempty"
    assert ctx["model"] == ctx["answered_by"] == result.answer.model_id
    assert ctx["cost_usd"] == result.answer.cost_usd and ctx["error"] is None
    assert "task" not in ctx  # prompts are stored only with store_text
    assert seeded.workflow(result.workflow_id).to_dict()["history"] == [
        t.to_dict() for t in result.history
    ]


def test_the_workflows_choice_is_logged_with_its_strategy(seeded):
    """The workflow selects the model itself: its usage row keeps the strategy that chose
    it, as a call the selector chose does."""
    result = seeded.run_task("What is 2+2?", provider="simulated", strategy="balanced")
    row = seeded.db.execute(
        "SELECT strategy FROM usage WHERE workflow_id = ?", [result.workflow_id]
    ).fetchone()
    assert row == ("balanced",)


def test_a_rejected_answer_is_retried_on_a_different_model(seeded):
    """A validation failure goes back to SELECTING_MODEL and the next attempt uses another model."""
    seen = []

    def second_answer_only(text):
        seen.append(text)
        return len(seen) > 1

    result = seeded.run_task(PROSE, provider="simulated", validate=second_answer_only)
    assert result.state == "COMPLETED"
    assert _events(result) == [
        *HAPPY[:4],
        "RETRY",
        "MODEL_SELECTED",
        "EXECUTION_COMPLETED",
        "VALIDATION_PASSED",
    ]
    first, second = (t.context["model"] for t in result.history if t.event == "MODEL_SELECTED")
    assert first != second == result.answer.model_id
    retry = next(t for t in result.history if t.event == "RETRY")
    assert retry.context["rejected"] == [first] and "returned False" in retry.context["error"]
    assert [m for m, _ in _usage(seeded, result.workflow_id)] == [first, second]


def test_retries_are_bounded_then_the_task_fails_with_the_reason(seeded):
    """Answers that never pass: 1 + max_model_retries models, then ROLLBACK -> FAILED."""
    result = seeded.run_task(
        PROSE, provider="simulated", validate=never_enough, max_model_retries=2
    )
    assert result.state == "FAILED" and not result.ok
    assert _events(result)[-3:] == [
        "EXECUTION_COMPLETED",
        "VALIDATION_FAILED",
        "ROLLBACK_COMPLETED",
    ]
    assert _events(result).count("RETRY") == 2
    models = [t.context["model"] for t in result.history if t.event == "MODEL_SELECTED"]
    assert len(set(models)) == 3
    assert result.reason.startswith("validation failed (no retries left): ")
    assert "not enough detail" in result.reason and all(m in result.reason for m in models)
    assert result.context["reason"] == result.reason and result.answer is not None
    assert seeded.workflows(state="FAILED")[0].workflow_id == result.workflow_id


def test_no_retry_when_no_other_model_is_left(seeded):
    """With one vendor's two models, both rejected, the task fails with "no other model"."""
    result = seeded.run_task(
        PROSE,
        provider="simulated",
        validate=never_enough,
        max_model_retries=5,
        vendors=["Anthropic"],
    )
    assert result.state == "FAILED" and _events(result).count("RETRY") == 1
    assert result.reason.startswith("validation failed (no other model to try)")


def test_when_every_candidate_fails_the_task_fails_with_the_reason(seeded):
    """fail_always on every model: EXECUTION_FAILED -> ROLLBACK -> FAILED, failures linked."""
    sim = seeded.provider("simulated")
    for model in seeded.registry.filter():
        sim.fail_always(model.model_id, "OVERLOAD")
    result = seeded.run_task("What is 2+2?", provider="simulated")
    assert result.state == "FAILED" and result.answer is None
    assert _events(result) == [*HAPPY[:3], "EXECUTION_FAILED", "ROLLBACK_COMPLETED"]
    assert result.reason.startswith("execution failed: every candidate model failed")
    assert "OVERLOAD" in result.reason
    rows = _usage(seeded, result.workflow_id)
    assert rows and all(success == 0 for _, success in rows)
    assert _changes(seeded, result.workflow_id)[-1] == ("ROLLBACK_COMPLETED", "ROLLBACK", "FAILED")


def test_an_empty_registry_aborts_while_selecting(kit):
    """No model to select: ABORT from SELECTING_MODEL, then FAILED saying why."""
    result = kit.run_task("What is 2+2?", provider="simulated")
    assert _events(result) == ["START", "ANALYZED", "ABORT", "ROLLBACK_COMPLETED"]
    assert result.reason.startswith("no model could be selected: no model satisfies")


def test_a_json_schema_is_asked_for_and_validates_the_answer(seeded):
    """A schema dict goes to the model as json_schema (native structured output): the answer
    is its JSON, parsed into answer.data; "json" asks for an object."""
    ok = seeded.run_task("What is 2+2?", provider="simulated", validate={"type": "integer"})
    assert ok.state == "COMPLETED" and ok.answer.data == 4
    person = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
    extracted = seeded.run_task("Extract: Ann, 31", provider="simulated", validate=person)
    assert extracted.state == "COMPLETED" and set(extracted.answer.data) == {"name", "age"}
    any_json = seeded.run_task(PROSE, provider="simulated", validate="json")
    assert any_json.state == "COMPLETED" and isinstance(any_json.answer.data, dict)


def test_a_schema_no_answer_meets_fails_after_three_models(seeded):
    """Invalid answers are retried once per model, then the next; after three models the
    task fails (execution failed) naming INVALID_OUTPUT, every answer billed in usage."""
    digits = {"type": "string", "pattern": "^[0-9]+$"}  # the simulator's example is "example"
    bad = seeded.run_task("What is 2+2?", provider="simulated", validate=digits)
    assert bad.state == "FAILED" and "INVALID_OUTPUT" in bad.reason
    assert "invalid answers from 3 models: check the schema" in bad.reason
    rows = seeded.db.execute(
        "SELECT model_id, error_kind, tokens_out, cost_usd FROM usage WHERE workflow_id = ?",
        [bad.workflow_id],
    ).fetchall()
    assert len(rows) == 6 and len({r[0] for r in rows}) == 3
    assert all(r[1] == "INVALID_OUTPUT" and r[2] > 0 and r[3] > 0 for r in rows)


def test_the_prompt_is_kept_only_with_store_text(seeded):
    """With store_text on, START's context carries the task text."""
    seeded.usage.store_text = True
    result = seeded.run_task("What is 2+2?", provider="simulated")
    assert result.history[0].context["task"] == "What is 2+2?"


def test_bad_arguments_fail_before_a_workflow_starts(seeded):
    """An empty prompt, an unknown constraint or validator raise and leave no workflow behind."""
    with pytest.raises(InvalidInputError, match="non-empty prompt"):
        seeded.run_task("  ")
    with pytest.raises(InvalidInputError, match="min_context"):
        seeded.run_task("hi", min_context=5)
    with pytest.raises(InvalidInputError, match="validate must be"):
        seeded.run_task("hi", validate=42)
    assert seeded.workflows() == []


def test_a_workflow_id_in_use_cannot_be_started_again(seeded):
    """run_task on the id of a finished workflow refuses START and changes nothing."""
    done = seeded.run_task("What is 2+2?", provider="simulated", workflow_id="t1")
    with pytest.raises(InvalidTransition, match="START is not allowed in state COMPLETED"):
        seeded.run_task("What is 2+2?", provider="simulated", workflow_id="t1")
    assert seeded.workflow("t1").to_dict()["history"] == [t.to_dict() for t in done.history]


def test_to_dict_is_json_ready(seeded):
    """TaskResult.to_dict carries state, reason, answer and history as plain data."""
    data = seeded.run_task("What is 2+2?", provider="simulated").to_dict()
    assert data["state"] == "COMPLETED" and data["answer"]["text"] == "4"
    assert [h["event"] for h in data["history"]] == HAPPY


@pytest.mark.parametrize(
    "schema",
    [
        {"type": 5},
        {"properties": []},
        {"required": 5},
        {"enum": 5},
        {"properties": {"a": {"enum": None}}},
    ],
)
def test_malformed_schemas_are_refused_before_anything_runs(seeded, schema):
    """A malformed JSON Schema is an InvalidInputError up front, with no workflow left."""
    from ims_kit.errors import InvalidInputError

    with pytest.raises(InvalidInputError):
        seeded.run_task("hi", provider="simulated", validate=schema)
    assert seeded.workflows() == []


def test_a_validator_returning_a_reason_rejects(seeded):
    """A string from a validator is its reason for rejecting, as with the built-in checks."""
    result = seeded.run_task(
        "What is 2+2?",
        provider="simulated",
        max_model_retries=0,
        validate=lambda text: "needs a longer answer",
    )
    assert result.state == "FAILED" and "needs a longer answer" in result.reason
