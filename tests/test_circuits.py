"""The per-model circuit breaker, on a fake clock: no test sleeps."""

from __future__ import annotations

import asyncio

import pytest

from ims_kit.circuits import CircuitBreaker
from ims_kit.errors import ErrorKind


@pytest.fixture
def breaker(kit, clock):
    return CircuitBreaker(kit.db, kit.events, clock=clock)


def fail(breaker, model="m", kind=ErrorKind.OVERLOAD, times=1):
    for _ in range(times):
        permit = breaker.allow(model)
        assert permit is not None
        breaker.record_failure(permit, kind)


def test_three_consecutive_failures_open_the_circuit(breaker, kit):
    """The third counted failure opens it; the next call gets no permit."""
    fail(breaker, times=2)
    assert breaker.allow("m") is not None
    fail(breaker)
    assert breaker.allow("m") is None
    status = breaker.status()["m"]
    assert status["state"] == "open" and status["consecutive_failures"] == 3
    assert kit.events.recent(kind="circuit.opened")[0].subject == "m"


def test_a_success_resets_the_count(breaker):
    """Two failures, a success, two failures: still closed."""
    fail(breaker, times=2)
    breaker.record_success(breaker.allow("m"))
    fail(breaker, times=2)
    assert breaker.status()["m"]["state"] == "closed"


@pytest.mark.parametrize("kind", [ErrorKind.INVALID_REQUEST, ErrorKind.CONTEXT_OVERFLOW])
def test_failures_that_blame_the_request_do_not_count(breaker, kind):
    """Bad requests and over-long prompts say nothing about the model's health."""
    fail(breaker, kind=kind, times=5)
    assert breaker.allow("m") is not None
    assert breaker.status().get("m", {}).get("state", "closed") == "closed"


def test_open_for_sixty_seconds_then_exactly_one_probe(breaker, clock):
    """At +59.999 s still open; at +60.001 s one probe among many callers."""
    fail(breaker, times=3)
    clock.advance(59.999)
    assert breaker.allow("m") is None
    clock.advance(0.002)
    permits = [breaker.allow("m") for _ in range(10)]
    granted = [p for p in permits if p is not None]
    assert len(granted) == 1 and granted[0].probe
    assert breaker.status()["m"]["state"] == "half_open"


def test_one_probe_among_ten_concurrent_async_callers(breaker, clock):
    """Ten tasks racing for the half-open slot: exactly one gets it."""
    fail(breaker, times=3)
    clock.advance(61)

    async def caller():
        await asyncio.sleep(0)
        return breaker.allow("m")

    async def race():
        return await asyncio.gather(*(caller() for _ in range(10)))

    assert sum(p is not None for p in asyncio.run(race())) == 1


def test_probe_success_closes_and_probe_failure_reopens(breaker, clock, kit):
    """A good probe closes the circuit; a bad one opens it for another full period."""
    fail(breaker, times=3)
    clock.advance(61)
    breaker.record_failure(breaker.allow("m"), ErrorKind.TIMEOUT)
    assert breaker.status()["m"]["state"] == "open"
    clock.advance(59)
    assert breaker.allow("m") is None
    clock.advance(2)
    breaker.record_success(breaker.allow("m"))
    assert breaker.status()["m"]["state"] == "closed"
    kinds = [e.kind for e in reversed(kit.events.recent(limit=20)) if e.kind.startswith("circ")]
    assert kinds == [
        "circuit.opened",
        "circuit.half_open",
        "circuit.opened",
        "circuit.half_open",
        "circuit.closed",
    ]


def test_a_cancelled_probe_frees_the_slot(breaker, clock):
    """A probe that hangs or is cancelled counts as a failure, reopening; then a new probe."""
    fail(breaker, times=3)
    clock.advance(61)
    probe = breaker.allow("m")
    breaker.cancelled(probe)
    assert breaker.status()["m"]["state"] == "open"
    clock.advance(61)
    assert breaker.allow("m").probe


