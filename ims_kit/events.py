"""The event log (the seed's "publisher"): rows in ``events`` plus in-process subscribers."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ims_kit.db import now_iso

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

    def __init__(self, db: Database):
        self._db = db
        self._subscribers: list[tuple[str | None, Subscriber]] = []

    def emit(self, kind: str, subject: str | None = None, **payload: Any) -> Event:
        """Append an event and call the subscribers; a failing subscriber is logged, not raised."""
        ts = now_iso()
        cursor = self._db.execute(
            "INSERT INTO events (ts, kind, subject, payload) VALUES (?, ?, ?, ?)",
            [ts, kind, subject, json.dumps(payload, default=str)],
        )
        event = Event(kind, subject, payload, ts, cursor.lastrowid)
        for wanted, fn in list(self._subscribers):
            if wanted is None or wanted == kind:
                try:
                    fn(event)
                except Exception:  # a listener must never break the call that emitted
                    log.exception("event subscriber %r failed on %s", fn, kind)
        return event

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
