"""The event log (the seed's "publisher"): rows in ``events`` plus in-process subscribers.

``model.executed``, one per call attempt, is not a row of ``events``: it is the attempt's
``usage`` row, read back as an event. Writing it twice cost every call a third more pages
to commit (a usage row is what a call waits for), and the two copies said the same thing.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ims_kit.clock import Clock, as_clock, since_iso
from ims_kit.errors import InvalidInputError

if TYPE_CHECKING:
    from sqlite_utils import Database

log = logging.getLogger(__name__)

EXECUTED = "model.executed"  # an attempt: its usage row, read as an event
# the usage columns (UsageRecord fields) an attempt's event carries as its payload
EXECUTED_PAYLOAD = (
    "call_id", "request_id", "vendor_id", "provider", "tokens_in", "tokens_out", "cost_usd",
    "latency_ms", "ttft_ms", "success", "error_kind", "workflow_id", "attempt",
)  # fmt: skip
_EXECUTED_SELECT = f"SELECT id, ts, model_id, {', '.join(EXECUTED_PAYLOAD)} FROM usage"


@dataclass(frozen=True)
class Event:
    """One thing that happened: ``kind`` such as ``model.executed``, about ``subject``.

    ``id`` is the row's id in its table: ``usage`` for ``model.executed``, ``events`` else."""

    kind: str
    subject: str | None
    payload: dict[str, Any]
    ts: str
    id: int | None = None


Subscriber = Callable[[Event], None]


def _newest_first(event: Event) -> tuple[str, bool, int]:
    return event.ts, event.kind != EXECUTED, event.id or 0


def executed_event(row: tuple) -> Event:
    """The ``model.executed`` event of a usage row selected as ``_EXECUTED_SELECT`` does."""
    row_id, ts, model_id, *values = row
    payload = dict(zip(EXECUTED_PAYLOAD, values, strict=True))
    payload["success"] = bool(payload["success"])
    return Event(EXECUTED, model_id, payload, ts, row_id)


