"""Time as ims_kit keeps it: UTC ISO-8601 text, read from one clock that a Kit's parts share.

Every timestamp a Kit writes (usage rows, events, breakers, workflows, the registry) comes
from the same ``Clock``, so a simulated workload on a simulated clock stamps everything on
one time line, and tests move that clock by hand instead of sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from ims_kit.errors import InvalidInputError

TimeSource = Callable[[], float]  # epoch seconds, like time.time


class Clock:
    """The time source a Kit's parts share: ``time.time`` unless a test or a simulation says."""

    def __init__(self, source: TimeSource = time.time):
        self.source = source

    def __call__(self) -> float:
        return self.source()

    def now_iso(self) -> str:
        """The current time of this clock as stored: UTC ISO-8601 with microseconds."""
        return iso(self.source())

    @contextmanager
    def using(self, source: TimeSource) -> Iterator[Clock]:
        """Read ``source`` instead until the block ends (a simulated workload's clock)."""
        saved, self.source = self.source, source
        try:
            yield self
        finally:
            self.source = saved


def as_clock(value: Clock | TimeSource | None) -> Clock:
    """A ``Clock`` from a Clock, a plain callable (a test's fake clock) or None (real time)."""
    if isinstance(value, Clock):
        return value
    return Clock(value or time.time)


def iso(epoch: float) -> str:
    """Epoch seconds as stored: UTC ISO-8601 with microseconds."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="microseconds")


def epoch(text: str | None) -> float | None:
    """A stored timestamp as epoch seconds (None stays None)."""
    return datetime.fromisoformat(text).timestamp() if text else None


def now_iso() -> str:
    """The wall-clock time as stored (for code that has no Kit clock)."""
    return iso(time.time())


def since_iso(since: Any, now: float | None = None) -> str:
    """A ``since`` filter (datetime, timedelta back from ``now``, ISO-8601 text) as stored text."""
    if isinstance(since, timedelta):
        return iso((time.time() if now is None else now) - since.total_seconds())
    if isinstance(since, datetime):
        aware = since if since.tzinfo else since.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat(timespec="microseconds")
    if isinstance(since, str):
        try:
            return since_iso(datetime.fromisoformat(since))
        except ValueError:
            pass
    raise InvalidInputError(
        f"since must be a datetime, a timedelta or an ISO-8601 string, got {since!r}"
    )
