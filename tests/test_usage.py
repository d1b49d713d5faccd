"""The usage log: one row per attempt, cost at call-time prices, stats and frames."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from ims_kit.errors import InvalidInputError

SEED_CALL = dict(
    model_id="gemini-2.5-flash",
    vendor_id="Google",
    tokens_in=1000,
    tokens_out=500,
    cost_per_mil_in=0.075,
    cost_per_mil_out=0.30,
    latency_ms=1500,
    success=True,
)


def test_log_execution_with_the_seed_arguments_computes_cost(kit):
    """The seed's example costs 1000 x 0.075/M + 500 x 0.30/M = $0.000225."""
    record = kit.usage.log_execution(**SEED_CALL)
    assert record.cost_usd == pytest.approx(0.000225)
    with sqlite3.connect(kit.path) as conn:
        row = conn.execute(
            "SELECT model_id, tokens_in, tokens_out, cost_usd, cost_per_mil_in, "
            "token_source, success, session_id FROM usage"
        ).fetchone()
    assert row[:5] == ("gemini-2.5-flash", 1000, 500, pytest.approx(0.000225), 0.075)
    assert row[5:] == ("provider", 1, kit.session_id)


def test_each_attempt_emits_model_executed(kit):
    """log_execution appends a model.executed event carrying the call id."""
    record = kit.usage.log_execution(**SEED_CALL)
    event = kit.events.recent(kind="model.executed")[0]
    assert event.subject == "gemini-2.5-flash" and event.payload["call_id"] == record.call_id


def test_unpriced_calls_store_null_cost_and_are_reported_apart(kit):
    """Without prices cost_usd is NULL, and stats count the call as unpriced, never $0."""
    kit.usage.log_execution(**SEED_CALL | {"cost_per_mil_in": None, "cost_per_mil_out": None})
    stats = kit.usage.get_session_stats()
    assert stats["cost"] is None and stats["unpriced_attempts"] == 1
    kit.usage.log_execution(**SEED_CALL)
    stats = kit.usage.get_session_stats()
    assert stats["cost"] == pytest.approx(0.000225) and stats["unpriced_attempts"] == 1


def test_unpriced_simulated_attempts_are_counted_too(kit):
    """An unpriced model's simulated attempts are unpriced attempts as well (never hidden)."""
    kit.usage.log_execution(
        **SEED_CALL | {"cost_per_mil_in": None, "cost_per_mil_out": None, "provider": "simulated"}
    )
    stats = kit.usage.get_session_stats()
    assert stats["unpriced_attempts"] == 1 and stats["simulated_attempts"] == 1
    assert stats["cost"] == 0.0  # no real attempt: no real spend


def test_session_stats_have_the_seed_keys_and_only_this_session(kit, db_path):
    """requests, tokens, cost, failures, success_rate for this Kit's session only."""
    import ims_kit

    kit.usage.log_execution(**SEED_CALL)
    kit.usage.log_execution(
        **SEED_CALL | {"success": False, "error_kind": "RATE_LIMIT", "tokens_out": 0}
    )
    with ims_kit.open(db_path) as other:
        other.usage.log_execution(**SEED_CALL)
        assert other.usage.get_session_stats()["requests"] == 1
    stats = kit.usage.get_session_stats()
    assert {"requests", "tokens", "cost", "failures", "success_rate"} <= set(stats)
    assert stats["requests"] == 2 and stats["failures"] == 1 and stats["success_rate"] == 0.5
    assert stats["tokens"] == 1000 + 500 + 1000
    assert kit.usage.totals()["requests"] == 3


@pytest.mark.parametrize(
    "bad",
    [
        {"tokens_in": -1},
        {"tokens_out": 1.5},
        {"latency_ms": -3},
        {"latency_ms": float("nan")},
        {"cost_per_mil_in": -0.1},
        {"token_source": "guess"},
    ],
)
def test_bad_values_are_refused_and_nothing_is_written(kit, bad):
    """Invalid counts, latencies or prices raise InvalidInputError and store no row."""
    with pytest.raises(InvalidInputError):
        kit.usage.log_execution(**SEED_CALL | bad)
    assert kit.usage.totals()["requests"] == 0


