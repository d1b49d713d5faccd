"""The ``workflows`` and ``workflow_transitions`` tables: the only SQL the workflow needs."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ims_kit.clock import Clock, as_clock
from ims_kit.db import immediate
from ims_kit.errors import WorkflowError

if TYPE_CHECKING:
    from sqlite_utils import Database

    from ims_kit.events import EventLog
    from ims_kit.workflow_machine import Transition


@dataclass(frozen=True)
class WorkflowSummary:
    """One row of ``kit.workflows()``: where a workflow is, since when, how far it went."""

    workflow_id: str
    state: str
    created: str
    updated: str
    transitions: int
    context: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``ims workflows --json``)."""
        return {
            "workflow_id": self.workflow_id,
            "state": self.state,
            "created": self.created,
            "updated": self.updated,
            "transitions": self.transitions,
            "context": dict(self.context),
        }


class WorkflowStore:
    """Reads and writes workflows; every transition commits with its ``workflow.state_changed``."""

    def __init__(self, db: Database, events: EventLog, clock: Clock | None = None):
        self._db = db
        self._events = events
        self.clock = as_clock(clock)  # the kit's: transitions are stamped on its time line

    def create(self, data: dict[str, Any]) -> None:
        """Insert a workflow (``Workflow.to_dict()`` shape) with its history, all or nothing."""
        with immediate(self._db):
            if self._state(data["workflow_id"]) is not None:
                raise WorkflowError(f"workflow {data['workflow_id']!r} already exists")
            self._db.execute(
                "INSERT INTO workflows (workflow_id, state, context, created, updated, max_retries)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [
                    data["workflow_id"],
                    data["state"],
                    json.dumps(data["context"]),
                    data["created"],
                    data["updated"],
                    data["max_retries"],
                ],
            )
            for step in data["history"]:
                self._insert_step(data["workflow_id"], step)

    def record(self, workflow_id: str, step: Transition, context: dict[str, Any]) -> None:
        """Save one transition: new state and context, the transition row, the event.

        Raises WorkflowError (and writes nothing) when the stored state is not the step's
        source: another process moved this workflow on since it was loaded.
        """
        with immediate(self._db):
            stored = self._state(workflow_id)
            if stored is None:
                raise WorkflowError(f"workflow {workflow_id!r} is no longer in the database")
            if stored != step.source:
                raise WorkflowError(
                    f"workflow {workflow_id} is {stored} in the database, not {step.source}:"
                    " another process moved it on; reload it with kit.workflow(id)"
                )
            self._db.execute(
                "UPDATE workflows SET state = ?, context = ?, updated = ? WHERE workflow_id = ?",
                [step.target, json.dumps(context), step.ts, workflow_id],
            )
            self._insert_step(workflow_id, step.to_dict())
            self._events.emit(
                "workflow.state_changed",
                workflow_id,
                source=step.source,
                target=step.target,
                event=step.event,
                context=step.context,
            )

    def load(self, workflow_id: str) -> dict[str, Any] | None:
        """The workflow in ``Workflow.to_dict()`` shape, or None when the id is unknown."""
        row = self._db.execute(
            "SELECT workflow_id, state, context, max_retries, created, updated"
            " FROM workflows WHERE workflow_id = ?",
            [workflow_id],
        ).fetchone()
        if row is None:
            return None
        steps = self._db.execute(
            "SELECT event, source, target, context, ts FROM workflow_transitions"
            " WHERE workflow_id = ? ORDER BY id",
            [workflow_id],
        ).fetchall()
        return {
            "workflow_id": row[0],
            "state": row[1],
            "context": json.loads(row[2]),
            "max_retries": row[3],
            "created": row[4],
            "updated": row[5],
            "history": [
                {"event": e, "source": s, "target": t, "context": json.loads(c), "ts": ts}
                for e, s, t, c, ts in steps
            ],
        }

    def list(self, state: str | None = None, limit: int = 50) -> list[WorkflowSummary]:
        """The most recently updated workflows first, optionally only those in ``state``."""
        where, params = ("WHERE w.state = ?", [state]) if state else ("", [])
        rows = self._db.execute(
            "SELECT w.workflow_id, w.state, w.created, w.updated, w.context,"
            " (SELECT count(*) FROM workflow_transitions t WHERE t.workflow_id = w.workflow_id)"
            f" FROM workflows w {where} ORDER BY w.updated DESC, w.rowid DESC LIMIT ?",
            [*params, int(limit)],
        ).fetchall()
        return [
            WorkflowSummary(wid, st, created, updated, n, json.loads(ctx))
            for wid, st, created, updated, ctx, n in rows
        ]

    def _state(self, workflow_id: str) -> str | None:
        row = self._db.execute(
            "SELECT state FROM workflows WHERE workflow_id = ?", [workflow_id]
        ).fetchone()
        return None if row is None else row[0]

    def _insert_step(self, workflow_id: str, step: dict[str, Any]) -> None:
        self._db.execute(
            "INSERT INTO workflow_transitions (workflow_id, ts, event, source, target, context)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [
                workflow_id,
                step["ts"],
                step["event"],
                step["source"],
                step["target"],
                json.dumps(step["context"]),
            ],
        )
