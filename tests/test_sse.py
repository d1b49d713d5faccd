"""The Server-Sent Events parser: lines in, (event, data) out, as the three vendors send them."""

from __future__ import annotations

import asyncio

from ims_kit.providers.sse import DONE, StreamState, aevents, events


def test_events_named_and_unnamed_with_json_data():
    """Anthropic names its events; OpenAI and Gemini send bare data lines."""
    lines = [
        "event: message_start",
        'data: {"type": "message_start"}',
        "",
        'data: {"choices": []}',
        "",
    ]
    assert list(events(lines)) == [
        ("message_start", {"type": "message_start"}),
        (None, {"choices": []}),
    ]


def test_crlf_comments_done_and_raw_text():
    """Gemini's \\r\\n endings, keep-alive comments, OpenAI's [DONE], a non-JSON payload."""
    lines = ['data: {"a": 1}\r', "\r", ": keep-alive", "", "data: [DONE]", "", "data: oops", ""]
    assert list(events(lines)) == [(None, {"a": 1}), (None, DONE), (None, "oops")]


def test_multi_line_data_and_a_last_event_without_a_blank_line():
    """Data lines of one event are joined with newlines; the end of input flushes the last."""
    lines = ['data: {"a":', "data: 2}", "", "event: ping", "data: {}"]
    assert list(events(lines)) == [(None, {"a": 2}), ("ping", {})]


def test_an_event_name_without_data_is_dropped():
    """An event line with no data yields nothing and does not name the next event."""
    assert list(events(["event: ping", "", 'data: {"b": 1}', ""])) == [(None, {"b": 1})]


def test_async_lines_give_the_same_events():
    """aevents reads an async iterator of lines the same way."""

    async def lines():
        for line in ["event: x", 'data: {"n": 1}', "", "data: [DONE]", ""]:
            yield line

    async def collect():
        return [e async for e in aevents(lines())]

    assert asyncio.run(collect()) == [("x", {"n": 1}), (None, DONE)]


def test_stream_state_joins_its_parts():
    """The text so far is the pieces joined."""
    state = StreamState(parts=["a ", "b"])
    assert state.text == "a b" and not state.done
