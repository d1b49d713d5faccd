"""What ``kit.stream`` and ``kit.astream`` return: the answer's text pieces as they arrive,
then its ``Answer``. Nothing is sent until the first piece is asked for; leaving early
(``break``, ``close()``, the ``with`` block's end, garbage collection) closes the connection
and the partial call is logged."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from ims_kit.errors import ImsError
from ims_kit.records import Answer, Completion


class _Received:
    """What both kinds of stream hold: the pieces so far, then the ``Answer``."""

    def __init__(self, items: Any, model_hint: str | None = None):
        self._items = items
        self._parts: list[str] = []
        self._answer: Answer | None = None
        self.model_hint = model_hint  # the first candidate (another may answer)

    def _take(self, item: Any) -> bool:
        """Keep one item; True when it is the ``Answer`` (the stream is over)."""
        if isinstance(item, Answer):
            self._answer = item
            return True
        self._parts.append(item)
        return False

    @property
    def text(self) -> str:
        """The text received so far (all of it once the stream is done)."""
        return "".join(self._parts)

    @property
    def done(self) -> bool:
        """True once the whole answer arrived."""
        return self._answer is not None

    def __repr__(self) -> str:
        kind = type(self).__name__
        if self._answer is not None:
            return f"<{kind} done: {self._answer.model_id}, {len(self.text):,} characters>"
        return f"<{kind} {self.model_hint or ''}: {len(self.text):,} characters so far>"


class Stream(_Received):
    """Iterate for the text pieces; ``answer`` is the ``Answer`` (tokens, cost, latency, time
    to first token, call id), read to the end first when needed; ``text`` is what came so far.
    """

    _items: Iterator[Any]

    def __iter__(self) -> Stream:
        return self

    def __next__(self) -> str:
        if self._answer is not None:
            raise StopIteration
        item = next(self._items)
        if self._take(item):
            self._items.close()  # the request is over: its generator ends now, not at GC
            raise StopIteration
        return item

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


class AStream(_Received):
    """``Stream`` for async code: ``async for piece in s``, then ``s.answer``; or
    ``await s.result()`` for the ``Answer`` (reading the rest first)."""

    _items: AsyncIterator[Any]

    def __aiter__(self) -> AStream:
        return self

    async def __anext__(self) -> str:
        if self._answer is not None:
            raise StopAsyncIteration
        item = await anext(self._items)
        if self._take(item):
            await self._items.aclose()
            raise StopAsyncIteration
        return item

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
