"""The SQL behind the usage views: filters, time buckets, parallel reading, empty logs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from ims_kit import usage_queries as q
from ims_kit.errors import InvalidInputError


@pytest.mark.parametrize(
    ("filters", "attempts"),
    [
        ({"vendors": "Anthropic"}, 50),
        ({"models": ["llama-3.1-8b", "claude-haiku-4-5"]}, 60),
        ({"since": timedelta(hours=1)}, 263),
        ({"since": datetime.now(UTC) + timedelta(hours=1)}, 0),
    ],
)
def test_filters_select_vendors_models_and_time(logged, filters, attempts):
    """vendors, models and since narrow every view the same way."""
    assert logged.usage.cost_over_time(**filters)["attempts"].sum() == attempts
    assert logged.usage.overview(**filters)["attempts"] == attempts
    first, _ = logged.usage.span(**filters)
    assert (first is None) == (attempts == 0)


def test_requests_are_first_attempts_and_attempts_every_row(kit, log_row):
    """A request of three attempts (two failed, then an answer) is one request, three attempts."""
    for n, ok in ((1, False), (2, False), (3, True)):
        log_row(kit, ok=ok, attempt=n, request_id="r1")
    log_row(kit, attempt=1, request_id="r2")
    frame = kit.usage.cost_over_time()
    assert (frame["requests"].sum(), frame["attempts"].sum()) == (2, 4)
    assert frame["failed_attempts"].sum() == 2
    totals = kit.usage.totals()
    assert (totals["requests"], totals["failures"], totals["success_rate"]) == (2, 0, 1.0)
    assert [r.attempt for r in kit.usage.records(request_id="r1")] == [1, 2, 3]


def test_errors_by_kind_counts_failed_attempts(logged):
    """Failures per model and error kind, and per time bucket on request."""
    frame = logged.usage.errors_by_kind()
    assert frame.set_index("error_kind")["failures"].to_dict() == {"OVERLOAD": 2, "TIMEOUT": 1}
    assert logged.usage.errors_by_kind(over_time=True)["failures"].sum() == 3


@pytest.mark.parametrize(
    ("seconds", "width"), [(0, 0.1), (5, 0.1), (20, 0.5), (3_600, 60), (30 * 86400, 43200)]
)
def test_bucket_width_is_round_and_gives_at_most_sixty_buckets(seconds, width):
    """The bucket is the smallest round width that covers the span in 60 buckets."""
    first = datetime(2025, 1, 1, tzinfo=UTC)
    assert (
        q.bucket_seconds(first.isoformat(), (first + timedelta(seconds=seconds)).isoformat())
        == width
    )


def test_bad_bucket_width_is_refused(logged):
    """A bucket must be a positive number of seconds."""
    with pytest.raises(InvalidInputError, match="bucket_s"):
        logged.usage.cost_over_time(bucket_s=0)


def test_parallel_reading_gives_the_same_numbers(logged, monkeypatch):
    """Split over id ranges on several connections, the views add up to the single query."""
    single = logged.usage.cost_over_time(), logged.usage.latency_histogram()
    monkeypatch.setattr(q, "PARALLEL_MIN_ROWS", 1)
    monkeypatch.setattr(q.os, "cpu_count", lambda: 3, raising=False)
    assert len(q._id_ranges(logged.db, q.UsageFilter())) >= 2
    split = logged.usage.cost_over_time(), logged.usage.latency_histogram()
    for one, many in zip(single, split):
        keys = [c for c in ("bucket", "model", "simulated", "bin") if c in one]
        pd.testing.assert_frame_equal(
            one.sort_values(keys).reset_index(drop=True),
            many.sort_values(keys).reset_index(drop=True),
            check_dtype=False,
        )


def test_empty_log_gives_empty_views(kit):
    """No rows: empty frames, zero totals, no p95, no models seen, no span."""
    assert kit.usage.cost_over_time().empty
    assert kit.usage.latency_histogram().empty
    assert kit.usage.overview()["p95_latency_ms"] is None
    assert kit.usage.overview()["requests"] == 0
    assert kit.usage.models_seen() == []
    assert kit.usage.span() == (None, None)