def test_summary_by_model_has_percentiles_computed_in_sql(kit):
    """p50/p95 latency by nearest rank over successful calls, per model."""
    for latency in range(1, 101):  # 1..100 ms
        kit.usage.log_execution(**SEED_CALL | {"latency_ms": latency})
    kit.usage.log_execution(
        **SEED_CALL
        | {"model_id": "gpt-4o", "vendor_id": "OpenAI", "latency_ms": 7, "success": False}
    )
    rows = {r["model"]: r for r in kit.usage.summary_rows("model")}
    flash = rows["gemini-2.5-flash"]
    assert (flash["p50_latency_ms"], flash["p95_latency_ms"], flash["p99_latency_ms"]) == (
        50,
        95,
        99,
    )
    assert flash["attempts"] == 100 and flash["failed_attempts"] == 0
    assert rows["gpt-4o"]["attempt_success_rate"] == 0
    assert rows["gpt-4o"]["p50_latency_ms"] is None
    frame = kit.usage.summary(by="vendor")
    assert sorted(frame["vendor"]) == ["Google", "OpenAI"]


def test_summary_by_day_and_unknown_grouping(kit):
    """Grouping by day uses the UTC date; an unknown grouping is a clear error."""
    kit.usage.log_execution(**SEED_CALL)
    today = datetime.now(UTC).date().isoformat()
    assert kit.usage.summary_rows("day")[0]["day"] == today
    with pytest.raises(InvalidInputError, match="known: model, vendor, day"):
        kit.usage.summary_rows("week")


def test_to_frame_one_row_per_attempt_and_since(kit):
    """to_frame returns every attempt; since= filters by time."""
    kit.usage.log_execution(**SEED_CALL)
    kit.usage.log_execution(**SEED_CALL)
    frame = kit.usage.to_frame()
    assert len(frame) == 2 and frame["success"].all()
    assert len(kit.usage.to_frame(since=timedelta(hours=1))) == 2
    assert len(kit.usage.to_frame(since=datetime.now(UTC) + timedelta(hours=1))) == 0
    with pytest.raises(InvalidInputError, match="since"):
        kit.usage.to_frame(since="yesterday-ish")


def test_model_stats_feed_the_performance_and_latency_strategies(seeded):
    """Observed latency changes the latency strategy's choice."""
    fast = seeded.recommend("hi", strategy="latency").ranked[-1].model
    for _ in range(5):
        seeded.usage.log_execution(**SEED_CALL | {"model_id": fast.model_id, "latency_ms": 5})
    assert seeded.recommend("hi", strategy="latency").model.model_id == fast.model_id


def test_infinite_prices_are_refused(kit):
    """An infinite price is not a price."""
    with pytest.raises(InvalidInputError, match="cost_per_mil_out"):
        kit.usage.log_execution(**SEED_CALL | {"cost_per_mil_out": float("inf")})


def test_model_stats_look_at_the_latest_attempts_only(kit):
    """The selector's observations come from a bounded window of the newest rows."""
    for _ in range(5):
        kit.usage.log_execution(**SEED_CALL | {"model_id": "old", "latency_ms": 900})
    for _ in range(3):
        kit.usage.log_execution(**SEED_CALL | {"model_id": "new", "latency_ms": 100})
    assert set(kit.usage.model_stats(last=3)) == {"new"}
    assert kit.usage.model_stats(last=4)["old"].attempts == 1
    assert kit.usage.model_stats()["old"].p50_latency_ms == 900


def test_summary_without_percentiles_skips_the_sort(kit):
    """percentiles=False keeps the counts and leaves the latency columns empty."""
    for latency in (10, 20, 30):
        kit.usage.log_execution(**SEED_CALL | {"latency_ms": latency})
    [row] = kit.usage.summary_rows("model", percentiles=False)
    assert row["requests"] == 3 and row["p50_latency_ms"] is None
    [row] = kit.usage.summary_rows("model")
    assert row["p50_latency_ms"] == 20


def test_simulated_cost_is_counted_apart_from_real_cost(kit):
    """Totals keep simulated spend out of the real cost, whatever the mix."""
    kit.usage.log_execution(**SEED_CALL | {"provider": "simulated"})
    only_simulated = kit.usage.totals()
    assert only_simulated["cost"] == 0.0 and only_simulated["simulated_cost"] == pytest.approx(
        0.000225
    )
    kit.usage.log_execution(**SEED_CALL | {"provider": "gemini"})
    mixed = kit.usage.totals()
    assert mixed["cost"] == pytest.approx(0.000225) and mixed["simulated_requests"] == 1
    assert mixed["requests"] == 2
