"""The workflow's states, events and transitions: the machine that reads like its diagram.

IDLE -> ANALYZING -> SELECTING_MODEL -> EXECUTING -> VALIDATING -> COMPLETED, or on failure
-> ROLLBACK -> FAILED, as the seed names them; a bounded RETRY goes from VALIDATING back to
SELECTING_MODEL, and ABORT leaves any working state for ROLLBACK. The machine subclasses
``StateMachine``, not the default ``StateChart``, which turns callback errors into events and
ignores invalid ones. ``ims_kit.workflow.Workflow`` drives it and saves every step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from statemachine import Event, State, StateMachine

from ims_kit.errors import InvalidInputError

MAX_RETRIES = 2  # default bound on RETRY (VALIDATING -> SELECTING_MODEL)


class WorkflowState(StrEnum):
    """The states, as the seed names them (also the values stored in ``workflows.state``)."""

    IDLE = "IDLE"
    ANALYZING = "ANALYZING"
    SELECTING_MODEL = "SELECTING_MODEL"
    EXECUTING = "EXECUTING"
    VALIDATING = "VALIDATING"
    COMPLETED = "COMPLETED"
    ROLLBACK = "ROLLBACK"
    FAILED = "FAILED"


class TransitionEvent(StrEnum):
    """The events: the seed's eight, plus RETRY (another model) and ABORT (give up)."""

    START = "START"
    ANALYZED = "ANALYZED"
    MODEL_SELECTED = "MODEL_SELECTED"
    EXECUTION_COMPLETED = "EXECUTION_COMPLETED"
    EXECUTION_FAILED = "EXECUTION_FAILED"
    VALIDATION_PASSED = "VALIDATION_PASSED"
    VALIDATION_FAILED = "VALIDATION_FAILED"
    RETRY = "RETRY"
    ABORT = "ABORT"
    ROLLBACK_COMPLETED = "ROLLBACK_COMPLETED"


class WorkflowMachine(StateMachine):
    """The workflow's states and transitions; it reads like the diagram (``Workflow.diagram``)."""

    IDLE = State("IDLE", initial=True)
    ANALYZING = State("ANALYZING")
    SELECTING_MODEL = State("SELECTING_MODEL")
    EXECUTING = State("EXECUTING")
    VALIDATING = State("VALIDATING")
    COMPLETED = State("COMPLETED", final=True)
    ROLLBACK = State("ROLLBACK")
    FAILED = State("FAILED", final=True)

    start = Event(IDLE.to(ANALYZING), name="START")
    analyzed = Event(ANALYZING.to(SELECTING_MODEL), name="ANALYZED")
    model_selected = Event(SELECTING_MODEL.to(EXECUTING), name="MODEL_SELECTED")
    execution_completed = Event(EXECUTING.to(VALIDATING), name="EXECUTION_COMPLETED")
    execution_failed = Event(EXECUTING.to(ROLLBACK), name="EXECUTION_FAILED")
    validation_passed = Event(VALIDATING.to(COMPLETED), name="VALIDATION_PASSED")
    validation_failed = Event(VALIDATING.to(ROLLBACK), name="VALIDATION_FAILED")
    retry = Event(VALIDATING.to(SELECTING_MODEL, cond="retries_left"), name="RETRY")
    abort = Event(
        ANALYZING.to(ROLLBACK)
        | SELECTING_MODEL.to(ROLLBACK)
        | EXECUTING.to(ROLLBACK)
        | VALIDATING.to(ROLLBACK),
        name="ABORT",
    )
    rollback_completed = Event(ROLLBACK.to(FAILED), name="ROLLBACK_COMPLETED")

    def retries_left(self) -> bool:
        """RETRY's guard. A bare machine (the diagram's) has no history, so retries are left;
        a workflow's machine also asks the workflow's listener, and both must agree."""
        return True


STATES: tuple[str, ...] = tuple(s.value for s in WorkflowState)
EVENTS: tuple[str, ...] = tuple(e.value for e in TransitionEvent)
FINAL_STATES = frozenset(s.value for s in WorkflowMachine.final_states)
# (source, EVENT) -> target, read from the machine so that the two cannot disagree.
TRANSITIONS: dict[tuple[str, str], str] = {
    (t.source.value, getattr(WorkflowMachine, event).name): t.target.value
    for s in WorkflowMachine.states
    for t in s.transitions
    for event in t.events
}


@dataclass(frozen=True)
class Transition:
    """One step of a workflow: the event, where it went, the context it brought, when (UTC)."""

    event: str
    source: str
    target: str
    context: dict[str, Any] = field(default_factory=dict)
    ts: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (one entry of ``Workflow.to_dict()["history"]``)."""
        return {
            "event": self.event,
            "source": self.source,
            "target": self.target,
            "context": dict(self.context),
            "ts": self.ts,
        }


Callback = Callable[[Transition], Any]


def event_name(event: Any) -> str:
    """The seed's name of an event given as ``"START"``, ``"start"`` or ``TransitionEvent``."""
    name = getattr(event, "value", event)
    if isinstance(name, str) and name.upper() in EVENTS:
        return name.upper()
    raise InvalidInputError(f"unknown workflow event {event!r}; known: {', '.join(EVENTS)}")


def state_name(state: Any) -> str:
    """The name of a state given as ``"EXECUTING"``, ``"executing"`` or ``WorkflowState``."""
    name = getattr(state, "value", state)
    if isinstance(name, str) and name.upper() in STATES:
        return name.upper()
    raise InvalidInputError(f"unknown workflow state {state!r}; known: {', '.join(STATES)}")
