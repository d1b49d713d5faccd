"""The task workflow: the state machine of ``workflow_machine`` with context and history,
every transition saved in SQLite as it happens.

A transition is all or nothing: the exit and entry callbacks run, then the new state, the
accumulated context, the transition row and the ``workflow.state_changed`` event are written
in one ``BEGIN IMMEDIATE`` transaction. If a callback raises or the write fails, the workflow
is put back as it was (state, context, history, database) and the exception propagates.
What the callback itself did is its own business.
"""

from __future__ import annotations

import html
import json
import shutil
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from statemachine import State
from statemachine.exceptions import TransitionNotAllowed

from ims_kit.clock import now_iso
from ims_kit.errors import (
    InvalidInputError,
    InvalidTransition,
    UnknownWorkflowError,
    WorkflowError,
)
from ims_kit.workflow_machine import (
    EVENTS,
    FINAL_STATES,
    MAX_RETRIES,
    STATES,
    TRANSITIONS,
    Callback,
    Transition,
    TransitionEvent,
    WorkflowMachine,
    WorkflowState,
    event_name,
    state_name,
)

if TYPE_CHECKING:
    from ims_kit.workflow_store import WorkflowStore

__all__ = [
    "EVENTS",
    "MAX_RETRIES",
    "STATES",
    "Transition",
    "TransitionEvent",
    "Workflow",
    "WorkflowMachine",
    "WorkflowState",
    "import_workflow",
    "open_workflow",
    "state_name",
]


class _Hooks:
    """The machine's listener: the RETRY guard and the per-state entry/exit callbacks."""

    def __init__(self, wf: Workflow):
        self._wf = wf

    def retries_left(self) -> bool:
        used = self._wf.retries_used
        if self._wf._pending is not None and self._wf._pending.event == "RETRY":
            used -= 1  # the RETRY being applied is already in the history
        return used < self._wf.max_retries

    def on_exit_state(self, state: State) -> None:
        self._wf._fire(self._wf._on_exit, state.value)

    def on_enter_state(self, state: State) -> None:
        self._wf._fire(self._wf._on_entry, state.value)


