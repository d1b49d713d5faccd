"""Streams and JSON answers through recovery, against the loopback vendor server: recovered
before the first piece, never retried after it, every attempt logged with what it spent.
Each stream test runs through kit.stream and kit.astream (the ``stream`` fixture)."""

from __future__ import annotations

import asyncio
import gc

import pytest
import vendor_server as vs
from lab_setup import build_lab, events, hits, register

from ims_kit.errors import AllModelsFailed, ImsError, StreamInterrupted

REPLY = "one two three four five six"
PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}


@pytest.fixture
def lab(kit, vendor, monkeypatch, clock):
    vendor.reply_text = REPLY
    return build_lab(kit, vendor, monkeypatch, clock)


@pytest.fixture(params=["sync", "async"])
def stream(request, lab):
    """``stream(**kw)``: (the pieces, the Answer), through kit.stream or kit.astream."""

    def run(model="primary", fallbacks=("backup",), prompt="hello there", **kw):
        kw = {"model": model, "fallbacks": list(fallbacks), **kw}
        if request.param == "sync":
            s = lab.stream(prompt, **kw)
            return list(s), s.answer

        async def collect():
            s = lab.astream(prompt, **kw)
            return [p async for p in s], s.answer

        return asyncio.run(collect())

    run.mode = request.param
    return run


def failures(kit, model_id):
    """The model's counted consecutive failures (0 without a breaker row)."""
    breaker = kit.circuits.get(model_id)
    return 0 if breaker is None else breaker["consecutive_failures"]


def rows(kit):
    return kit.db.execute(
        "SELECT model_id, success, error_kind, tokens_in, tokens_out, token_source, ttft_ms,"
        " attempt, request_id FROM usage ORDER BY id"
    ).fetchall()


def test_a_stream_logs_one_row_with_the_streams_usage_and_ttft(lab, vendor, stream):
    """The pieces join to the answer; the row has the stream's own usage and a TTFT."""
    vendor.usage = (40, 6)
    pieces, answer = stream()
    assert "".join(pieces) == answer.text == REPLY and len(pieces) == 6
    assert (answer.tokens_in, answer.tokens_out, answer.token_source) == (40, 6, "provider")
    assert answer.ttft_ms is not None and 0 < answer.ttft_ms <= answer.latency_ms
    [row] = rows(lab)
    assert row[:6] == ("primary", 1, None, 40, 6, "provider")
    assert row[6] == pytest.approx(answer.ttft_ms)


def test_without_usage_in_the_stream_the_counts_are_estimates(lab, vendor, stream):
    """No usage reported: estimated from the text, and marked as estimates."""
    vendor.usage = None
    _, answer = stream()
    assert answer.token_source == "estimate" and answer.tokens_out > 0


def test_a_failure_before_the_first_piece_is_retried_then_falls_back(lab, vendor, stream):
    """A 5xx before any piece: retried like a plain call; then the next candidate streams."""
    vendor.fail_always("primary", vs.Fault(500, {"error": {"message": "boom"}}))
    pieces, answer = stream()
    assert answer.model_id == "backup" and "".join(pieces) == REPLY
    assert hits(vendor, "primary") == 3  # the first try and two retries
    kinds = [a.error_kind for a in answer.attempts]
    assert kinds == ["OVERLOAD", "OVERLOAD", "OVERLOAD", None]
    assert [r[1] for r in rows(lab)] == [0, 0, 0, 1]
    assert len({r[8] for r in rows(lab)}) == 1  # one request


def test_a_rate_limit_before_the_first_piece_waits_the_hint(lab, vendor, stream):
    """A 429 with Retry-After before the first piece: waited, then the same model streams."""
    vendor.script_for("primary", vs.openai_rate_limit(retry_after_ms="1500"))
    _, answer = stream()
    assert answer.model_id == "primary"
    assert events(lab, "recovery.retry")[0].payload["wait_s"] == 1.5


