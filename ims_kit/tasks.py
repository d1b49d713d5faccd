"""``run_task``: one prompt driven through the workflow, from analysis to a validated answer.

ANALYZING counts tokens and reads the task (the selector's ``auto`` reading); SELECTING_MODEL
ranks candidates, leaving out models whose answers failed validation; EXECUTING calls through
recovery (retries and fallbacks, usage rows carrying the workflow id); VALIDATING runs the
validator. A rejected answer sends the workflow back to SELECTING_MODEL for another model, at
most ``max_model_retries`` times; then, or when no model can be selected or every candidate
failed, ROLLBACK -> FAILED with the reason. The prompt is stored only with ``store_text``.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ims_kit.errors import ImsError, InvalidInputError
from ims_kit.records import Answer
from ims_kit.validators import resolve_validator
from ims_kit.workflow import MAX_RETRIES, Transition, Workflow, open_workflow
from ims_kit.workflow_store import WorkflowStore

# ``kit`` below is an ``ims_kit.kit.Kit``; this module does not import it (kit imports this).


@dataclass(frozen=True)
class TaskResult:
    """How a task ended: COMPLETED with its answer, or FAILED with the reason, and every step."""

    state: str
    workflow_id: str
    answer: Answer | None
    history: tuple[Transition, ...]
    reason: str | None = None
    context: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when the task completed with an answer that passed validation."""
        return self.state == "COMPLETED"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``ims run --json``)."""
        return {
            "state": self.state,
            "workflow_id": self.workflow_id,
            "reason": self.reason,
            "answer": None if self.answer is None else _answer_dict(self.answer),
            "context": dict(self.context),
            "history": [t.to_dict() for t in self.history],
        }

    def __str__(self) -> str:
        if self.ok and self.answer is not None:
            return self.answer.text
        return f"workflow {self.workflow_id} {self.state}: {self.reason}"


def run_task(
    kit: Any,
    prompt: str,
    *,
    strategy: str | None = None,
    validate: Any = None,
    provider: str | None = None,
    max_model_retries: int = MAX_RETRIES,
    max_tokens: int | None = None,
    workflow_id: str | None = None,
    **constraints: Any,
) -> TaskResult:
    """Run ``prompt`` through the workflow; see ``Kit.run_task``."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidInputError("a task needs a non-empty prompt")
    check_name, check = resolve_validator(validate)
    # a JSON check asks the model for JSON (native structured output), not only checks it
    schema = dict(validate) if isinstance(validate, Mapping) else None
    if validate == "json":
        schema = {"type": "object"}
    try:  # a typo in a constraint must fail now, not leave a workflow stuck in SELECTING_MODEL
        inspect.signature(kit.recommend).bind(prompt, strategy=strategy, **constraints)
    except TypeError as exc:
        raise InvalidInputError(f"run_task: {exc}") from None
    wf = open_workflow(
        WorkflowStore(kit.db, kit.events, kit.clock), workflow_id, max_retries=max_model_retries
    )
    with kit.telemetry.workflow(wf.id):  # with telemetry on, the root of the task's trace
        return _drive(
            kit, wf, prompt, strategy, check_name, check, schema, provider, max_tokens,
            constraints,
        )  # fmt: skip


def _drive(
    kit, wf, prompt, strategy, check_name, check, schema, provider, max_tokens, constraints
) -> TaskResult:
    """The workflow's steps, from START to a final state."""
    start: dict[str, Any] = {"strategy": strategy, "validator": check_name}
    if kit.usage.store_text:
        start["task"] = prompt
    wf.transition("START", start)

    from ims_kit import tokens
    from ims_kit.analysis import analyze

    n_tokens = tokens.count(prompt).tokens
    profile = analyze(prompt, n_tokens)
    wf.transition(
        "ANALYZED",
        {"tokens": n_tokens, "complexity": profile.difficulty, "signals": list(profile.signals)},
    )

    rejected: list[str] = []  # models whose answers failed validation
    problems: list[str] = []
    answer: Answer | None = None
    while True:
        try:
            rec = kit.recommend(prompt, strategy=strategy, **constraints)
        except ImsError as exc:
            return _give_up(wf, "ABORT", f"no model could be selected: {exc}", answer)
        ranked = [c.model_id for c in rec.ranked if c.model_id not in rejected]
        if not ranked:  # the ranking changed since the retry was decided (a breaker opened)
            return _give_up(wf, "ABORT", "no untried model is left: " + "; ".join(problems), answer)
        chosen = next(c for c in rec.ranked if c.model_id == ranked[0])
        wf.transition(
            "MODEL_SELECTED",
            {"model": ranked[0], "strategy": rec.strategy, "candidates": len(ranked)},
        )
        try:
            answer = kit.ask(
                prompt,
                model=ranked[0],
                fallbacks=ranked[1:],
                provider=provider,
                max_tokens=max_tokens,
                json_schema=schema,
                workflow_id=wf.id,
                _selection=(rec.strategy, "; ".join(chosen.reasons)),
            )
        except ImsError as exc:
            return _give_up(wf, "EXECUTION_FAILED", f"execution failed: {exc}", None)
        wf.transition(
            "EXECUTION_COMPLETED",
            {
                "answered_by": answer.model_id,
                "tokens_in": answer.tokens_in,
                "tokens_out": answer.tokens_out,
                "cost_usd": answer.cost_usd,
                "latency_ms": round(answer.latency_ms, 1),
                "call_id": answer.call_id,
            },
        )
        try:
            problem = check(answer.text)
        except Exception as exc:  # a validator that breaks must not strand the workflow
            return _give_up(wf, "VALIDATION_FAILED", f"the validator raised {exc!r}", answer)
        kit.verdicts.record(answer.call_id, problem is None, source="validation", note=problem)
        if problem is None:
            wf.transition("VALIDATION_PASSED", {"error": None})
            return _result(wf, answer, None)
        rejected.append(answer.model_id)
        problems.append(f"{answer.model_id}: {problem}")
        others = [m for m in ranked if m not in rejected]
        if others and wf.retries_used < wf.max_retries:
            wf.transition("RETRY", {"error": problems[-1], "rejected": list(rejected)})
            continue
        why = "no retries left" if others else "no other model to try"
        wf.transition("VALIDATION_FAILED", {"error": problems[-1]})
        reason = f"validation failed ({why}): " + "; ".join(problems)
        return _give_up(wf, None, reason, answer)


def _give_up(wf: Workflow, event: str | None, reason: str, answer: Answer | None) -> TaskResult:
    """``event`` (if any) into ROLLBACK, then ROLLBACK_COMPLETED into FAILED with the reason."""
    if event is not None:
        wf.transition(event, {"error": reason})
    wf.transition("ROLLBACK_COMPLETED", {"reason": reason})
    return _result(wf, answer, reason)


def _result(wf: Workflow, answer: Answer | None, reason: str | None) -> TaskResult:
    return TaskResult(wf.state, wf.id, answer, tuple(wf.get_history()), reason, wf.context)


def _answer_dict(answer: Answer) -> dict[str, Any]:
    return dataclasses.asdict(answer)
