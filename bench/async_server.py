"""A fast asyncio loopback server that answers like OpenAI's chat completions endpoint.

Concurrency benchmarks need a server that is never the bottleneck: the threaded vendor server
in tests/ spends a thread per connection, so at 200 concurrent calls it measures itself. This
one is a bare ``asyncio.Protocol`` (no framework, no thread per connection): it parses
HTTP/1.1 with keep-alive and Content-Length, waits the configured delay with
``loop.call_later`` (never blocking), and answers ``POST /v1/chat/completions`` with an
OpenAI-shaped body including ``usage``. A body with ``"stream": true`` gets Server-Sent Events
in chunked encoding. It counts the connections it accepted and the responses it sent, so a
benchmark can tell how often a client opened a new TCP connection.

Per-request headers, for fault tests: ``x-delay-ms`` overrides the delay; ``x-status`` answers
with that status and an OpenAI error body; ``x-fault`` is one of ``close`` (drop the connection
without answering), ``garbage`` (send bytes that are not HTTP), ``truncate`` (promise more body
than is sent, then close), ``hang`` (never answer), ``stall`` (start an SSE stream, send one
event, then nothing) or ``drop`` (the same, then close the connection).

Run it in this process (``mode="thread"``: its loop in a daemon thread) or, so that it gets its
own core and GIL, in a child process (``mode="process"``, the default; it is controlled over its
stdin)::

    with running(delay_s=0.05) as url:
        httpx.post(f"{url}/v1/chat/completions", json={...})
        url.stats()  # {"connections": 1, "requests": 1, ...}

Standard library only. Written for the HTTP client study (notes/http_bench/REPORT.md, which
shows it is not the bottleneck at 200 concurrent calls) and copied for ``bench/``
(only ``_Slot.__slots__`` sorted, for ruff).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from typing import Any

__all__ = ["Server", "ServerURL", "running"]

_MAX_HEAD = 64 * 1024
_HEADER = re.compile(r"^([^:\r\n]+):[ \t]*(.*?)[ \t]*\r?$", re.M)  # one C call per request head
_MODEL = re.compile(rb'"model"\s*:\s*"([^"\\]{1,200})"')
_STREAMED = re.compile(rb'"stream"\s*:\s*true')
_STREAM_CHUNKS = 4  # SSE deltas per streamed answer
_STREAM_GAP_S = 0.002  # between two SSE events
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    408: "Request Timeout",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
}


def completion_body(model: str, n: int) -> bytes:
    """An OpenAI chat.completion with ``usage``: what adapters parse on success.

    Filled into a template rather than ``json.dumps``-ed: at thousands of answers a second the
    encoder would be the server's largest cost.
    """
    return _COMPLETION % (n, int(time.time()), json.dumps(model).encode())


_COMPLETION = (
    b'{"id":"chatcmpl-%d","object":"chat.completion","created":%d,"model":%s,'
    b'"choices":[{"index":0,"message":{"role":"assistant","content":"Paris."},'
    b'"logprobs":null,"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":14,"completion_tokens":2,"total_tokens":16}}'
)


def error_body(status: int) -> bytes:
    """OpenAI's error envelope, so error paths parse the way they do against the vendor."""
    return json.dumps(
        {"error": {"message": f"simulated {status}", "type": "server_error", "code": None}}
    ).encode()


