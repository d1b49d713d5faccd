"""The event log: rows in ``events``, in-process subscribers, and the queries the dashboard uses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ims_kit.events import EventLog


def test_emit_stores_the_event_with_its_payload_and_the_kits_clock(kit, clock):
    """An emitted event is a row: kind, subject, JSON payload, and the time of the log's clock."""
    log = EventLog(kit.db, clock)
    event = log.emit("model.executed", "gpt-5", tokens=3, when=datetime(2026, 1, 1, tzinfo=UTC))
    (stored,) = log.recent(1)
    assert (stored.kind, stored.subject, stored.payload["tokens"]) == ("model.executed", "gpt-5", 3)
    assert stored.payload["when"].startswith("2026-01-01")  # non-JSON values become text
    assert stored.id == event.id
    assert datetime.fromisoformat(stored.ts).timestamp() == clock.now


def test_subscribers_hear_events_of_their_kind_and_can_leave(kit):
    """A subscriber hears every event or its kind only; unsubscribing stops it."""
    every, executed = [], []
    kit.events.subscribe(lambda e: every.append(e.kind))
    leave = kit.events.subscribe(lambda e: executed.append(e.subject), kind="model.executed")
    kit.events.emit("model.executed", "a")
    kit.events.emit("circuit.opened", "a")
    leave()
    kit.events.emit("model.executed", "b")
    assert every == ["model.executed", "circuit.opened", "model.executed"]
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
