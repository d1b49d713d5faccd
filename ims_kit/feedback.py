"""The ``feedback`` table: verdicts on answers (yours, and the workflow's validations), the
labels a router learns from on your own history (``ims route train --from-history``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ims_kit.clock import Clock, as_clock
from ims_kit.db import immediate
from ims_kit.errors import InvalidInputError

if TYPE_CHECKING:
    from sqlite_utils import Database

    from ims_kit.events import EventLog

SOURCES = ("user", "validation")


class Feedback:
    """Verdicts by call id: ``record`` one, ``training_rows`` for a strong/weak pair."""

    def __init__(self, db: Database, events: EventLog, clock: Clock | None = None):
        self._db = db
        self._events = events
        self.clock = as_clock(clock)

    def record(
        self, call_id: str, good: bool, *, source: str = "user", note: str | None = None
    ) -> None:
        """Say whether the answer of usage row ``call_id`` was good (a later verdict from the
        same source replaces an earlier one)."""
        if not isinstance(good, bool):
            raise InvalidInputError(f"good must be True or False, got {good!r}")
        if source not in SOURCES:
            raise InvalidInputError(f"unknown source {source!r}; known: {', '.join(SOURCES)}")
        with immediate(self._db):
            row = self._db.execute(
                "SELECT success FROM usage WHERE call_id = ?", [call_id]
            ).fetchone()
            if row is None:
                raise InvalidInputError(
                    f"no call {call_id!r} in the usage log (answer.call_id names one)"
                )
            if not row[0]:
                raise InvalidInputError(f"call {call_id!r} failed: it has no answer to judge")
            self._db.execute(
                "INSERT INTO feedback (call_id, source, good, note, ts) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (call_id, source) DO UPDATE SET good = excluded.good,"
                " note = excluded.note, ts = excluded.ts",
                [call_id, source, int(good), note, self.clock.now_iso()],
            )
            self._events.emit("feedback.recorded", call_id, good=good, source=source)

    def count(self) -> dict[str, int]:
        """Verdicts by source."""
        rows = self._db.execute("SELECT source, count(*) FROM feedback GROUP BY source").fetchall()
        return dict(rows)

    def training_rows(self, strong: str, weak: str) -> list[dict[str, Any]]:
        """One row per prompt that both models answered and that has a verdict on both
        (a user's verdict beats the validation's): ``prompt`` (its latest user turn, what a
        router scores), ``strong_correct``, ``weak_correct``. Needs the prompts kept
        (``store_text`` / ``IMS_STORE_TEXT=1``)."""
        rows = self._db.execute(
            """SELECT coalesce(u.routed_prompt, u.prompt), u.model_id, f.good, f.source,
                      u.call_id
               FROM feedback f JOIN usage u ON u.call_id = f.call_id
               WHERE u.model_id IN (?, ?) ORDER BY f.ts""",
            [strong, weak],
        ).fetchall()
        if rows and all(prompt is None for prompt, *_ in rows):
            raise InvalidInputError(
                "the judged calls kept no prompt: set IMS_STORE_TEXT=1 (or store_text=True)"
                " while they run, so that your history can train a router"
            )
        verdicts: dict[tuple[str, str], tuple[int, bool]] = {}
        for prompt, model, good, source, _ in rows:
            if prompt is None:
                continue
            rank = 1 if source == "user" else 0
            key = (prompt, model)
            if key not in verdicts or rank >= verdicts[key][0]:
                verdicts[key] = (rank, bool(good))
        prompts = {p for p, _ in verdicts}
        return [
            {
                "prompt": p,
                "strong_correct": verdicts[(p, strong)][1],
                "weak_correct": verdicts[(p, weak)][1],
            }
            for p in sorted(prompts)
            if (p, strong) in verdicts and (p, weak) in verdicts
        ]
