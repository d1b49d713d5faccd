"""DataFrames of the usage views and what the charts derive from them: cost per model,
totals, percentiles, running cost."""

from __future__ import annotations

import math

import pytest

from ims_kit import usage_frames as frames


def test_cost_by_model_and_totals_keep_unpriced_and_simulated_apart(logged):
    """Per model: unpriced cost is unknown (None), never $0; totals split real and simulated."""
    timeline = logged.usage.cost_over_time()
    assert timeline["attempts"].sum() == 263
    by_model = frames.cost_by_model(timeline).set_index("model")
    assert by_model.loc["llama-3.1-8b", "cost_usd"] is None
    assert by_model.loc["llama-3.1-8b", "unpriced_attempts"] == 10
    assert by_model.loc["claude-haiku-4-5", "cost_per_attempt_usd"] == pytest.approx(0.004)
    assert by_model.loc["claude-haiku-4-5", "vendor"] == "Anthropic"
    figures = frames.totals(timeline)
    assert figures["cost"] == pytest.approx(50 * 0.004)  # real spend only
    assert figures["simulated_cost"] == pytest.approx(200 * 0.002 + 3 * 0.001)
    assert figures["unpriced_attempts"] == 10
    assert (figures["failures"], figures["failed_attempts"]) == (3, 3)
    assert timeline.attrs["bucket_s"] > 0


def test_frame_totals_equal_the_sql_totals(logged):
    """The dashboard's totals (from the timeline) and kit.usage.totals(): one shape, agreeing."""
    from_frame = frames.totals(logged.usage.cost_over_time())
    from_sql = logged.usage.totals()
    assert from_frame.keys() == from_sql.keys()
    for key, value in from_sql.items():
        assert from_frame[key] == pytest.approx(value), key


def test_overview_has_the_exact_p95(logged):
    """overview(): totals from the per-bucket frame and the nearest-rank p95 of successes."""
    figures = logged.usage.overview()
    ok = logged.usage.to_frame().query("success")["latency_ms"].sort_values().tolist()
    assert figures["p95_latency_ms"] == ok[math.ceil(0.95 * len(ok)) - 1]
    assert (figures["requests"], figures["simulated_attempts"]) == (263, 213)


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
    overall = frames.percentiles(hist, by=None)
    assert overall["successes"].item() == 260
    assert len(frames.percentiles(hist, by="bucket")) == hist["bucket"].nunique()
    assert frames.percentiles(hist.iloc[0:0], by=None)["p95_latency_ms"].isna().all()


def test_cumulative_cost_runs_real_and_simulated_apart(logged):
    """The running total ends at each side's total cost."""
    timeline = logged.usage.cost_over_time()
    running = frames.cumulative_cost(timeline)
    last = running.groupby("simulated")["cumulative_cost_usd"].last()
    assert last[False] == pytest.approx(50 * 0.004)
    assert last[True] == pytest.approx(200 * 0.002 + 3 * 0.001)