class Workflow:
    """A task's state machine with its context and history, saved as it moves when it has a store.

    ``kit.workflow(id)`` loads or creates one in the kit's database; ``Workflow()`` alone lives
    in memory only (no rows, no events).
    """

    def __init__(
        self,
        workflow_id: str | None = None,
        *,
        max_retries: int = MAX_RETRIES,
        context: Mapping[str, Any] | None = None,
        store: WorkflowStore | None = None,
        _state: str = "IDLE",
        _history: list[Transition] | None = None,
        _created: str | None = None,
        _updated: str | None = None,
    ):
        if workflow_id is not None and (not isinstance(workflow_id, str) or not workflow_id):
            raise WorkflowError(f"a workflow id must be a non-empty string, got {workflow_id!r}")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise WorkflowError(f"max_retries must be a whole number >= 0, got {max_retries!r}")
        self.id = workflow_id or uuid.uuid4().hex[:12]
        self.max_retries = max_retries
        self._store = store
        self._context = _jsonable(context or {})
        self._history = list(_history or [])
        self.created = _created or self._now_iso()
        self.updated = _updated or self.created
        self._on_entry: dict[str, list[Callback]] = {}
        self._on_exit: dict[str, list[Callback]] = {}
        self._pending: Transition | None = None
        self._sm = self._machine(_state)

    def _now_iso(self) -> str:
        """Now on the store's clock (the kit's), else the wall clock."""
        return self._store.clock.now_iso() if self._store is not None else now_iso()

    def _machine(self, state: str) -> WorkflowMachine:
        return WorkflowMachine(start_value=state, listeners=[_Hooks(self)])

    # -- reading ---------------------------------------------------------------------------
    @property
    def workflow_id(self) -> str:
        """The id (the seed's name for it)."""
        return self.id

    @property
    def state(self) -> str:
        """The current state's name, e.g. ``"EXECUTING"``."""
        return str(self._sm.current_state_value)

    @property
    def context(self) -> dict[str, Any]:
        """Everything the transitions brought, later values winning (a copy)."""
        return json.loads(json.dumps(self._context))

    @property
    def is_final(self) -> bool:
        """True in COMPLETED or FAILED, where no event is allowed."""
        return self.state in FINAL_STATES

    @property
    def allowed_events(self) -> list[str]:
        """The events the current state accepts (RETRY only while retries are left)."""
        hooks = _Hooks(self)
        return [
            event
            for (source, event) in TRANSITIONS
            if source == self.state and (event != "RETRY" or hooks.retries_left())
        ]

    @property
    def retries_used(self) -> int:
        """How many RETRY transitions the history holds."""
        return sum(1 for t in self._history if t.event == "RETRY")

    def get_history(self) -> list[Transition]:
        """Every transition so far, oldest first."""
        return list(self._history)

    @property
    def history(self) -> list[Transition]:
        """Every transition so far, oldest first."""
        return self.get_history()

    # -- moving ----------------------------------------------------------------------------
    def transition(
        self, event: TransitionEvent | str, context: Mapping[str, Any] | None = None
    ) -> Transition:
        """Apply ``event`` (``"START"``, ``TransitionEvent.START``, ``"start"``) with its context.

        Raises InvalidTransition (nothing changed) when the current state does not allow it.
        """
        name = event_name(event)
        if self._pending is not None:
            raise WorkflowError(
                f"workflow {self.id}: {name} was sent from a callback of {self._pending.event};"
                " transitions cannot nest: send it after this transition returns"
            )
        source = self.state
        target = TRANSITIONS.get((source, name))
        if target is None:
            raise InvalidTransition(self.id, source, name, self.allowed_events)
        if name == "RETRY" and self.retries_used >= self.max_retries:
            raise InvalidTransition(
                self.id,
                source,
                name,
                self.allowed_events,
                f"all {self.max_retries} retries are used",
            )
        record = Transition(name, source, target, _jsonable(context or {}), self._now_iso())
        before = (self._context, self._history, self.updated)
        self._context = {**self._context, **record.context}
        self._history = [*self._history, record]
        self.updated = record.ts
        self._pending = record
        try:
            self._sm.send(name.lower())
            if self.state != target:  # pragma: no cover - TRANSITIONS is read from the machine
                raise WorkflowError(f"machine went to {self.state}, expected {target}")
            if self._store is not None:
                self._store.record(self.id, record, self._context)
        except BaseException as exc:
            self._context, self._history, self.updated = before
            self._sm = self._machine(source)
            if isinstance(exc, TransitionNotAllowed):
                raise InvalidTransition(self.id, source, name, self.allowed_events) from None
            raise
        finally:
            self._pending = None
        return record

    def register_entry_callback(self, state: WorkflowState | str, fn: Callback) -> Callback:
        """Call ``fn(transition)`` each time ``state`` is entered (after the source's exit)."""
        return self._register(self._on_entry, state, fn)

    def register_exit_callback(self, state: WorkflowState | str, fn: Callback) -> Callback:
        """Call ``fn(transition)`` each time ``state`` is left (before the target's entry)."""
        return self._register(self._on_exit, state, fn)

    def _register(self, table: dict[str, list[Callback]], state: Any, fn: Callback) -> Callback:
        if not callable(fn):
            raise InvalidInputError(f"a callback must be callable, got {fn!r}")
        table.setdefault(state_name(state), []).append(fn)
        return fn

    def _fire(self, table: dict[str, list[Callback]], state: str) -> None:
        if self._pending is None:  # the machine entering its start state on construction
            return
        for fn in list(table.get(state, ())):
            fn(self._pending)

    # -- dicts and diagrams ----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Everything needed to restore this workflow; ``from_dict(d).to_dict() == d``."""
        return {
            "workflow_id": self.id,
            "state": self.state,
            "context": self.context,
            "max_retries": self.max_retries,
            "created": self.created,
            "updated": self.updated,
            "history": [t.to_dict() for t in self._history],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, store: WorkflowStore | None = None) -> Workflow:
        """Restore a workflow from ``to_dict()``'s output; WorkflowError says what is wrong."""
        return cls(**_checked(data), store=store)

    def diagram(self) -> str:
        """The machine as mermaid ``stateDiagram-v2`` text, the current state highlighted."""
        return format(self._bare(), "mermaid")

    def _bare(self) -> WorkflowMachine:
        """A machine in the current state without listeners: its diagram shows no hooks."""
        return WorkflowMachine(start_value=self.state)

    def _repr_svg_(self) -> str | None:
        if shutil.which("dot") is None:
            return None
        try:
            return format(self._bare(), "svg")
        except Exception:  # pydot missing or dot failed: Jupyter falls back to the HTML
            return None

    def _repr_html_(self) -> str:
        svg = self._repr_svg_()
        if svg is not None:
            return f'<div class="ims-workflow">{svg}</div>'
        title = html.escape(f"workflow {self.id}: {self.state}")
        return f"<div><b>{title}</b><pre>{html.escape(self.diagram())}</pre></div>"

    def __repr__(self) -> str:
        return f"<Workflow {self.id} {self.state}, {len(self._history)} transitions>"


# -- helpers ---------------------------------------------------------------------------------
def _jsonable(context: Any) -> dict[str, Any]:
    """A context as it will read back from the database (JSON types, string keys)."""
    if not isinstance(context, Mapping):
        raise WorkflowError(f"a context must be a mapping, got {type(context).__name__}")
    return json.loads(json.dumps(dict(context), default=str))


