"""Circuit breakers: stop calling a failing model, or an unreachable endpoint, for a while, then
probe it.

closed --(N consecutive counted failures)--> open --(open period over)--> half_open
half_open --(the one probe succeeds)--> closed;  --(the probe fails)--> open again

A breaker is keyed by (name, scope, simulated): ``scope`` is ``model`` (the name is a model
id) or ``endpoint`` (the name is a base URL: a refused connection rules out every model behind
it); ``simulated`` keeps the breakers of simulated calls apart, so that a real outage never
refuses a simulated call and simulated faults never open a real breaker. The state lives in the
``circuits`` table, so the dashboard and ``ims status`` in other processes see it, and every
read-then-write runs under ``BEGIN IMMEDIATE`` so two processes never both take the half-open
probe. The clock is the Kit's: tests never sleep. A closed breaker has no retry time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ims_kit.clock import Clock, TimeSource, as_clock, epoch, iso
from ims_kit.db import Generation, immediate
from ims_kit.errors import ErrorKind

if TYPE_CHECKING:
    from sqlite_utils import Database

    from ims_kit.events import EventLog

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
MODEL, ENDPOINT = "model", "endpoint"
# Failures that say nothing about the model's health: the request itself was wrong.
NOT_COUNTED = frozenset(
    {ErrorKind.INVALID_REQUEST, ErrorKind.CONTEXT_OVERFLOW, ErrorKind.CONFIGURATION}
)
_FIELDS = ("state", "consecutive_failures", "opened_at", "probe_started_at", "retry_at")


@dataclass(frozen=True)
class Permit:
    """Leave to make one call; ``probe`` is True for the single half-open trial call."""

    model_id: str
    probe: bool = False
    scope: str = MODEL
    simulated: bool = False


def display_key(name: str, scope: str = MODEL, simulated: bool = False) -> str:
    """How a breaker is named in status tables: the model id (or base URL), '[simulated]'
    added for a simulated call's breaker."""
    return f"{name} [simulated]" if simulated else name


