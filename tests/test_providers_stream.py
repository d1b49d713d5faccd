"""Streaming in the three wire formats, against the loopback server sending each piece on its
own: pieces as they arrive, the usage the stream reports, and every way a stream fails."""

from __future__ import annotations

import asyncio
import threading

import pytest
import vendor_server as vs
from vendor_specs import KEYS, VENDORS, point_at, spec_for

from ims_kit.errors import ProviderError
from ims_kit.prompts import build_prompt
from ims_kit.providers import get_provider
from ims_kit.records import Completion

REPLY = "one two three four five six"
PIECES = ["one ", "two ", "three ", "four ", "five ", "six"]  # how the server splits REPLY
STREAM_PATHS = {
    "openai": "/v1/chat/completions",
    "anthropic": "/v1/messages",
    "gemini": "/v1beta/models/gemini-2.0-flash:streamGenerateContent",
}


@pytest.fixture
def adapter(vendor, monkeypatch, request):
    """The vendor's adapter pointed at the loopback server (closed after the test)."""
    point_at(vendor, monkeypatch)
    vendor.reply_text = REPLY
    made = []

    def make(name: str):
        made.append(get_provider(name))
        return made[-1]

    yield make
    for provider in made:
        provider.close()


def split(items: list) -> tuple[list[str], Completion]:
    *pieces, last = items
    assert isinstance(last, Completion) and all(isinstance(p, str) for p in pieces)
    return pieces, last


@pytest.mark.parametrize("name", VENDORS)
def test_pieces_arrive_one_by_one_with_the_streams_own_usage(name, adapter, vendor):
    """Each piece is yielded as the server sends it (the server holds the rest until the test
    has the first); the Completion carries the usage the stream reported."""
    gate = threading.Event()
    vendor.usage = (17, 6)
    vendor.script(vs.Fault(gate=gate))
    stream = adapter(name).stream(spec_for(name), "hello world")
    first = next(stream)  # the server is holding every other piece back
    assert first == PIECES[0] and not gate.is_set()
    gate.set()
    pieces, done = split([first, *stream])
    assert pieces == PIECES and done.text == REPLY
    assert (done.tokens_in, done.tokens_out) == (17, 6)
    assert done.finish_reason == {"openai": "stop", "anthropic": "end_turn"}.get(name, "STOP")
    assert done.model == spec_for(name).api_model and done.request_id
    req = vendor.requests[-1]
    assert req.path == STREAM_PATHS[name]
    if name == "gemini":
        assert req.raw_path.endswith(":streamGenerateContent?alt=sse")
        assert KEYS["gemini"] not in req.raw_path
    else:
        assert req.json["stream"] is True
    if name == "openai":  # the usage comes only when asked for
        assert req.json["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("name", VENDORS)
def test_a_stream_without_usage_reports_none(name, adapter, vendor):
    """No usage in the stream: the counts are None (recovery estimates and says so)."""
    vendor.usage = None
    _, done = split(list(adapter(name).stream(spec_for(name), "hello")))
    assert done.text == REPLY and done.tokens_out is None


@pytest.mark.parametrize("name", VENDORS)
def test_a_failure_before_the_first_piece_is_the_vendors_error(name, adapter, vendor):
    """An HTTP error instead of a stream: the same ProviderError a plain call gets."""
    fault = {
        "openai": vs.openai_rate_limit(),
        "anthropic": vs.anthropic_rate_limit(),
        "gemini": vs.gemini_quota(),
    }[name]
    vendor.script(fault)
    with pytest.raises(ProviderError) as info:
        next(adapter(name).stream(spec_for(name), "hello"))
    assert info.value.status == 429 and info.value.retry_after_s is not None


@pytest.mark.parametrize("name", VENDORS)
def test_a_mid_stream_error_event_is_a_provider_error_after_the_pieces(name, adapter, vendor):
    """The vendor's own error event after two pieces: the pieces, then a ProviderError."""
    vendor.script(vs.stream_error(after=2))
    got: list[str] = []
    with pytest.raises(ProviderError) as info:
        for piece in adapter(name).stream(spec_for(name), "hello"):
            got.append(piece)
    assert got == PIECES[:2]
    err = info.value
    assert err.error_type in ("server_error", "overloaded_error") or err.status == 503


@pytest.mark.parametrize("name", VENDORS)
def test_a_cut_stream_is_a_transport_error_not_an_answer(name, adapter, vendor):
    """The connection drops after two pieces, with no end event: a transport failure, never a
    short answer taken for a whole one."""
    vendor.script(vs.stream_cut(after=2))
    got: list[str] = []
    with pytest.raises(ProviderError) as info:
        for piece in adapter(name).stream(spec_for(name), "hello"):
            got.append(piece)
    assert got == PIECES[:2]
    assert info.value.status is None and info.value.transport in ("read", "protocol")


@pytest.mark.parametrize("name", VENDORS)
def test_closing_early_closes_the_connection(name, adapter, vendor):
    """Leaving after the first piece closes the response: the server sees its client gone."""
    vendor.script(vs.Fault(piece_delay=0.05))
    stream = adapter(name).stream(spec_for(name), "hello")
    assert next(stream) == PIECES[0]
    stream.close()
    with vendor._lock:
        assert vendor._lock.wait_for(lambda: vendor.abandoned, timeout=5)
    assert vendor.abandoned == [vendor.requests[-1].request_id]


@pytest.mark.parametrize("name", VENDORS)
def test_async_streams_the_same_pieces(name, adapter, vendor):
    """astream yields the same pieces and Completion, and fails the same way."""
    provider = adapter(name)

    async def collect(prompt: str) -> list:
        return [item async for item in provider.astream(spec_for(name), prompt)]

    vendor.usage = (5, 6)
    pieces, done = split(asyncio.run(collect("hello")))
    assert pieces == PIECES and (done.tokens_in, done.tokens_out) == (5, 6)
    vendor.script(vs.stream_cut(after=1))
    with pytest.raises(ProviderError):
        asyncio.run(collect("hello"))


def test_anthropic_streams_a_forced_tools_json(adapter, vendor):
    """A model without structured outputs answers JSON through a forced tool: the streamed
    input_json_delta pieces are the answer, unwrapped when the schema's root was not an object.
    """
    spec = spec_for("anthropic", capabilities=())
    prompt = build_prompt("List three numbers", json_schema={"type": "array"})
    vendor.reply_text = '{"answer_value": [1, 2, 3]}'
    pieces, done = split(list(adapter("anthropic").stream(spec, prompt)))
    body = vendor.requests[-1].json
    assert body["tool_choice"] == {"type": "tool", "name": "answer"}
    assert body["tools"][0]["input_schema"]["properties"]["answer_value"] == {"type": "array"}
    assert "".join(pieces) == vendor.reply_text  # what arrived, as it arrived
    assert done.text == "[1, 2, 3]" and done.finish_reason == "tool_use"