@pytest.mark.parametrize("fault", [vs.stream_cut(after=2), vs.stream_error(after=2)])
def test_a_failure_after_the_first_piece_is_never_retried(lab, vendor, fault, request):
    """Cut or an error event mid-way: StreamInterrupted with the text so far, one failed row
    recording what was spent, the breaker told, no second request."""
    vendor.script_for("primary", fault)
    s = lab.stream("hello there", model="primary", fallbacks=["backup"])
    got = []
    with pytest.raises(StreamInterrupted) as info:
        for piece in s:
            got.append(piece)
    err = info.value
    assert "".join(got) == err.text == "one two " and err.model_id == "primary"
    assert hits(vendor, "primary") == 1 and hits(vendor, "backup") == 0
    [row] = rows(lab)
    assert row[0] == "primary" and row[1] == 0 and row[2] == "OVERLOAD"
    assert row[4] > 0 and row[5] == "estimate"  # the two pieces were spent, estimated
    assert err.call_id == lab.db.execute("SELECT call_id FROM usage").fetchone()[0]
    assert failures(lab, "primary") == 1
    assert events(lab, "recovery.stream_interrupted")[0].payload["chars"] == len(err.text)


def test_async_failure_after_the_first_piece_is_never_retried(lab, vendor):
    """The same in async code."""
    vendor.script_for("primary", vs.stream_cut(after=1))

    async def run():
        s = lab.astream("hello there", model="primary", fallbacks=["backup"])
        async for _ in s:
            pass

    with pytest.raises(StreamInterrupted) as info:
        asyncio.run(run())
    assert info.value.text == "one " and hits(vendor, "backup") == 0


@pytest.mark.parametrize("how", ["close", "break", "gc"])
def test_leaving_early_closes_the_connection_and_logs_the_partial_call(lab, vendor, how):
    """close(), a break out of a with block, or dropping the stream: the server sees the
    client leave, and one CANCELLED row records the partial call; the breaker hears success."""
    vendor.script_for("primary", vs.Fault(piece_delay=0.05))
    if how == "close":
        s = lab.stream("hello there", model="primary")
        next(s)
        s.close()
    elif how == "break":
        with lab.stream("hello there", model="primary") as s:
            for _ in s:
                break
    else:
        s = lab.stream("hello there", model="primary")
        next(s)
        del s
        gc.collect()
    with vendor._lock:
        assert vendor._lock.wait_for(lambda: vendor.abandoned, timeout=5)
    [row] = rows(lab)
    assert row[:3] == ("primary", 0, "CANCELLED") and row[4] > 0 and row[6] is not None
    assert failures(lab, "primary") == 0


def test_async_aclose_logs_the_partial_call(lab, vendor):
    """aclose() on an async stream: CANCELLED row, connection closed."""
    vendor.script_for("primary", vs.Fault(piece_delay=0.05))

    async def run():
        async with lab.astream("hello there", model="primary") as s:
            async for _ in s:
                break

    asyncio.run(run())
    assert rows(lab)[0][2] == "CANCELLED"


def test_nothing_is_sent_until_the_first_piece_is_asked_for(lab, vendor):
    """kit.stream checks and chooses now; the call starts at the first next()."""
    s = lab.stream("hello there", model="primary")
    assert vendor.requests == [] and rows(lab) == []
    assert next(s) == "one "
    assert len(vendor.requests) == 1


def test_answer_reads_the_rest_of_a_sync_stream(lab, vendor):
    """s.answer without iterating: the whole stream is read, then the Answer returned."""
    answer = lab.stream("hello there", model="primary").answer
    assert answer.text == REPLY and len(rows(lab)) == 1


def test_an_async_streams_answer_before_the_end_is_a_clear_error(lab, vendor):
    """AStream.answer before the end says how to get it; result() reads the rest."""

    async def run():
        s = lab.astream("hello there", model="primary")
        with pytest.raises(ImsError, match="await s.result"):
            _ = s.answer
        return await s.result()

    assert asyncio.run(run()).text == REPLY


# -- JSON answers --------------------------------------------------------------------------------
def test_a_json_answer_is_parsed_into_data(lab, vendor):
    """A valid answer: .data is the parsed, validated JSON."""
    vendor.reply_text = '{"name": "Ann", "age": 31}'
    answer = lab.ask("Extract: Ann, 31", model="primary", json_schema=PERSON)
    assert answer.data == {"name": "Ann", "age": 31}
    body = vendor.requests[-1].json
    assert body["response_format"]["json_schema"]["schema"] == PERSON