_KEYS = {"workflow_id", "state", "context", "max_retries", "created", "updated", "history"}
_STEP_KEYS = {"event", "source", "target", "context", "ts"}


def _checked(data: Any) -> dict[str, Any]:
    """``from_dict``'s input turned into constructor arguments, or a WorkflowError."""

    def bad(what: str) -> WorkflowError:
        return WorkflowError(f"cannot restore workflow {wid!r}: {what}")

    wid = data.get("workflow_id") if isinstance(data, Mapping) else None
    if not isinstance(data, Mapping):
        raise bad(f"expected a dict from Workflow.to_dict(), got {type(data).__name__}")
    if unknown := set(data) - _KEYS:
        raise bad(f"unknown keys {sorted(unknown)}; expected {sorted(_KEYS)}")
    if missing := {"workflow_id", "state"} - set(data):
        raise bad(f"missing keys {sorted(missing)}")
    if not isinstance(wid, str) or not wid:
        raise bad("workflow_id must be a non-empty string")
    state = data["state"]
    if state not in STATES:
        raise bad(f"unknown state {state!r}; known: {', '.join(STATES)}")
    context = data.get("context", {})
    if not isinstance(context, Mapping):
        raise bad("context must be a dict")
    max_retries = data.get("max_retries", MAX_RETRIES)
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise bad(f"max_retries must be a whole number >= 0, got {max_retries!r}")
    for key in ("created", "updated"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise bad(f"{key} must be an ISO-8601 string")
    steps = data.get("history", [])
    if not isinstance(steps, list):
        raise bad("history must be a list")
    history: list[Transition] = []
    at = "IDLE"
    for i, step in enumerate(steps):
        if not isinstance(step, Mapping) or set(step) != _STEP_KEYS:
            raise bad(f"history[{i}] must be a dict with exactly the keys {sorted(_STEP_KEYS)}")
        event, source, target = step["event"], step["source"], step["target"]
        if event not in EVENTS:
            raise bad(f"history[{i}] has unknown event {event!r}; known: {', '.join(EVENTS)}")
        if TRANSITIONS.get((source, event)) != target or target is None:
            raise bad(f"history[{i}]: {source} --{event}--> {target} is not a transition")
        if source != at:
            raise bad(f"history[{i}] starts in {source} but the previous step ended in {at}")
        if not isinstance(step["context"], Mapping) or not isinstance(step["ts"], str):
            raise bad(f"history[{i}] needs a dict context and a string ts")
        history.append(Transition(event, source, target, _jsonable(step["context"]), step["ts"]))
        at = target
    if at != state:
        raise bad(f"state is {state} but the history ends in {at}")
    if sum(1 for t in history if t.event == "RETRY") > max_retries:
        raise bad(f"the history holds more RETRY steps than max_retries={max_retries}")
    return {
        "workflow_id": wid,
        "max_retries": max_retries,
        "context": context,
        "_state": state,
        "_history": history,
        "_created": data.get("created"),
        "_updated": data.get("updated"),
    }


# -- opening from a kit's database -----------------------------------------------------------
def open_workflow(
    store: WorkflowStore,
    workflow_id: str | None = None,
    *,
    max_retries: int = MAX_RETRIES,
    create: bool = True,
) -> Workflow:
    """The stored workflow ``workflow_id``, else a new one saved at once (``create=True``).

    ``max_retries`` applies to a new workflow; a stored one keeps its own bound.
    Raises UnknownWorkflowError when it is not stored and ``create`` is False.
    """
    if workflow_id is not None:
        data = store.load(workflow_id)
        if data is not None:
            return Workflow.from_dict(data, store=store)
        if not create:
            raise UnknownWorkflowError(workflow_id)
    wf = Workflow(workflow_id, max_retries=max_retries, store=store)
    try:
        store.create(wf.to_dict())
    except WorkflowError:  # another process created the same id in between: use theirs
        data = store.load(wf.id)
        if data is None:
            raise
        return Workflow.from_dict(data, store=store)
    return wf


def import_workflow(store: WorkflowStore, data: Mapping[str, Any]) -> Workflow:
    """Restore ``data`` (``to_dict()`` output) into the database and return it, saved.

    Importing the same dict twice is harmless; a different workflow under the same id is
    refused with WorkflowError.
    """
    wf = Workflow.from_dict(data)
    stored = store.load(wf.id)
    if stored is None:
        store.create(wf.to_dict())
    elif stored != wf.to_dict():
        raise WorkflowError(
            f"workflow {wf.id!r} is already in the database with another state or history;"
            " restore it under a new workflow_id"
        )
    wf._store = store
    return wf
