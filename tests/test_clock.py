"""The clock a Kit's parts share, and the timestamp text every table stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ims_kit.clock import Clock, as_clock, epoch, iso, since_iso
from ims_kit.errors import InvalidInputError


def test_iso_and_epoch_round_trip_to_the_microsecond():
    """A stored timestamp is UTC ISO-8601 with microseconds and reads back to the same instant."""
    text = iso(1_800_000_000.123456)
    assert text == "2027-01-15T08:00:00.123456+00:00"
    assert epoch(text) == pytest.approx(1_800_000_000.123456, abs=1e-6)
    assert epoch(None) is None


def test_a_clock_reads_its_source_and_can_be_swapped_for_a_block(clock):
    """``using`` reads another source until the block ends, even when it raises."""
    shared = as_clock(clock)
    assert shared() == clock.now and shared.now_iso() == iso(clock.now)
    with pytest.raises(RuntimeError), shared.using(lambda: 5.0):
        assert shared() == 5.0
        raise RuntimeError
    assert shared() == clock.now
    assert as_clock(shared) is shared and isinstance(as_clock(None), Clock)


@pytest.mark.parametrize(
    ("since", "expected"),
    [
        (timedelta(hours=1), "2027-01-15T07:00:00.000000+00:00"),
        (datetime(2026, 1, 1, 12, tzinfo=UTC), "2026-01-01T12:00:00.000000+00:00"),
        (datetime(2026, 1, 1, 12), "2026-01-01T12:00:00.000000+00:00"),  # naive is UTC
        ("2026-01-01T13:00:00+01:00", "2026-01-01T12:00:00.000000+00:00"),
    ],
)
def test_since_is_stored_text_counted_back_from_now(since, expected):
    """A timedelta counts back from the given now; datetimes and ISO text become UTC."""
    assert since_iso(since, now=1_800_000_000.0) == expected


def test_a_bad_since_is_refused():
    """Anything else is a clear error naming the accepted forms."""
    with pytest.raises(InvalidInputError, match="datetime, a timedelta or an ISO-8601"):
        since_iso("yesterday")
