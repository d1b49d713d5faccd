"""What ``kit.stream`` and ``kit.astream`` return: the answer's text pieces as they arrive,
then its ``Answer``. Nothing is sent until the first piece is asked for; leaving early
(``break``, ``close()``, the ``with`` block's end, garbage collection) closes the connection
and the partial call is logged."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from ims_kit.errors import ImsError
from ims_kit.records import Answer, Completion


class Stream:
    """Iterate for the text pieces; ``answer`` is the ``Answer`` (tokens, cost, latency, time
    to first token, call id), read to the end first when needed; ``text`` is what came so far.
    """

    def __init__(self, items: Iterator[Any], model_hint: str | None = None):
        self._items = items
        self._parts: list[str] = []
        self._answer: Answer | None = None
        self.model_hint = model_hint  # the first candidate (another may answer)

    def __iter__(self) -> Stream:
        return self

    def __next__(self) -> str:
        if self._answer is not None:
            raise StopIteration
        item = next(self._items)
        if isinstance(item, Answer):
            self._answer = item
            self._items.close()  # the request is over: its generator ends now, not at GC
            raise StopIteration
        self._parts.append(item)
        return item

    @property
    def text(self) -> str:
        """The text received so far (all of it once the stream is done)."""
        return "".join(self._parts)

    @property
    def done(self) -> bool:
        """True once the whole answer arrived."""
        return self._answer is not None

    @property
    def answer(self) -> Answer:
        """The ``Answer``; reads the rest of the stream first if it is not finished."""
        for _ in self:
            pass
        if self._answer is None:
            raise ImsError("the stream was closed before its answer was complete")
        return self._answer

    def close(self) -> None:
        """Stop now: closes the connection and logs the partial call (a no-op once done)."""
        self._items.close()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        if self._answer is not None:
            return f"<Stream done: {self._answer.model_id}, {len(self.text):,} characters>"
        return f"<Stream {self.model_hint or ''}: {len(self.text):,} characters so far>"


class AStream:
    """``Stream`` for async code: ``async for piece in s``, then ``s.answer``; or
    ``await s.result()`` for the ``Answer`` (reading the rest first)."""

    def __init__(self, items: AsyncIterator[Any], model_hint: str | None = None):
        self._items = items
        self._parts: list[str] = []
        self._answer: Answer | None = None
        self.model_hint = model_hint

    def __aiter__(self) -> AStream:
        return self

    async def __anext__(self) -> str:
        if self._answer is not None:
            raise StopAsyncIteration
        item = await anext(self._items)
        if isinstance(item, Answer):
            self._answer = item
            await self._items.aclose()
            raise StopAsyncIteration
        self._parts.append(item)
        return item

    @property
    def text(self) -> str:
        """The text received so far."""
        return "".join(self._parts)

    @property
    def done(self) -> bool:
        """True once the whole answer arrived."""
        return self._answer is not None

    @property
    def answer(self) -> Answer:
        """The ``Answer`` of a finished stream (``await s.result()`` reads the rest first)."""
        if self._answer is None:
            raise ImsError("the stream is not finished: iterate it (async for) or await s.result()")
        return self._answer

    async def result(self) -> Answer:
        """The ``Answer``, reading the rest of the stream first."""
        async for _ in self:
            pass
        return self.answer

    async def aclose(self) -> None:
        """Stop now: closes the connection and logs the partial call."""
        await self._items.aclose()

    async def __aenter__(self) -> AStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = "done" if self._answer is not None else "so far"
        return f"<AStream {self.model_hint or ''}: {len(self.text):,} characters {state}>"


def whole(completion: Completion) -> Iterator[Any]:
    """A provider without streaming, as a stream of one piece (its time to first token is
    its latency)."""
    if completion.text:
        yield completion.text
    yield completion


async def awhole(completion: Completion) -> AsyncIterator[Any]:
    """``whole`` for async code."""
    if completion.text:
        yield completion.text
    yield completion
