"""The ``batch_items`` table: what each prompt of a named batch came to, so a rerun sends only
the prompts that have no answer yet. An item is keyed by its batch name, its position and a
digest of what it asks (an edited prompt is asked again)."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from ims_kit.clock import Clock, as_clock
from ims_kit.db import immediate

if TYPE_CHECKING:
    from sqlite_utils import Database


def digest(item: Any) -> str:
    """A stable fingerprint of what one item asks (its prompt or messages and options)."""
    text = json.dumps(item, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class BatchStore:
    """Answers and errors of named batches."""

    def __init__(self, db: Database, clock: Clock | None = None):
        self._db = db
        self.clock = as_clock(clock)

    def answered(self, batch: str) -> dict[int, tuple[str, dict[str, Any]]]:
        """Position -> (digest, the stored Answer as a dict) of every answered item."""
        rows = self._db.execute(
            "SELECT item, digest, answer FROM batch_items WHERE batch = ? AND answer IS NOT NULL",
            [batch],
        ).fetchall()
        return {item: (key, json.loads(answer)) for item, key, answer in rows}

    def record(
        self, batch: str, item: int, key: str, answer: dict[str, Any] | None, error: str | None
    ) -> None:
        """Keep what item ``item`` came to (an answer replaces an earlier error)."""
        with immediate(self._db):
            self._db.execute(
                "INSERT INTO batch_items (batch, item, digest, answer, error, updated)"
                " VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (batch, item) DO UPDATE SET digest = excluded.digest,"
                " answer = excluded.answer, error = excluded.error, updated = excluded.updated",
                [
                    batch,
                    item,
                    key,
                    None if answer is None else json.dumps(answer, default=str),
                    error,
                    self.clock.now_iso(),
                ],
            )

    def summary(self, batch: str) -> dict[str, int]:
        """How many items of the batch are answered and how many failed last time."""
        answered, failed = self._db.execute(
            "SELECT coalesce(sum(answer IS NOT NULL), 0), coalesce(sum(answer IS NULL), 0)"
            " FROM batch_items WHERE batch = ?",
            [batch],
        ).fetchone()
        return {"answered": answered, "failed": failed}

    def forget(self, batch: str) -> int:
        """Delete a batch's stored items (the next run asks everything again)."""
        with immediate(self._db):
            return self._db.execute("DELETE FROM batch_items WHERE batch = ?", [batch]).rowcount