def test_an_invalid_answer_is_asked_again_then_sent_to_the_next_candidate(lab, vendor):
    """Not JSON twice on one model (each billed), then the next candidate answers."""
    vendor.script_for("primary", vs.ok(text="Sure! Ann is 31."), vs.ok(text='{"name": "Ann"}'))
    vendor.script_for("backup", vs.ok(text='{"name": "Ann", "age": 31}'))
    vendor.usage = (20, 8)
    answer = lab.ask("Extract: Ann, 31", model="primary", fallbacks=["backup"], json_schema=PERSON)
    assert answer.model_id == "backup" and answer.data == {"name": "Ann", "age": 31}
    assert [a.error_kind for a in answer.attempts] == ["INVALID_OUTPUT", "INVALID_OUTPUT", None]
    assert "not valid JSON" in answer.attempts[0].error
    assert "'age' is a required property" in answer.attempts[1].error
    billed = lab.db.execute(
        "SELECT tokens_in, tokens_out, cost_usd FROM usage WHERE error_kind = 'INVALID_OUTPUT'"
    ).fetchall()
    assert billed == [(20, 8, pytest.approx(36e-6))] * 2  # counted and priced, never $0
    assert failures(lab, "primary") == 0  # not the model's health


def test_invalid_answers_from_three_models_end_the_request(lab, vendor):
    """A schema no answer meets: after three models, AllModelsFailed says to check it."""
    vendor.reply_text = "no JSON here"
    with pytest.raises(AllModelsFailed, match="invalid answers from 3 models"):
        lab.ask("x", model="primary", fallbacks=["backup", "claude", "gem"], json_schema=PERSON)
    assert hits(vendor, "gem") == 0 and len(vendor.requests) == 6


def test_a_streamed_invalid_answer_is_not_retried(lab, vendor):
    """Streamed JSON that does not validate: the pieces are out, so StreamInterrupted (with the
    INVALID_OUTPUT cause) rather than a silent second call."""
    vendor.reply_text = '{"name": "Ann"}'
    s = lab.stream("x", model="primary", fallbacks=["backup"], json_schema=PERSON)
    with pytest.raises(StreamInterrupted) as info:
        list(s)
    assert info.value.text == '{"name": "Ann"}' and len(vendor.requests) == 1
    assert rows(lab)[0][2] == "INVALID_OUTPUT"


def test_a_malformed_schema_is_refused_before_anything_is_sent(lab, vendor):
    """A schema jsonschema rejects: InvalidInputError naming where, and no request."""
    from ims_kit.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="malformed"):
        lab.ask("x", model="primary", json_schema={"type": "objekt"})
    assert vendor.requests == []


# -- options a model does not take ------------------------------------------------------------
def test_an_option_the_registry_says_the_model_refuses_is_dropped_with_its_reason(lab, vendor):
    """temperature on a model whose row refuses it: not sent, and the Answer says why."""
    register(lab, "reasoner", "OpenAI", "openai", f"{vendor.url}/v1")
    lab.registry.update("reasoner", unsupported_options=["temperature", "stop"])
    answer = lab.ask("hi", model="reasoner", temperature=0.2, stop="END", seed=3)
    body = vendor.requests[-1].json
    assert "temperature" not in body and "stop" not in body and body["seed"] == 3
    assert set(answer.dropped_options) == {"temperature", "stop"}
    assert "does not take temperature" in answer.dropped_options["temperature"]


def test_a_fallback_gets_the_options_its_own_row_allows(lab, vendor):
    """The refusal is per model: the fallback, which takes temperature, is sent it."""
    register(lab, "reasoner", "OpenAI", "openai", f"{vendor.url}/v1")
    lab.registry.update("reasoner", unsupported_options=["temperature"])
    vendor.script_for("reasoner", vs.Fault(500, {"error": {"message": "down"}}))
    vendor.fail_always("reasoner", vs.Fault(500, {"error": {"message": "down"}}))
    answer = lab.ask("hi", model="reasoner", fallbacks=["backup"], temperature=0.2)
    assert answer.model_id == "backup" and answer.dropped_options == {}
    sent = {r.model: r.json.get("temperature") for r in vendor.requests}
    assert sent == {"reasoner": None, "backup": 0.2}


def test_a_cancelled_stream_does_not_count_against_the_model(lab, vendor):
    """The selector's observed success rate ignores streams the caller left early."""
    vendor.script_for("primary", vs.Fault(piece_delay=0.05))
    s = lab.stream("hello there", model="primary")
    next(s)
    s.close()
    lab.ask("hello there", model="primary")
    stats = lab.usage.model_stats()["primary"]
    assert stats.attempts == 2 and stats.success_rate == 1.0