def stream_events(model: str, n: int) -> list[bytes]:
    """The SSE events of a streamed answer: deltas, a final chunk with ``usage``, ``[DONE]``."""
    events = []
    words = ["Pa", "ris", ".", ""]
    for i in range(_STREAM_CHUNKS):
        chunk = {
            "id": f"chatcmpl-{n}",
            "object": "chat.completion.chunk",
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "delta": {"content": words[i % len(words)]},
                    "finish_reason": "stop" if i == _STREAM_CHUNKS - 1 else None,
                }
            ],
        }
        if i == _STREAM_CHUNKS - 1:
            chunk["usage"] = {"prompt_tokens": 14, "completion_tokens": 2, "total_tokens": 16}
        events.append(b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    return events


def _head(status: int, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}"]
    lines += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


_HEADS: dict[tuple[int, bool], bytes] = {}  # response heads by (status, keep-alive)


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class _Slot:
    """One response in a connection's queue: answers leave in request order (pipelining)."""

    __slots__ = ("close_after", "done", "parts", "timers")

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.done = False
        self.close_after = False
        self.timers: list[asyncio.TimerHandle] = []


class _Connection(asyncio.Protocol):
    """One client connection: parse requests as bytes arrive, answer each after the delay."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.loop = server.loop
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.queue: deque[_Slot] = deque()
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.connections += 1
        self.server.open_connections += 1
        self.server.peak_connections = max(
            self.server.peak_connections, self.server.open_connections
        )
        self.server.live.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.open_connections -= 1
        self.server.live.discard(self)
        for slot in self.queue:
            for timer in slot.timers:
                timer.cancel()
        self.queue.clear()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while not self.closed:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > _MAX_HEAD:
                    self._reject(431)
                return
            try:
                method, target, keep_alive, headers = self._parse_head(bytes(self.buffer[:end]))
            except ValueError:
                self._reject(400)
                return
            if "chunked" in headers.get("transfer-encoding", ""):
                self._reject(501)  # nothing here sends chunked request bodies
                return
            length = int(headers.get("content-length", "0") or 0)
            if len(self.buffer) < end + 4 + length:
                return  # the body is still arriving
            body = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            self._handle(method, target, keep_alive, headers, body)

    @staticmethod
    def _parse_head(head: bytes) -> tuple[str, str, bool, dict[str, str]]:
        request_line, _, rest = head.partition(b"\r\n")
        method, target, version = request_line.decode("latin-1").split(" ", 2)
        headers = {name.lower(): value for name, value in _HEADER.findall(rest.decode("latin-1"))}
        connection = headers.get("connection", "").lower()
        keep_alive = version == "HTTP/1.1" and "close" not in connection
        return method, target, keep_alive, headers

    def _reject(self, status: int) -> None:
        body = error_body(status)
        slot = self._slot()
        slot.close_after = True
        self._finish(slot, [self._plain_head(status, len(body), False), body])

    def _slot(self) -> _Slot:
        slot = _Slot()
        self.queue.append(slot)
        return slot

    @staticmethod
    def _plain_head(status: int, length: int, keep_alive: bool) -> bytes:
        key = (status, keep_alive)
        template = _HEADS.get(key)
        if template is None:
            template = _HEADS[key] = _head(
                status,
                [
                    ("content-type", "application/json"),
                    ("content-length", "%d"),
                    ("x-request-id", "req-bench"),
                    ("connection", "keep-alive" if keep_alive else "close"),
                ],
            )
        return template % length

    def _handle(
        self, method: str, target: str, keep_alive: bool, headers: dict[str, str], body: bytes
    ) -> None:
        server = self.server
        slot = self._slot()
        slot.close_after = not keep_alive
        fault = headers.get("x-fault", "")
        delay = server.delay_s
        if "x-delay-ms" in headers:
            delay = float(headers["x-delay-ms"]) / 1000
        path = target.split("?", 1)[0]
        if fault == "close":
            self._close()
            return
        if fault == "hang":
            return  # the slot never completes; the client's read timeout must fire
        if fault == "garbage":
            slot.close_after = True
            self._later(slot, delay, self._finish, slot, [b"\x00NOT HTTP AT ALL\r\n\r\n"])
            return
        if fault in ("stall", "drop"):  # an SSE stream that stops after its first event
            self._later(slot, delay, self._stream_then, slot, fault, keep_alive)
            return
        if fault == "truncate":
            slot.close_after = True
            part = self._plain_head(200, 1000, False) + b'{"id":"chatcmpl-trunc'
            self._later(slot, delay, self._finish, slot, [part])
            return
        if method != "POST" or path != "/v1/chat/completions":
            status = 404
            payload = error_body(status)
            self._later(slot, 0, self._finish, slot, [self._response(status, payload, keep_alive)])
            return
        status = int(headers.get("x-status", "200"))
        if status != 200:
            payload = error_body(status)
            parts = [self._response(status, payload, keep_alive)]
            self._later(slot, delay, self._finish, slot, parts)
            return
        # Two regexes, not json.loads: the body is only looked at, and parsing costs time.
        found = _MODEL.search(body)
        model = found.group(1).decode() if found else "bench-model"
        server.received += 1
        n = server.received
        if _STREAMED.search(body):
            events = stream_events(model, n)
            self._later(slot, delay, self._stream, slot, keep_alive, events, 0)
        else:
            self._later(slot, delay, self._answer, slot, keep_alive, model, n)

    def _response(self, status: int, payload: bytes, keep_alive: bool) -> bytes:
        return self._plain_head(status, len(payload), keep_alive) + payload

    def _later(self, slot: _Slot, delay: float, callback: Any, *args: Any) -> None:
        slot.timers.append(self.loop.call_later(delay, callback, *args))

    def _answer(self, slot: _Slot, keep_alive: bool, model: str, n: int) -> None:
        payload = completion_body(model, n)
        self._finish(slot, [self._response(200, payload, keep_alive)])

    def _stream(
        self, slot: _Slot, keep_alive: bool, events: list[bytes], i: int, last: int | None = None
    ) -> None:
        """Send event ``i`` (the head first), then schedule the next one; stop after ``last``."""
        if i == 0:
            head = _head(
                200,
                [
                    ("content-type", "text/event-stream"),
                    ("cache-control", "no-cache"),
                    ("transfer-encoding", "chunked"),
                    ("x-request-id", "req-bench"),
                    ("connection", "keep-alive" if keep_alive else "close"),
                ],
            )
            slot.parts.append(head)
        slot.parts.append(_chunk(events[i]))
        if i == last:
            self._flush()  # a stalled stream: the rest never comes
        elif i + 1 < len(events):
            self._flush()
            self._later(slot, _STREAM_GAP_S, self._stream, slot, keep_alive, events, i + 1)
        else:
            self._finish(slot, [b"0\r\n\r\n"])

    def _stream_then(self, slot: _Slot, fault: str, keep_alive: bool) -> None:
        self._stream(slot, keep_alive, stream_events("bench-model", 0), 0, last=0)
        if fault == "drop":
            self._close()

    def _finish(self, slot: _Slot, parts: list[bytes]) -> None:
        slot.parts.extend(parts)
        slot.done = True
        self._flush()

    def _flush(self) -> None:
        """Write what the head of the queue has; later answers wait for earlier ones."""
        while self.queue and not self.closed:
            slot = self.queue[0]
            if slot.parts:
                self.transport.write(b"".join(slot.parts))  # type: ignore[union-attr]
                slot.parts.clear()
            if not slot.done:
                return
            self.queue.popleft()
            self.server.requests += 1
            if slot.close_after:
                self._close()
                return

    def _close(self) -> None:
        if not self.closed and self.transport is not None:
            self.transport.close()
            self.closed = True


class Server:
    """The listening socket and its counters; everything runs on ``loop``."""

    def __init__(self, delay_s: float = 0.05) -> None:
        self.delay_s = delay_s
        self.connections = 0  # accepted since start (or the last reset)
        self.requests = 0  # responses written in full
        self.received = 0  # completion requests parsed (numbers the answers' ids)
        self.open_connections = 0
        self.peak_connections = 0
        self.live: set[_Connection] = set()
        self._cpu0 = time.process_time()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.loop = asyncio.get_running_loop()
        self._server = await self.loop.create_server(
            lambda: _Connection(self), host, port, backlog=4096, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and drop every open connection (clients see them closed)."""
        if self._server is not None:
            self._server.close()
            for conn in list(self.live):
                conn._close()
            await self._server.wait_closed()

    def stats(self) -> dict[str, Any]:
        return {
            "connections": self.connections,
            "requests": self.requests,
            "open_connections": self.open_connections,
            "peak_connections": self.peak_connections,
            "delay_s": self.delay_s,
            # the whole process's CPU: the server's own only in mode="process"
            "cpu_s": time.process_time() - self._cpu0,
        }

    def reset(self) -> None:
        """Zero the counters, so each measured run reads its own (peak restarts at open)."""
        self.connections = 0
        self.requests = 0
        self.peak_connections = self.open_connections
        self._cpu0 = time.process_time()

    def control(self, command: str) -> dict[str, Any]:
        """One command of the stdin protocol: ``stats``, ``reset`` or ``delay SECONDS``."""
        name, _, arg = command.strip().partition(" ")
        if name == "reset":
            self.reset()
        elif name == "delay":
            self.delay_s = float(arg)
        elif name != "stats":
            return {"error": f"unknown command {command!r}"}
        return self.stats()


class ServerURL(str):
    """The base URL (``http://127.0.0.1:PORT``), plus the server's counters.

    A ``str`` so that ``with running() as url`` reads naturally where only the address matters.
    """

    _control: Any

    def __new__(cls, url: str, control: Any) -> ServerURL:
        self = super().__new__(cls, url)
        self._control = control
        return self

    def stats(self) -> dict[str, Any]:
        """Connections accepted, responses sent, open and peak connections, the delay."""
        return self._control("stats")

    def reset(self) -> dict[str, Any]:
        return self._control("reset")

    def set_delay(self, delay_s: float) -> dict[str, Any]:
        return self._control(f"delay {delay_s}")


@contextmanager
def _in_thread(delay_s: float) -> Iterator[ServerURL]:
    server = Server(delay_s)
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.start())
        ready.set()
        loop.run_forever()
        loop.run_until_complete(server.stop())
        loop.close()

    thread = threading.Thread(target=serve, name="async-bench-server", daemon=True)
    thread.start()
    if not ready.wait(10):
        raise RuntimeError("the benchmark server did not start")

    def control(command: str) -> dict[str, Any]:
        # Run on the server's loop: its counters are only ever touched from there.
        async def run() -> dict[str, Any]:
            return server.control(command)

        return asyncio.run_coroutine_threadsafe(run(), loop).result(5)

    try:
        yield ServerURL(f"http://127.0.0.1:{server.port}", control)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


