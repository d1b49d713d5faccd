"""The event log (the seed's "publisher"): rows in ``events`` plus in-process subscribers."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ims_kit.clock import Clock, as_clock, since_iso

if TYPE_CHECKING:
    from sqlite_utils import Database

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    """One thing that happened: ``kind`` such as ``model.executed``, about ``subject``."""

    kind: str
    subject: str | None
    payload: dict[str, Any]
    ts: str
    id: int | None = None


Subscriber = Callable[[Event], None]


class EventLog:
    """Appends events to SQLite and tells subscribers in this process."""

    def __init__(self, db: Database, clock: Clock | None = None):
        self._db = db
        self.clock = as_clock(clock)
        self._subscribers: list[tuple[str | None, Subscriber]] = []

    def emit(self, kind: str, subject: str | None = None, **payload: Any) -> Event:
        """Append an event and call the subscribers; a failing subscriber is logged, not raised."""
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
        where, params = ("WHERE kind = ?", [kind]) if kind else ("", [])
        rows = self._db.execute(
            f"SELECT id, ts, kind, subject, payload FROM events {where} ORDER BY id DESC LIMIT ?",
            [*params, int(limit)],
        ).fetchall()
        return [Event(k, s, json.loads(p), ts, i) for i, ts, k, s, p in rows]

    def count(self, kind: str) -> int:
        """How many events of this kind were ever logged."""
        return self._db.execute("SELECT count(*) FROM events WHERE kind = ?", [kind]).fetchone()[0]

    def count_by_subject(self, kind: str) -> dict[str, int]:
        """Events of one kind counted per subject, e.g. ``model.queried`` per model id."""
        rows = self._db.execute(
            "SELECT subject, count(*) FROM events WHERE kind = ? AND subject IS NOT NULL"
            " GROUP BY subject ORDER BY subject",
            [kind],
        ).fetchall()
        return dict(rows)

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
        datetime, a timedelta back from now or an ISO-8601 string.
        """
        clauses, params = [], []
        for column, values in (("kind", kinds), ("subject", subjects)):
            if values:
                values = [values] if isinstance(values, str) else list(values)
                clauses.append(f"{column} IN ({', '.join('?' * len(values))})")
                params.extend(values)
        if kind_prefix:  # a range on the (kind, subject) index, not a LIKE scan
            clauses.append("kind >= ? AND kind < ?")
            params += [kind_prefix, kind_prefix[:-1] + chr(ord(kind_prefix[-1]) + 1)]
        if since is not None:
            clauses.append("ts >= ?")
            params.append(since_iso(since, self.clock()))
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._db.execute(
            f"SELECT id, ts, kind, subject, payload FROM events {where} ORDER BY id DESC LIMIT ?",
            [*params, int(limit)],
        ).fetchall()
        if oldest_first:
            rows.reverse()
        return [Event(k, s, json.loads(p), ts, i) for i, ts, k, s, p in rows]

    def kind_counts(
        self, *, since: Any = None, kinds: str | list[str] | None = None
    ) -> dict[str, int]:
        """How many events of each kind (or of ``kinds``) were logged, since a time if given.

        Kinds are found by seeking the (kind, subject) index from one kind to the next, and
        each is counted on that index, so a log of millions of events answers at once.
        """
        if kinds is None and since is not None:  # one pass over the time range
            rows = self._db.execute(
                # +kind: read the time range off the ts index, not every event off the kind one
                "SELECT kind, count(*) FROM events WHERE ts >= ? GROUP BY +kind ORDER BY kind",
                [since_iso(since, self.clock())],
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
        if since is not None:
            where, extra = "kind = ? AND ts >= ?", [since_iso(since, self.clock())]
        counts = {}
        for kind in [kinds] if isinstance(kinds, str) else kinds:
            sql = f"SELECT count(*) FROM events WHERE {where}"
            counts[kind] = self._db.execute(sql, [kind, *extra]).fetchone()[0]
        return counts