def test_a_probe_that_never_reports_counts_as_a_failure(breaker, clock, kit):
    """A probe silent past the probe timeout reopens the circuit; a new probe follows."""
    fail(breaker, times=3)
    clock.advance(61)
    assert breaker.allow("m").probe
    clock.advance(60)
    assert breaker.allow("m") is None  # the probe may still answer
    clock.advance(61)
    assert breaker.allow("m") is None  # it did not: counted as a failure, open again
    status = breaker.status()["m"]
    assert status["state"] == "open" and status["consecutive_failures"] == 4
    assert kit.events.recent(kind="circuit.opened")[0].payload["reopened"] is True
    clock.advance(60.001)
    assert breaker.allow("m").probe


def test_state_is_shared_through_the_database(breaker, kit, clock, db_path):
    """Another Kit on the same file sees the open circuit and its retry time."""
    import ims_kit

    fail(breaker, model="gpt-4o", times=3)
    with ims_kit.open(db_path) as other:
        other.circuits.clock = clock
        status = other.circuits.status()["gpt-4o"]
        assert status["state"] == "open" and status["retry_at"] > status["opened_at"]
        assert other.circuits.allow("gpt-4o") is None
        assert "gpt-4o" in other.circuits.unavailable()


def test_thresholds_are_configurable(kit, clock):
    """failure_threshold and open_seconds change when it opens and for how long."""
    breaker = CircuitBreaker(kit.db, kit.events, failure_threshold=1, open_seconds=5, clock=clock)
    fail(breaker)
    assert breaker.allow("m") is None
    clock.advance(5.001)
    assert breaker.allow("m").probe


def test_open_circuit_excludes_the_model_from_recommendations(seeded):
    """The selector leaves out a model whose circuit is open, saying until when."""
    first = seeded.recommend("hi").model.model_id
    fail(seeded.circuits, model=first, times=3)
    rec = seeded.recommend("hi")
    assert rec.model.model_id != first
    reason = {c.model_id: c.reasons[0] for c in rec.excluded}[first]
    assert reason.startswith("circuit open until")


def test_retry_time_is_the_openers_not_the_readers(kit, clock):
    """A reader with another open period uses the retry time the opening process stored."""
    opener = CircuitBreaker(kit.db, kit.events, open_seconds=5, clock=clock)
    fail(opener, times=3)
    reader = CircuitBreaker(kit.db, kit.events, open_seconds=600, clock=clock)
    assert reader.status()["m"]["retry_at"] == opener.status()["m"]["retry_at"]
    assert "m" in reader.unavailable()
    clock.advance(5.001)
    assert "m" not in reader.unavailable()
    assert reader.allow("m").probe


def test_endpoint_and_simulated_breakers_are_apart_from_the_models(breaker, clock):
    """(name, scope, simulated) is the key: opening one never opens another of the same name."""
    from ims_kit.errors import ErrorKind as EK

    for _ in range(3):
        breaker.record_failure(breaker.allow("m", simulated=True), EK.OVERLOAD)
        breaker.record_failure(breaker.allow("http://h/v1", scope="endpoint"), EK.OVERLOAD)
    assert breaker.allow("m") is not None  # the real model's breaker is closed
    assert breaker.allow("m", simulated=True) is None
    assert breaker.unavailable() == {}
    assert set(breaker.unavailable(simulated=True)) == {"m"}
    assert set(breaker.unavailable(scope="endpoint")) == {"http://h/v1"}
    assert breaker.get("m", simulated=True)["state"] == "open"
    assert breaker.get("m") is None
    assert set(breaker.status()) == {"m [simulated]", "http://h/v1"}


def test_a_closed_circuit_has_no_retry_time(breaker, clock):
    """After the probe closes it, the breaker shows neither an opening nor a retry time."""
    from ims_kit.errors import ErrorKind as EK

    for _ in range(3):
        breaker.record_failure(breaker.allow("m"), EK.OVERLOAD)
    opened = breaker.get("m")
    assert opened["retry_at"] > opened["opened_at"]
    clock.advance(61)
    breaker.record_success(breaker.allow("m"))
    closed = breaker.get("m")
    assert (closed["state"], closed["opened_at"], closed["retry_at"]) == ("closed", None, None)