class CircuitBreaker:
    """Breakers sharing one table; thresholds and the clock are configurable."""

    def __init__(
        self,
        db: Database,
        events: EventLog,
        *,
        failure_threshold: int = 3,
        open_seconds: float = 60.0,
        probe_timeout_seconds: float = 120.0,
        clock: Clock | TimeSource | None = None,
        generation: Generation | None = None,
    ):
        self._db = db
        self._events = events
        self.failure_threshold = failure_threshold
        self.open_seconds = open_seconds
        self.probe_timeout_seconds = probe_timeout_seconds
        self.clock = as_clock(clock)
        self._generation = self.generation = generation or Generation(db)
        self._cache: tuple[Any, dict[tuple, dict[str, Any]]] | None = None

    def allow(self, model_id: str, *, scope: str = MODEL, simulated: bool = False) -> Permit | None:
        """A permit to call now, or None while the breaker is open (or its probe is out)."""
        key = (model_id, scope, int(simulated))
        row = self._rows().get(key)
        if row is None or row["state"] == CLOSED:
            return Permit(model_id, False, scope, simulated)
        with immediate(self._db):
            row = self._row(key)  # re-read under the write lock
            if row is None or row["state"] == CLOSED:
                return Permit(model_id, False, scope, simulated)
            now = self.clock()
            if row["state"] == OPEN:
                if now < (epoch(row["retry_at"]) or now):  # as stored by whoever opened it
                    return None
                self._write(key, state=HALF_OPEN, probe_started_at=iso(now))
                self._emit("circuit.half_open", key)
                return Permit(model_id, True, scope, simulated)
            started = epoch(row["probe_started_at"])
            if started is not None and now < started + self.probe_timeout_seconds:
                return None  # another caller holds the probe slot
            if started is not None:
                # The probe never reported (its process died, or it hangs): that counts as
                # a failure, so the circuit opens for another period and the slot is free.
                failures = row["consecutive_failures"] + 1
                self._open(key, failures, ErrorKind.TIMEOUT, now, reopened=True)
                return None
            self._write(key, probe_started_at=iso(now))
            return Permit(model_id, True, scope, simulated)

    def record_success(self, permit: Permit) -> None:
        """A call succeeded: reset the count; a successful probe closes the circuit."""
        key = _key(permit)
        row = self._rows().get(key)
        if row is None or (row["state"] == CLOSED and row["consecutive_failures"] == 0):
            return  # the common case reads the cache and writes nothing
        with immediate(self._db):
            row = self._row(key)
            was = row["state"] if row else CLOSED
            self._write(
                key,
                state=CLOSED,
                consecutive_failures=0,
                opened_at=None,
                retry_at=None,
                probe_started_at=None,
            )
            if was != CLOSED:
                self._emit("circuit.closed", key, after=was)

    def record_failure(
        self, permit: Permit, kind: ErrorKind | str, *, counted: bool | None = None
    ) -> None:
        """A call failed with ``kind``; counted failures may open (or reopen) the circuit.

        ``counted`` (the classification's say) defaults to: every kind but those that blame
        the request (``NOT_COUNTED``)."""
        kind = ErrorKind(kind)
        if not (kind not in NOT_COUNTED if counted is None else counted):
            if permit.probe:
                self.release(permit)
            return
        key = _key(permit)
        with immediate(self._db):
            row = self._row(key)
            failures = (row["consecutive_failures"] if row else 0) + 1
            state = row["state"] if row else CLOSED
            now = self.clock()
            if state == HALF_OPEN or (state == CLOSED and failures >= self.failure_threshold):
                self._open(key, failures, kind, now, reopened=state == HALF_OPEN)
            else:
                self._write(key, consecutive_failures=failures, last_error_kind=str(kind))

    def release(self, permit: Permit) -> None:
        """Give back a probe that ended without a verdict on the health."""
        if permit.probe:
            with immediate(self._db):
                self._write(_key(permit), probe_started_at=None)

    def cancelled(self, permit: Permit) -> None:
        """A call that hung or was cancelled: counts as a failure and frees the probe slot."""
        self.record_failure(permit, ErrorKind.TIMEOUT)

    def is_open(self, model_id: str, *, scope: str = MODEL, simulated: bool = False) -> bool:
        """True while the circuit is open (no call would be allowed before its period ends)."""
        row = self._rows().get((model_id, scope, int(simulated)))
        return row is not None and row["state"] == OPEN

    def get(
        self, model_id: str, *, scope: str = MODEL, simulated: bool = False
    ) -> dict[str, Any] | None:
        """One breaker's entry of ``status()`` (None when it has no history)."""
        entry = self.status().get(display_key(model_id, scope, simulated))
        return entry if entry is not None and entry["scope"] == scope else None

    def status(self) -> dict[str, dict[str, Any]]:
        """Every breaker with history, by ``display_key``: its name, scope, whether it is a
        simulated call's, state, failures, opened_at, retry_at (None unless open), ..."""
        out = {}
        for (name, scope, sim), row in sorted(
            self._rows().items(), key=lambda kv: (kv[0][2], kv[0][1] != "model", kv[0][0])
        ):
            out[display_key(name, scope, bool(sim))] = {
                "model_id": name,
                "scope": scope,
                "simulated": bool(sim),
                "state": row["state"],
                "consecutive_failures": row["consecutive_failures"],
                "opened_at": row["opened_at"],
                "retry_at": row["retry_at"] if row["state"] != CLOSED else None,
                "last_error_kind": row["last_error_kind"],
                "probe_in_flight": row["probe_started_at"] is not None,
                "updated": row["updated"],
            }
        return out

    def unavailable(self, *, scope: str = MODEL, simulated: bool = False) -> dict[str, str]:
        """Names of that scope and world refusing a call now -> when they next let a probe
        through (model ids by default; base URLs with ``scope="endpoint"``)."""
        now = self.clock()
        out = {}
        for s in self.status().values():
            if s["scope"] != scope or s["simulated"] != simulated:
                continue
            if s["state"] == OPEN and now < (epoch(s["retry_at"]) or now):
                out[s["model_id"]] = s["retry_at"]
            elif s["state"] == HALF_OPEN and s["probe_in_flight"]:
                out[s["model_id"]] = "its probe call returns"
        return out

    def refusing(self) -> dict[str, str]:
        """Every breaker refusing calls now, of any scope or world, by ``display_key`` -> when
        it next lets a probe through (what status tables mark)."""
        out = {}
        for scope in (MODEL, ENDPOINT):
            for simulated in (False, True):
                for name, until in self.unavailable(scope=scope, simulated=simulated).items():
                    out[display_key(name, scope, simulated)] = until
        return out

    def reset(self, model_id: str | None = None) -> None:
        """Forget breaker history (of one model or endpoint, in every world; or all)."""
        with immediate(self._db):
            if model_id is None:
                self._db.execute("DELETE FROM circuits")
            else:
                self._db.execute("DELETE FROM circuits WHERE model_id = ?", [model_id])
            self._generation.moved()

    # -- internals ------------------------------------------------------------------------
    def _open(
        self, key: tuple, failures: int, kind: ErrorKind, now: float, *, reopened: bool
    ) -> None:
        """Open the circuit for a full period (inside the caller's write transaction)."""
        retry_at = iso(now + self.open_seconds)  # stored: other processes may differ
        self._write(
            key,
            state=OPEN,
            consecutive_failures=failures,
            opened_at=iso(now),
            retry_at=retry_at,
            probe_started_at=None,
            last_error_kind=str(kind),
        )
        self._emit(
            "circuit.opened",
            key,
            failures=failures,
            error_kind=str(kind),
            retry_at=retry_at,
            reopened=reopened,
        )

    def _emit(self, kind: str, key: tuple, **payload: Any) -> None:
        name, scope, simulated = key
        self._events.emit(kind, name, scope=scope, simulated=bool(simulated), **payload)

    def _rows(self) -> dict[tuple, dict[str, Any]]:
        """Every breaker row by key, re-read only when the state version moved (a breaker,
        here or in another process, changed)."""
        version = self._generation.current()
        if self._cache is None or self._cache[0] != version:
            names = (*_FIELDS, "last_error_kind", "updated")
            cursor = self._db.execute(
                f"SELECT model_id, scope, simulated, {', '.join(names)} FROM circuits"
            )
            rows = {tuple(r[:3]): dict(zip(names, r[3:])) for r in cursor.fetchall()}
            self._cache = (version, rows)
        return self._cache[1]

    def _row(self, key: tuple) -> dict[str, Any] | None:
        cursor = self._db.execute(
            f"SELECT {', '.join(_FIELDS)} FROM circuits"
            " WHERE model_id = ? AND scope = ? AND simulated = ?",
            list(key),
        )
        row = cursor.fetchone()
        return None if row is None else dict(zip(_FIELDS, row))

    def _write(self, key: tuple, **fields: Any) -> None:
        fields["updated"] = iso(self.clock())
        names = list(fields)
        self._db.execute(
            f"INSERT INTO circuits (model_id, scope, simulated, {', '.join(names)}) VALUES"
            f" (?, ?, ?, {', '.join('?' * len(names))}) ON CONFLICT (model_id, scope, simulated)"
            " DO UPDATE SET " + ", ".join(f"{n} = excluded.{n}" for n in names),
            [*key, *fields.values()],
        )
        self._generation.moved()


def _key(permit: Permit) -> tuple:
    return permit.model_id, permit.scope, int(permit.simulated)
