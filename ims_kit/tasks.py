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
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ims_kit.errors import ImsError, InvalidInputError
from ims_kit.records import Answer
from ims_kit.workflow import MAX_RETRIES, Transition, Workflow, open_workflow
from ims_kit.workflow_store import WorkflowStore

if TYPE_CHECKING:
    from ims_kit.kit import Kit

Check = Callable[[str], str | None]  # the reason an answer is rejected, None when it passes


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
    kit: Kit,
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
    try:  # a typo in a constraint must fail now, not leave a workflow stuck in SELECTING_MODEL
        inspect.signature(kit.recommend).bind(prompt, strategy=strategy, **constraints)
    except TypeError as exc:
        raise InvalidInputError(f"run_task: {exc}") from None
    wf = open_workflow(
        WorkflowStore(kit.db, kit.events), workflow_id, max_retries=max_model_retries
    )
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
                workflow_id=wf.id,
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


# -- validators ------------------------------------------------------------------------------
def resolve_validator(validate: Any) -> tuple[str, Check]:
    """A name (for the context) and a check from ``None``, ``"nonempty"``, ``"json"``, a JSON
    schema dict (type, required, properties, items, enum, additionalProperties) or a callable.

    A callable gets the answer text. It accepts by returning True or None; it rejects by
    returning False, by returning a string (the reason, as the built-in checks do), or by
    raising (the exception's message is the reason).
    """
    if validate is None or validate == "nonempty":
        return "nonempty", _nonempty
    if validate == "json":
        return "json", lambda text: _parse_json(text)[1]
    if isinstance(validate, Mapping):
        schema = dict(validate)
        _check_schema_keywords(schema, "$")
        return "json-schema", lambda text: _schema_check(text, schema)
    if callable(validate):
        return getattr(validate, "__name__", type(validate).__name__), _wrap(validate)
    raise InvalidInputError(
        f"validate must be None, 'nonempty', 'json', a JSON schema dict or a callable,"
        f" got {validate!r}"
    )


def _nonempty(text: str) -> str | None:
    return None if text.strip() else "the answer is empty"


def _wrap(fn: Callable[[str], Any]) -> Check:
    def check(text: str) -> str | None:
        try:
            verdict = fn(text)
        except Exception as exc:
            return str(exc) or type(exc).__name__
        if isinstance(verdict, str):  # a reason, like the built-in checks return
            return verdict or "the validator returned an empty reason"
        if verdict is None or verdict:
            return None
        return f"the validator returned {verdict!r}"

    return check


def _parse_json(text: str) -> tuple[Any, str | None]:
    body = text.strip()
    if body.startswith("```"):  # models often fence JSON in markdown
        body = body.strip("`").removeprefix("json").strip()
    try:
        return json.loads(body), None
    except json.JSONDecodeError as exc:
        return None, f"the answer is not valid JSON ({exc.msg} at line {exc.lineno})"


_SCHEMA_KEYWORDS = {
    "type",
    "required",
    "properties",
    "items",
    "enum",
    "additionalProperties",
    "title",
    "description",
    "$schema",
}
_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool))
        or (isinstance(v, float) and v.is_integer())
    ),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def _check_schema_keywords(schema: Any, path: str) -> None:
    """Refuse what this small checker does not implement rather than silently ignore it."""
    if not isinstance(schema, Mapping):
        raise InvalidInputError(f"JSON schema at {path} must be an object")
    if unknown := set(schema) - _SCHEMA_KEYWORDS:
        raise InvalidInputError(
            f"unsupported JSON schema keywords at {path}: {', '.join(sorted(unknown))};"
            f" supported: {', '.join(sorted(_SCHEMA_KEYWORDS))} (or pass a callable)"
        )
    if not isinstance(schema.get("additionalProperties", False), bool):
        raise InvalidInputError(f"additionalProperties at {path} must be true or false here")
    types = schema.get("type", [])
    if not isinstance(types, str | list):
        raise InvalidInputError(f"type at {path} must be a string or a list of strings")
    for t in [types] if isinstance(types, str) else types:
        if not isinstance(t, str) or t not in _TYPES:
            raise InvalidInputError(f"unknown JSON schema type {t!r} at {path}")
    if not isinstance(schema.get("properties", {}), Mapping):
        raise InvalidInputError(f"properties at {path} must be an object")
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        raise InvalidInputError(f"required at {path} must be a list of property names")
    if "enum" in schema and not isinstance(schema["enum"], list):
        raise InvalidInputError(f"enum at {path} must be a list")
    for name, sub in schema.get("properties", {}).items():
        _check_schema_keywords(sub, f"{path}.{name}")
    if "items" in schema:
        _check_schema_keywords(schema["items"], f"{path}[]")


def _schema_check(text: str, schema: dict[str, Any]) -> str | None:
    value, problem = _parse_json(text)
    return problem or _schema_problem(value, schema, "$")


def _schema_problem(value: Any, schema: Mapping[str, Any], path: str) -> str | None:
    """The first way ``value`` breaks ``schema``, as one line, or None."""
    types = schema.get("type")
    if types is not None:
        wanted = [types] if isinstance(types, str) else list(types)
        if not any(_TYPES[t](value) for t in wanted):
            return f"{path} should be {' or '.join(wanted)}, got {type(value).__name__}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{path} should be one of {schema['enum']!r}, got {value!r}"
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                return f"{path} is missing the required key {key!r}"
        properties = schema.get("properties", {})
        for key, item in value.items():
            if key in properties:
                if problem := _schema_problem(item, properties[key], f"{path}.{key}"):
                    return problem
            elif schema.get("additionalProperties") is False:
                return f"{path} has the unexpected key {key!r}"
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            if problem := _schema_problem(item, schema["items"], f"{path}[{i}]"):
                return problem
    return None
