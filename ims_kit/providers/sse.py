"""Server-Sent Events as the three vendors send them: ``event:`` and ``data:`` lines, an event
ending at a blank line (``\\n\\n`` or Gemini's ``\\r\\n\\r\\n``), OpenAI's ``data: [DONE]``.
Pure: lines in, (event name, decoded data) out."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

DONE = "[DONE]"


@dataclass
class StreamState:
    """What a stream has said so far: the text, and the usage and ids its events carry."""

    parts: list[str] = field(default_factory=list)
    tokens_in: int | None = None
    tokens_out: int | None = None
    finish_reason: str | None = None
    request_id: str | None = None
    model: str | None = None
    done: bool = False  # the vendor's own end of stream was seen
    tool_json: bool = False  # the pieces are a forced tool's input (Anthropic's JSON answer)

    @property
    def text(self) -> str:
        return "".join(self.parts)


class _Parser:
    """Collects lines into events."""

    def __init__(self) -> None:
        self.event: str | None = None
        self.data: list[str] = []

    def feed(self, line: str) -> tuple[str | None, Any] | None:
        line = line.rstrip("\r")
        if not line:
            return self.flush()
        if line.startswith(":"):  # a comment (keep-alive)
            return None
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            self.event = value
        elif name == "data":
            self.data.append(value)
        return None

    def flush(self) -> tuple[str | None, Any] | None:
        if not self.data:
            self.event = None
            return None
        raw, event = "\n".join(self.data), self.event
        self.event, self.data = None, []
        if raw.strip() == DONE:
            return event, DONE
        try:
            return event, json.loads(raw)
        except ValueError:
            return event, raw


def events(lines: Iterable[str]) -> Iterator[tuple[str | None, Any]]:
    """(event name or None, decoded JSON data, or the raw text, or ``DONE``) per event."""
    parser = _Parser()
    for line in lines:
        found = parser.feed(line)
        if found is not None:
            yield found
    found = parser.flush()
    if found is not None:
        yield found


async def aevents(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str | None, Any]]:
    """``events`` over an async iterator of lines."""
    parser = _Parser()
    async for line in lines:
        found = parser.feed(line)
        if found is not None:
            yield found
    found = parser.flush()
    if found is not None:
        yield found
