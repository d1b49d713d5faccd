"""Stream and AStream, the objects kit.stream and kit.astream return."""

from __future__ import annotations

import asyncio

import pytest

from ims_kit.errors import ImsError
from ims_kit.records import Answer, Completion
from ims_kit.streams import AStream, Stream, awhole, whole

ANSWER = Answer("ab", "m", "V", "simulated", 1, 2, "provider", 0.0, 1.0, "call-1")


def items():
    yield "a"
    yield "b"
    yield ANSWER


def test_iterating_gives_the_pieces_then_the_answer():
    """Only text pieces come out of the loop; the Answer is kept, text joins the pieces."""
    s = Stream(items(), "m")
    assert not s.done and s.text == ""
    assert list(s) == ["a", "b"] and s.done
    assert s.answer is ANSWER and s.text == "ab"
    assert list(s) == []  # finished: iterating again gives nothing
    assert "done" in repr(s)


def test_answer_reads_the_rest_first():
    """s.answer before the end reads the remaining pieces (the text is all there after)."""
    s = Stream(items())
    assert next(s) == "a"
    assert s.answer is ANSWER and s.text == "ab"


def test_a_closed_streams_answer_is_a_clear_error():
    """Closed before the end: .answer says so instead of returning half an answer."""
    s = Stream(items())
    next(s)
    s.close()
    with pytest.raises(ImsError, match="closed before its answer"):
        _ = s.answer


def test_closing_reaches_the_generator():
    """close() and the with block close what produces the pieces (recovery logs there)."""
    closed = []

    def source():
        try:
            yield "a"
            yield "b"
        finally:
            closed.append(True)

    with Stream(source()) as s:
        next(s)
    assert closed == [True]


def test_astream_iterates_and_result_reads_the_rest():
    """async for gives the pieces; .answer before the end is an error; result() reads on."""

    async def source():
        for item in items():
            yield item

    async def run():
        s = AStream(source(), "m")
        first = await anext(s)
        with pytest.raises(ImsError, match="not finished"):
            _ = s.answer
        answer = await s.result()
        return first, answer, s.text

    assert asyncio.run(run()) == ("a", ANSWER, "ab")


def test_a_provider_without_streaming_is_one_piece():
    """whole()/awhole(): the text as one piece, then the Completion; no piece for no text."""
    c = Completion("hi", 1, 1, "stop", None, 5.0, "m")
    assert list(whole(c)) == ["hi", c]
    empty = Completion("", 1, 0, "stop", None, 5.0, "m")
    assert list(whole(empty)) == [empty]

    async def run():
        return [item async for item in awhole(c)]

    assert asyncio.run(run()) == ["hi", c]