class EventLog:
    """Appends events to SQLite and tells subscribers in this process."""

    def __init__(self, db: Database, clock: Clock | None = None):
        self._db = db
        self.clock = as_clock(clock)
        self._subscribers: list[tuple[str | None, Subscriber]] = []

    def emit(self, kind: str, subject: str | None = None, **payload: Any) -> Event:
        """Append an event and call the subscribers; a failing subscriber is logged, not raised."""
        if kind == EXECUTED:
            raise InvalidInputError(
                "model.executed events are the usage rows: kit.usage.log_execution writes them"
            )
        event = self.insert(self._db, kind, subject, payload, self.clock.now_iso())
        self.notify(event)
        return event

    @staticmethod
    def insert(
        db: Database, kind: str, subject: str | None, payload: dict[str, Any], ts: str
    ) -> Event:
        """Append the event on ``db`` (the caller's transaction, e.g. the writer thread's)."""
        cursor = db.conn.execute(
            "INSERT INTO events (ts, kind, subject, payload) VALUES (?, ?, ?, ?)",
            [ts, kind, subject, json.dumps(payload, default=str)],
        )
        return Event(kind, subject, payload, ts, cursor.lastrowid)

    def notify(self, event: Event) -> None:
        """Call this process's subscribers of the event (once it is committed)."""
        for wanted, fn in list(self._subscribers):
            if wanted is None or wanted == event.kind:
                try:
                    fn(event)
                except Exception:  # a listener must never break the call that emitted
                    log.exception("event subscriber %r failed on %s", fn, event.kind)

    def subscribe(self, fn: Subscriber, kind: str | None = None) -> Callable[[], None]:
        """Call ``fn`` for every event (or only ``kind``); returns a function that unsubscribes."""
        entry = (kind, fn)
        self._subscribers.append(entry)
        return lambda: self._subscribers.remove(entry) if entry in self._subscribers else None

    def recent(self, limit: int = 50, kind: str | None = None) -> list[Event]:
        """The newest events first, optionally of one kind."""
        return self.find(kinds=kind, limit=limit)

    def count(self, kind: str) -> int:
        """How many events of this kind were ever logged."""
        if kind == EXECUTED:
            return self._db.execute("SELECT count(*) FROM usage").fetchone()[0]
        return self._db.execute("SELECT count(*) FROM events WHERE kind = ?", [kind]).fetchone()[0]

    def count_by_subject(self, kind: str) -> dict[str, int]:
        """Events of one kind counted per subject, e.g. ``model.queried`` per model id."""
        if kind == EXECUTED:
            sql, params = "SELECT model_id, count(*) FROM usage GROUP BY model_id", []
        else:
            sql = (
                "SELECT subject, count(*) FROM events WHERE kind = ? AND subject IS NOT NULL"
                " GROUP BY subject"
            )
            params = [kind]
        return dict(sorted(self._db.execute(sql, params).fetchall()))

    def find(
        self,
        *,
        kinds: str | list[str] | None = None,
        kind_prefix: str | None = None,
        subjects: str | list[str] | None = None,
        since: Any = None,
        limit: int = 200,
        oldest_first: bool = False,
    ) -> list[Event]:
        """The newest ``limit`` events matching every filter given (oldest first on request).

        ``kind_prefix`` such as ``"circuit."`` selects a family of kinds; ``since`` is a
        datetime, a timedelta back from now or an ISO-8601 string; a negative ``limit``, all.
        Newest means by time; at one instant an attempt (``model.executed``) comes before the
        events stored with it.
        """
        wanted = [kinds] if isinstance(kinds, str) and kinds else list(kinds or [])
        others = [k for k in wanted if k != EXECUTED]
        upper = kind_prefix[:-1] + chr(ord(kind_prefix[-1]) + 1) if kind_prefix else None
        executed = (not wanted or EXECUTED in wanted) and (
            upper is None or kind_prefix <= EXECUTED < upper
        )
        subject_list = [subjects] if isinstance(subjects, str) else list(subjects or [])
        start = None if since is None else since_iso(since, self.clock())
        found: list[list[Event]] = []
        if others or not wanted:
            clauses, params = ["kind != ?"], [EXECUTED]  # copies an older ims_kit wrote
            if others:
                clauses.append(f"kind IN ({', '.join('?' * len(others))})")
                params.extend(others)
            if kind_prefix:  # a range on the (kind, subject) index, not a LIKE scan
                clauses.append("kind >= ? AND kind < ?")
                params += [kind_prefix, upper]
            sql = "SELECT id, ts, kind, subject, payload FROM events"
            rows = self._newest(sql, clauses, params, "subject", subject_list, start, limit)
            found.append([Event(k, s, json.loads(p), ts, i) for i, ts, k, s, p in rows])
        if executed:
            rows = self._newest(_EXECUTED_SELECT, [], [], "model_id", subject_list, start, limit)
            found.append([executed_event(row) for row in rows])
        # at one instant (a simulated clock's), an attempt before what it caused
        newest = heapq.merge(*found, key=_newest_first, reverse=True)
        events = list(itertools.islice(newest, None if int(limit) < 0 else int(limit)))
        if oldest_first:
            events.reverse()
        return events

    def _newest(self, select, clauses, params, subject_column, subjects, start, limit) -> list:
        """The newest ``limit`` rows of ``select`` (by time) matching the clauses."""
        if subjects:
            clauses.append(f"{subject_column} IN ({', '.join('?' * len(subjects))})")
            params.extend(subjects)
        if start is not None:
            clauses.append("ts >= ?")
            params.append(start)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        return self._db.execute(
            f"{select} {where} ORDER BY ts DESC, id DESC LIMIT ?", [*params, int(limit)]
        ).fetchall()

    def kind_counts(
        self, *, since: Any = None, kinds: str | list[str] | None = None
    ) -> dict[str, int]:
        """How many events of each kind (or of ``kinds``) were logged, since a time if given.

        Kinds are found by seeking the (kind, subject) index from one kind to the next, and
        each is counted on that index, so a log of millions of events answers at once;
        ``model.executed`` is counted on the usage table's time index.
        """
        kinds = [kinds] if isinstance(kinds, str) else kinds
        start = None if since is None else since_iso(since, self.clock())
        counts = self._stored_counts(start, kinds)
        if kinds is None or EXECUTED in kinds:
            sql, params = "SELECT count(*) FROM usage", []
            if start is not None:
                sql, params = "SELECT count(*) FROM usage WHERE ts >= ?", [start]
            n = self._db.execute(sql, params).fetchone()[0]
            if n or kinds is not None:
                counts[EXECUTED] = n
        if kinds is None:
            return dict(sorted(counts.items()))
        return {kind: counts[kind] for kind in kinds}

    def _stored_counts(self, start: str | None, kinds: list[str] | None) -> dict[str, int]:
        """Counts of the kinds stored in ``events`` (all of them when ``kinds`` is None)."""
        if kinds is None and start is not None:  # one pass over the time range
            rows = self._db.execute(
                # +kind: read the time range off the ts index, not every event off the kind one
                "SELECT kind, count(*) FROM events WHERE ts >= ? AND kind != ? GROUP BY +kind",
                [start, EXECUTED],
            ).fetchall()
            return dict(rows)
        if kinds is None:
            kinds = [
                k
                for (k,) in self._db.execute(
                    """WITH RECURSIVE k(kind) AS (
                           SELECT (SELECT min(kind) FROM events)
                           UNION ALL
                           SELECT (SELECT min(kind) FROM events WHERE kind > k.kind) FROM k
                           WHERE k.kind IS NOT NULL)
                       SELECT kind FROM k WHERE kind IS NOT NULL"""
                )
            ]
        where, extra = "kind = ?", []
        if start is not None:
            where, extra = "kind = ? AND ts >= ?", [start]
        counts = {}
        for kind in kinds:
            if kind != EXECUTED:
                sql = f"SELECT count(*) FROM events WHERE {where}"
                counts[kind] = self._db.execute(sql, [kind, *extra]).fetchone()[0]
        return counts
