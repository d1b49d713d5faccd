"""The dashboard's numbers: usage views aggregated in SQL, their derivations, event queries."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from ims_kit import usage_views as v
from ims_kit.errors import InvalidInputError


def log(kit, model="gpt-5-nano", vendor="OpenAI", *, latency=100.0, ok=True, price=1.0, **kw):
    """One usage row with round numbers: 1,000 tokens in and out at ``price`` $/M each."""
    return kit.usage.log_execution(
        model_id=model,
        vendor_id=vendor,
        tokens_in=1_000,
        tokens_out=1_000 if ok else 0,
        cost_per_mil_in=price,
        cost_per_mil_out=price,
        latency_ms=latency,
        success=ok,
        error_kind=None if ok else kw.pop("kind", "OVERLOAD"),
        provider=kw.pop("provider", "simulated"),
        **kw,
    )


@pytest.fixture
def logged(kit):
    """Three models, real and simulated calls, one unpriced model, a few failures."""
    rng = random.Random(5)
    for _ in range(200):
        log(kit, latency=rng.lognormvariate(math.log(400), 0.3))
    for _ in range(50):
        log(kit, "claude-haiku-4-5", "Anthropic", latency=900.0, provider="anthropic", price=2.0)
    for _ in range(10):
        log(kit, "llama-3.1-8b", "Meta", latency=50.0, price=None)
    for kind in ("OVERLOAD", "OVERLOAD", "TIMEOUT"):
        log(kit, ok=False, kind=kind)
    return kit


def test_cost_over_time_sums_to_the_totals_and_keeps_unpriced_apart(logged):
    """Per bucket and model: the sums match totals(); unpriced calls are NaN cost, never $0."""
    frame = logged.usage.cost_over_time()
    assert frame["requests"].sum() == 263
    by_model = v.cost_by_model(frame).set_index("model")
    assert math.isnan(by_model.loc["llama-3.1-8b", "cost_usd"])
    assert by_model.loc["llama-3.1-8b", "unpriced_requests"] == 10
    assert by_model.loc["claude-haiku-4-5", "cost_per_request_usd"] == pytest.approx(0.004)
    assert by_model.loc["claude-haiku-4-5", "vendor"] == "Anthropic"
    figures = v.totals(frame)
    assert figures["cost_usd"] == pytest.approx(50 * 0.004)  # real spend only
    assert figures["simulated_cost_usd"] == pytest.approx(200 * 0.002 + 3 * 0.001)
    assert figures["unpriced_requests"] == 10
    assert figures["failures"] == 3
    assert frame.attrs["bucket_s"] > 0


def test_overview_has_the_exact_p95_and_matches_per_bucket_rows(logged):
    """overview(): totals from the per-bucket frame and the nearest-rank p95 of successes."""
    figures = logged.usage.overview()
    ok = logged.usage.to_frame().query("success")["latency_ms"].sort_values().tolist()
    assert figures["p95_latency_ms"] == ok[math.ceil(0.95 * len(ok)) - 1]
    assert figures["requests"] == 263
    assert figures["simulated_requests"] == 213


def test_percentiles_from_the_histogram_are_within_two_and_a_half_percent(logged):
    """p50/p95/p99 read from 2.5%-wide log bins stay within 2.5% of the exact values."""
    exact = {r["model"]: r for r in logged.usage.summary_rows("model")}
    for row in logged.usage.latency_percentiles().to_dict("records"):
        for p in ("p50", "p95", "p99"):
            want = exact[row["model"]][f"{p}_latency_ms"]
            assert row[f"{p}_latency_ms"] == pytest.approx(want, rel=0.025)


def test_percentiles_over_time_and_overall(logged):
    """The same histogram gives percentiles per bucket and over everything."""
    hist = logged.usage.latency_histogram()
    assert {"bucket", "model", "bin", "count", "latency_lo_ms", "latency_hi_ms"} <= set(hist)
    overall = v.percentiles(hist, by=None)
    assert overall["requests"].item() == 260
    assert len(v.percentiles(hist, by="bucket")) == hist["bucket"].nunique()
    assert v.percentiles(hist.iloc[0:0], by=None)["p95_latency_ms"].isna().all()


@pytest.mark.parametrize(
    ("filters", "requests"),
    [
        ({"vendors": "Anthropic"}, 50),
        ({"models": ["llama-3.1-8b", "claude-haiku-4-5"]}, 60),
        ({"since": timedelta(hours=1)}, 263),
        ({"since": datetime.now(UTC) + timedelta(hours=1)}, 0),
    ],
)
def test_filters_select_vendors_models_and_time(logged, filters, requests):
    """vendors, models and since narrow every view the same way."""
    assert logged.usage.cost_over_time(**filters)["requests"].sum() == requests
    assert logged.usage.overview(**filters)["requests"] == requests


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
        v.bucket_seconds(first.isoformat(), (first + timedelta(seconds=seconds)).isoformat())
        == width
    )


def test_bad_bucket_width_is_refused(logged):
    """A bucket must be a positive number of seconds."""
    with pytest.raises(InvalidInputError, match="bucket_s"):
        logged.usage.cost_over_time(bucket_s=0)


def test_parallel_reading_gives_the_same_numbers(logged, monkeypatch):
    """Split over id ranges on several connections, the views add up to the single query."""
    single = logged.usage.cost_over_time(), logged.usage.latency_histogram()
    monkeypatch.setattr(v, "PARALLEL_MIN_ROWS", 1)
    monkeypatch.setattr(v.os, "cpu_count", lambda: 3, raising=False)
    assert len(v._id_ranges(logged.db, v.UsageFilter())) >= 2
    split = logged.usage.cost_over_time(), logged.usage.latency_histogram()
    for one, many in zip(single, split):
        keys = [c for c in ("bucket", "model", "simulated", "bin") if c in one]
        pd.testing.assert_frame_equal(
            one.sort_values(keys).reset_index(drop=True),
            many.sort_values(keys).reset_index(drop=True),
            check_dtype=False,
        )


def test_empty_log_gives_empty_views(kit):
    """No rows: empty frames, zero totals, no p95, no models seen."""
    assert kit.usage.cost_over_time().empty
    assert kit.usage.latency_histogram().empty
    assert kit.usage.overview()["p95_latency_ms"] is None
    assert kit.usage.overview()["requests"] == 0
    assert kit.usage.models_seen() == []


def test_events_find_filters_by_kind_prefix_subject_and_time(kit):
    """find() takes kinds, a kind prefix, subjects and since; newest first unless asked."""
    kit.events.emit("circuit.opened", "a")
    kit.events.emit("circuit.closed", "a")
    kit.events.emit("circuit.opened", "b")
    kit.events.emit("model.executed", "a")
    assert [e.kind for e in kit.events.find(kind_prefix="circuit.", subjects="a")] == [
        "circuit.closed",
        "circuit.opened",
    ]
    oldest = kit.events.find(kind_prefix="circuit.", oldest_first=True)
    assert [e.subject for e in oldest] == ["a", "a", "b"]
    assert len(kit.events.find(kinds=["model.executed", "circuit.opened"])) == 3
    assert kit.events.find(since=datetime.now(UTC) + timedelta(minutes=1)) == []
    assert len(kit.events.find(limit=2)) == 2


def test_events_kind_counts_all_time_since_and_chosen_kinds(kit):
    """kind_counts() per kind: every kind, only some, or since a time."""
    for kind in ("b.x", "a.y", "b.x"):
        kit.events.emit(kind, None)
    assert kit.events.kind_counts() == {"a.y": 1, "b.x": 2}
    assert kit.events.kind_counts(kinds=["b.x", "c.z"]) == {"b.x": 2, "c.z": 0}
    assert kit.events.kind_counts(since=timedelta(minutes=5)) == {"a.y": 1, "b.x": 2}
    assert kit.events.kind_counts(since=datetime.now(UTC) + timedelta(minutes=1)) == {}
