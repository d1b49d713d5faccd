"""The event log: rows in ``events``, usage rows as ``model.executed``, in-process subscribers,
and the queries the dashboard uses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ims_kit.errors import InvalidInputError
from ims_kit.events import EventLog


def test_emit_stores_the_event_with_its_payload_and_the_kits_clock(kit, clock):
    """An emitted event is a row: kind, subject, JSON payload, and the time of the log's clock."""
    log = EventLog(kit.db, clock)
    event = log.emit("model.queried", "gpt-5", tokens=3, when=datetime(2026, 1, 1, tzinfo=UTC))
    (stored,) = log.recent(1)
    assert (stored.kind, stored.subject, stored.payload["tokens"]) == ("model.queried", "gpt-5", 3)
    assert stored.payload["when"].startswith("2026-01-01")  # non-JSON values become text
    assert stored.id == event.id
    assert datetime.fromisoformat(stored.ts).timestamp() == clock.now


def test_subscribers_hear_events_of_their_kind_and_can_leave(kit):
    """A subscriber hears every event or its kind only; unsubscribing stops it."""
    every, executed = [], []
    kit.events.subscribe(lambda e: every.append(e.kind))
    leave = kit.events.subscribe(lambda e: executed.append(e.subject), kind="model.queried")
    kit.events.emit("model.queried", "a")
    kit.events.emit("circuit.opened", "a")
    leave()
    kit.events.emit("model.queried", "b")
    assert every == ["model.queried", "circuit.opened", "model.queried"]
    assert executed == ["a"]


def test_a_failing_subscriber_never_breaks_the_emitter(kit, caplog):
    """A subscriber that raises is logged; the event is stored and the others still hear it."""
    heard = []
    kit.events.subscribe(lambda e: 1 / 0)
    kit.events.subscribe(lambda e: heard.append(e.kind))
    kit.events.emit("x.y")
    assert heard == ["x.y"] and kit.events.count("x.y") == 1
    assert "subscriber" in caplog.text


def test_counts_per_kind_and_per_subject(kit):
    """count() per kind, count_by_subject() per subject of a kind."""
    for subject in ("a", "b", "a", None):
        kit.events.emit("model.queried", subject)
    assert kit.events.count("model.queried") == 4
    assert kit.events.count_by_subject("model.queried") == {"a": 2, "b": 1}


def test_events_find_filters_by_kind_prefix_subject_and_time(kit):
    """find() takes kinds, a kind prefix, subjects and since; newest first unless asked."""
    kit.events.emit("circuit.opened", "a")
    kit.events.emit("circuit.closed", "a")
    kit.events.emit("circuit.opened", "b")
    kit.events.emit("model.queried", "a")
    assert [e.kind for e in kit.events.find(kind_prefix="circuit.", subjects="a")] == [
        "circuit.closed",
        "circuit.opened",
    ]
    oldest = kit.events.find(kind_prefix="circuit.", oldest_first=True)
    assert [e.subject for e in oldest] == ["a", "a", "b"]
    assert len(kit.events.find(kinds=["model.queried", "circuit.opened"])) == 3
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


ROW = dict(vendor_id="V", tokens_in=10, tokens_out=5, cost_per_mil_in=1.0,
           cost_per_mil_out=2.0, latency_ms=12.0)  # fmt: skip


def test_model_executed_events_are_the_usage_rows(kit):
    """An attempt's event is read from its usage row, with the payload subscribers got; it is
    not written to ``events`` a second time."""
    heard = []
    kit.events.subscribe(heard.append, kind="model.executed")
    first = kit.usage.log_execution(model_id="a", success=True, **ROW)
    kit.events.emit("circuit.opened", "a")
    second = kit.usage.log_execution(model_id="b", success=False, error_kind="timeout", **ROW)
    copies = "SELECT count(*) FROM events WHERE kind = 'model.executed'"
    assert kit.db.execute(copies).fetchone()[0] == 0
    newest = kit.events.find()
    assert [(e.kind, e.subject) for e in newest] == [
        ("model.executed", "b"),
        ("circuit.opened", "a"),
        ("model.executed", "a"),
    ]
    assert [e.payload for e in kit.events.recent(kind="model.executed")] == [
        h.payload for h in reversed(heard)
    ]
    got = newest[0].payload
    assert (got["call_id"], got["success"], got["error_kind"]) == (second.call_id, False, "timeout")
    assert newest[2].payload["cost_usd"] == first.cost_usd
    assert kit.events.count("model.executed") == 2
    assert kit.events.count_by_subject("model.executed") == {"a": 1, "b": 1}
    assert kit.events.kind_counts() == {"circuit.opened": 1, "model.executed": 2}
    assert kit.events.kind_counts(since=timedelta(minutes=5))["model.executed"] == 2
    assert kit.events.kind_counts(kinds=["model.executed"]) == {"model.executed": 2}
    assert [e.subject for e in kit.events.find(kind_prefix="model.", subjects=["b"])] == ["b"]
    assert kit.events.find(kind_prefix="circuit.")[0].kind == "circuit.opened"


def test_model_executed_cannot_be_emitted_by_hand(kit):
    """Only log_execution writes an attempt: a hand-made model.executed is refused, unstored."""
    with pytest.raises(InvalidInputError, match="log_execution"):
        kit.events.emit("model.executed", "a")
    assert kit.events.count("model.executed") == 0


def test_find_takes_empty_filters_as_none_and_a_negative_limit_as_all(kit):
    """As before: an empty kind or prefix filters nothing, a negative limit returns all."""
    for kind in ("a.x", "b.y", "c.z"):
        kit.events.emit(kind)
    kit.usage.log_execution(model_id="m", success=True, **ROW)
    assert len(kit.events.find(kind_prefix="")) == len(kit.events.recent(kind="")) == 4
    assert len(kit.events.find(limit=-1)) == 4 and len(kit.events.find(limit=3)) == 3


def test_at_one_instant_an_attempt_comes_before_the_events_stored_with_it(kit, clock):
    """A simulated clock gives many rows one timestamp: the order stays the same every time."""
    kit.clock.source = clock  # frozen: every row below has the same ts
    kit.events.emit("circuit.opened", "m")
    kit.usage.log_execution(model_id="m", success=False, error_kind="timeout", **ROW)
    kit.events.emit("recovery.fallback", "m")
    kinds = [e.kind for e in kit.events.find(oldest_first=True)]
    assert kinds == ["model.executed", "circuit.opened", "recovery.fallback"]
