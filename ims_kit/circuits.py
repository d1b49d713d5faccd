"""A circuit breaker per model: stop calling a failing model for a while, then probe it.

closed --(N consecutive counted failures)--> open --(open period over)--> half_open
half_open --(the one probe succeeds)--> closed;  --(the probe fails)--> open again

The state lives in the ``circuits`` table, so the dashboard and ``ims status`` in other
processes see it, and every read-then-write runs under ``BEGIN IMMEDIATE`` so two processes
never both take the half-open probe. The clock is injectable: tests never sleep.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ims_kit.clock import Clock, TimeSource, as_clock, epoch, iso
from ims_kit.db import immediate
from ims_kit.errors import ErrorKind

if TYPE_CHECKING:
    from sqlite_utils import Database

    from ims_kit.events import EventLog

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
# Failures that say nothing about the model's health: the request itself was wrong.
NOT_COUNTED = frozenset({ErrorKind.INVALID_REQUEST, ErrorKind.CONTEXT_OVERFLOW})


@dataclass(frozen=True)
class Permit:
    """Leave to make one call; ``probe`` is True for the single half-open trial call."""

    model_id: str
    probe: bool = False


class CircuitBreaker:
    """Per-model breakers sharing one table; thresholds and the clock are configurable."""

    def __init__(
        self,
        db: Database,
        events: EventLog,
        *,
        failure_threshold: int = 3,
        open_seconds: float = 60.0,
        probe_timeout_seconds: float = 120.0,
        clock: Clock | TimeSource | None = None,
    ):
        self._db = db
        self._events = events
        self.failure_threshold = failure_threshold
        self.open_seconds = open_seconds
        self.probe_timeout_seconds = probe_timeout_seconds
        self.clock = as_clock(clock)

    def allow(self, model_id: str) -> Permit | None:
        """A permit to call ``model_id`` now, or None while its circuit is open."""
        row = self._row(model_id)
        if row is None or row["state"] == CLOSED:
            return Permit(model_id)
        with immediate(self._db):
            row = self._row(model_id)  # re-read under the write lock
            if row is None or row["state"] == CLOSED:
                return Permit(model_id)
            now = self.clock()
            if row["state"] == OPEN:
                if now < epoch(row["retry_at"]):  # as stored by whoever opened it
                    return None
                self._write(model_id, state=HALF_OPEN, probe_started_at=iso(now))
                self._events.emit("circuit.half_open", model_id)
                return Permit(model_id, probe=True)
            started = epoch(row["probe_started_at"])
            if started is not None and now < started + self.probe_timeout_seconds:
                return None  # another caller holds the probe slot
            if started is not None:
                # The probe never reported (its process died, or it hangs): that counts as
                # a failure, so the circuit opens for another period and the slot is free.
                self._open(
                    model_id, row["consecutive_failures"] + 1, ErrorKind.TIMEOUT, now, reopened=True
                )
                return None
            self._write(model_id, probe_started_at=iso(now))
            return Permit(model_id, probe=True)

    def record_success(self, permit: Permit) -> None:
        """A call succeeded: reset the count; a successful probe closes the circuit."""
        row = self._row(permit.model_id)
        if row is None or (row["state"] == CLOSED and row["consecutive_failures"] == 0):
            return  # the common case writes nothing
        with immediate(self._db):
            row = self._row(permit.model_id)
            was = row["state"] if row else CLOSED
            self._write(
                permit.model_id,
                state=CLOSED,
                consecutive_failures=0,
                opened_at=None,
                retry_at=None,
                probe_started_at=None,
            )
            if was != CLOSED:
                self._events.emit("circuit.closed", permit.model_id, after=was)

    def record_failure(self, permit: Permit, kind: ErrorKind | str) -> None:
        """A call failed with ``kind``; counted failures may open (or reopen) the circuit."""
        kind = ErrorKind(kind)
        if kind in NOT_COUNTED:
            if permit.probe:
                self.release(permit)
            return
        with immediate(self._db):
            row = self._row(permit.model_id)
            failures = (row["consecutive_failures"] if row else 0) + 1
            state = row["state"] if row else CLOSED
            now = self.clock()
            if state == HALF_OPEN or (state == CLOSED and failures >= self.failure_threshold):
                self._open(permit.model_id, failures, kind, now, reopened=state == HALF_OPEN)
            else:
                self._write(
                    permit.model_id, consecutive_failures=failures, last_error_kind=str(kind)
                )

    def release(self, permit: Permit) -> None:
        """Give back a probe that ended without a verdict on the model's health."""
        if permit.probe:
            with immediate(self._db):
                self._write(permit.model_id, probe_started_at=None)

    def cancelled(self, permit: Permit) -> None:
        """A call that hung or was cancelled: counts as a failure and frees the probe slot."""
        self.record_failure(permit, ErrorKind.TIMEOUT)

    def is_open(self, model_id: str) -> bool:
        """True while the circuit is open (no call would be allowed before its period ends)."""
        row = self._row(model_id)
        return row is not None and row["state"] == OPEN

    def status(self) -> dict[str, dict[str, Any]]:
        """Every model with breaker history: state, failures, opened_at, retry_at, ..."""
        rows = self._db.execute(
            "SELECT model_id, state, consecutive_failures, opened_at, last_error_kind, updated,"
            " probe_started_at, retry_at FROM circuits ORDER BY model_id"
        ).fetchall()
        out = {}
        for model_id, state, failures, opened_at, last_kind, updated, probe, retry_at in rows:
            out[model_id] = {
                "state": state,
                "consecutive_failures": failures,
                "opened_at": opened_at,
                "retry_at": retry_at,
                "last_error_kind": last_kind,
                "probe_in_flight": probe is not None,
                "updated": updated,
            }
        return out

    def unavailable(self) -> dict[str, str]:
        """Models that would refuse a call now -> when they next let a probe through."""
        now = self.clock()
        out = {}
        for model_id, s in self.status().items():
            if s["state"] == OPEN and now < epoch(s["retry_at"]):
                out[model_id] = s["retry_at"]
            elif s["state"] == HALF_OPEN and s["probe_in_flight"]:
                out[model_id] = "its probe call returns"
        return out

    def reset(self, model_id: str | None = None) -> None:
        """Forget breaker history (of one model, or all)."""
        with immediate(self._db):
            if model_id is None:
                self._db.execute("DELETE FROM circuits")
            else:
                self._db.execute("DELETE FROM circuits WHERE model_id = ?", [model_id])

    # -- internals ------------------------------------------------------------------------
    def _open(
        self, model_id: str, failures: int, kind: ErrorKind, now: float, *, reopened: bool
    ) -> None:
        """Open the circuit for a full period (inside the caller's write transaction)."""
        self._write(
            model_id,
            state=OPEN,
            consecutive_failures=failures,
            opened_at=iso(now),
            retry_at=iso(now + self.open_seconds),  # stored: other processes may differ
            probe_started_at=None,
            last_error_kind=str(kind),
        )
        self._events.emit(
            "circuit.opened",
            model_id,
            failures=failures,
            error_kind=str(kind),
            retry_at=iso(now + self.open_seconds),
            reopened=reopened,
        )

    def _row(self, model_id: str) -> dict[str, Any] | None:
        cursor = self._db.execute(
            "SELECT state, consecutive_failures, opened_at, probe_started_at, retry_at"
            " FROM circuits WHERE model_id = ?",
            [model_id],
        )
        row = cursor.fetchone()
        if row is None:
            return None
        names = ("state", "consecutive_failures", "opened_at", "probe_started_at", "retry_at")
        return dict(zip(names, row))

    def _write(self, model_id: str, **fields: Any) -> None:
        fields["updated"] = iso(self.clock())
        names = list(fields)
        self._db.execute(
            f"INSERT INTO circuits (model_id, {', '.join(names)}) VALUES (?, "
            f"{', '.join('?' * len(names))}) ON CONFLICT (model_id) DO UPDATE SET "
            + ", ".join(f"{n} = excluded.{n}" for n in names),
            [model_id, *fields.values()],
        )