@contextmanager
def _in_process(delay_s: float) -> Iterator[ServerURL]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--delay", str(delay_s), "--control"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    lock = threading.Lock()  # one command and its answer at a time

    def control(command: str) -> dict[str, Any]:
        with lock:
            proc.stdin.write(command + "\n")  # type: ignore[union-attr]
            proc.stdin.flush()  # type: ignore[union-attr]
            return json.loads(proc.stdout.readline())  # type: ignore[union-attr]

    try:
        hello = json.loads(proc.stdout.readline() or "{}")  # type: ignore[union-attr]
        if "url" not in hello:
            raise RuntimeError("the benchmark server did not start")
        yield ServerURL(hello["url"], control)
    finally:
        with suppress(OSError):
            proc.stdin.close()  # type: ignore[union-attr]  # EOF on stdin: the child stops
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]


def running(delay_s: float = 0.05, mode: str = "process") -> AbstractContextManager[ServerURL]:
    """Start the server for the ``with`` block; yields its ``ServerURL``.

    ``mode="process"`` (default) gives the server its own interpreter, so a client under test
    never competes with it for the GIL; ``mode="thread"`` is lighter and keeps it in-process.
    """
    if mode == "thread":
        return _in_thread(delay_s)
    if mode == "process":
        return _in_process(delay_s)
    raise ValueError(f"mode must be 'thread' or 'process', not {mode!r}")


async def _serve(delay_s: float, host: str, port: int, control: bool) -> None:
    server = Server(delay_s)
    await server.start(host, port)
    url = f"http://{host}:{server.port}"
    if not control:
        print(url, flush=True)
        await asyncio.Event().wait()  # until Ctrl-C
        return
    # Controlled by a parent over stdin: one JSON line per command, EOF means stop.
    print(json.dumps({"url": url}), flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        print(json.dumps(server.control(line.decode())), flush=True)
    await server.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--delay", type=float, default=0.05, help="seconds before each answer")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--control", action="store_true", help="take commands on stdin")
    args = parser.parse_args(argv)
    with suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.delay, args.host, args.port, args.control))


if __name__ == "__main__":
    main()
