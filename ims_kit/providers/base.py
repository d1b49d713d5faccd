"""What the HTTP adapters share: pooled clients, timeouts, transport errors, the error body.

An adapter supplies its pure hooks (``build_request``, ``parse_success``, ``read_event``,
``base_url``); ``HTTPProvider`` runs them over two clients chosen by measurement
(docs/BENCHMARKS.md): a pooled ``httpx2.Client`` for sync calls (httpx's maintained
successor: same API, no pool hang, less overhead) and one ``aiohttp.ClientSession`` per event
loop for async calls (the only client within the targets at 200 calls in flight). Both
clients' failures map to the same transport kinds (``transport_kind``), so recovery cannot
tell them apart. Error bodies of every vendor are read by ``ims_kit.vendor_errors``.
Providers never retry, log or read the registry: they turn one exchange into a
``Completion`` or a ``ProviderError`` and leave the rest to recovery.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import ssl
import threading
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from http import HTTPStatus
from typing import Any, Protocol, runtime_checkable

import httpx2

from ims_kit.errors import MissingKeyError, ProviderError
from ims_kit.prompts import Prompt, as_prompt, refused_by_registry
from ims_kit.providers.sse import StreamState, aevents, events
from ims_kit.records import Completion, ModelSpec
from ims_kit.vendor_errors import (
    clean_text,
    error_fields,
    overflow,
    overflow_tokens,
    parse_retry_after,
    redact,
)

__all__ = [
    "HTTPProvider",
    "Provider",
    "clean_text",
    "env",
    "overflow_tokens",
    "parse_retry_after",
    "redact",
    "require_key",
    "secrets_of",
]

SYNC_CLIENT = "httpx2"  # what the bench compares ims_kit with (bench/bench_scale.py)
ASYNC_CLIENT = "aiohttp"
SYNC_POOL = 64  # connections kept by the sync client: the threads that share a provider
ASYNC_POOL = 512  # connections per event loop: the calls in flight at once
MAX_MESSAGE_CHARS = 1000
_SECRET_HEADERS = ("authorization", "x-api-key", "x-goog-api-key")


@runtime_checkable
class Provider(Protocol):
    """What ``Kit`` and recovery call: one model call, sync or async, and cleanup.

    ``prompt`` is a ``Prompt`` (or a string: one user turn). ``endpoint(spec)`` is where the
    call goes (a base URL), None when there is no endpoint to fail (the simulator).
    """

    name: str

    def complete(self, spec: ModelSpec, prompt: Prompt | str) -> Completion: ...

    async def acomplete(self, spec: ModelSpec, prompt: Prompt | str) -> Completion: ...

    def endpoint(self, spec: ModelSpec) -> str | None: ...

    def close(self) -> None: ...

    async def aclose(self) -> None: ...


def env(*names: str) -> str | None:
    """The first of these environment variables that is set to a non-blank value."""
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def require_key(provider: str, *names: str) -> str:
    """The API key from the first set variable of ``names``, else ``MissingKeyError``."""
    key = env(*names)
    if key is None:
        raise MissingKeyError(provider, names[0])
    return key


class HTTPProvider:
    """An adapter over HTTP: one pooled sync client, one async session per event loop.

    Subclasses set ``name`` and ``request_id_header`` and implement the hooks. Timeouts:
    ``connect_timeout_s`` to open a connection, ``timeout_s`` for every other phase (between
    two reads of a stream, not for the whole answer). ``max_connections`` bounds the sync pool
    (size it to the threads sharing the provider), ``max_async_connections`` the connections
    of one event loop.
    """

    name = "http"
    request_id_header = "x-request-id"

    def __init__(
        self,
        *,
        timeout_s: float = 120.0,
        connect_timeout_s: float = 10.0,
        max_connections: int = SYNC_POOL,
        max_async_connections: int = ASYNC_POOL,
    ):
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.max_connections = max_connections
        self.max_async_connections = max_async_connections
        self._client: httpx2.Client | None = None
        self._client_lock = threading.Lock()
        self._sessions: dict[asyncio.AbstractEventLoop, Any] = {}

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, timeout_s={self.timeout_s}, "
            f"connect_timeout_s={self.connect_timeout_s})"
        )

    # ------------------------------------------------------------------ hooks (pure)
    def base_url(self, spec: ModelSpec) -> str:
        """Where this model's calls go: the row's base URL, else the environment's, else the
        vendor's own."""
        raise NotImplementedError

    def endpoint(self, spec: ModelSpec) -> str:
        """The endpoint a failed connection rules out: the base URL."""
        return self.base_url(spec)

    def refused_options(self, spec: ModelSpec, prompt: Prompt) -> dict[str, str]:
        """The options this model does not take, and why: recovery drops them before sending."""
        return refused_by_registry(spec)

    def build_request(
        self, spec: ModelSpec, prompt: Prompt, stream: bool = False
    ) -> tuple[str, dict[str, str], dict[str, Any]]:
        """(url, headers, JSON body) of the call (streamed when ``stream``); raises
        ``MissingKeyError`` before any I/O."""
        raise NotImplementedError

    def parse_success(self, data: Any, headers: Mapping[str, str]) -> dict[str, Any]:
        """Completion fields (text, tokens_in, tokens_out, finish_reason, request_id)."""
        raise NotImplementedError

    def read_event(self, event: str | None, data: Any, state: StreamState) -> str | None:
        """One event of a streamed answer: its text piece (None if it has none), the usage,
        ids and end it says into ``state``; an error event is returned by ``event_error``."""
        raise NotImplementedError

    # ------------------------------------------------------------------ calls
    def complete(self, spec: ModelSpec, prompt: Prompt | str, **options: Any) -> Completion:
        """Call the model once; a ``Completion`` or a ``ProviderError`` (never retried here).

        A string ``prompt`` is one user turn; ``max_tokens=`` and ``system=`` go with it."""
        url, headers, body = self.build_request(spec, as_prompt(prompt, **options))
        client = self._client or self._sync_client()
        start = time.perf_counter()
        try:
            response = client.post(url, headers=headers, json=body)
        except httpx2.RequestError as exc:
            raise self.transport_error(exc, url, spec, headers) from None
        latency_ms = (time.perf_counter() - start) * 1000
        return self._finish(
            response.status_code, response.headers, response.text, latency_ms, spec, headers
        )

    async def acomplete(self, spec: ModelSpec, prompt: Prompt | str, **options: Any) -> Completion:
        """``complete`` for async code, on the aiohttp session of the running loop."""
        url, headers, body = self.build_request(spec, as_prompt(prompt, **options))
        session = await self._async_session()
        start = time.perf_counter()
        try:
            async with session.post(url, headers=headers, json=body) as response:
                raw = await response.read()
                status, got = response.status, response.headers
        except _async_failures() as exc:
            raise self.transport_error(exc, url, spec, headers) from None
        latency_ms = (time.perf_counter() - start) * 1000
        return self._finish(status, got, _decoded(raw), latency_ms, spec, headers)

    def stream(self, spec: ModelSpec, prompt: Prompt | str, **options: Any) -> Iterator[Any]:
        """One streamed call: each text piece (a str) as it arrives, then the ``Completion``
        with the usage the stream reported. A failure is a ``ProviderError``; closing the
        generator early closes the connection."""
        url, headers, body = self.build_request(spec, as_prompt(prompt, **options), stream=True)
        client = self._client or self._sync_client()
        state, start = StreamState(), time.perf_counter()
        try:
            with client.stream("POST", url, headers=headers, json=body) as response:
                if response.status_code >= 400:
                    response.read()
                    raise self._http_error(
                        response.status_code, response.headers, response.text, spec, headers
                    )
                state.request_id = response.headers.get(self.request_id_header)
                for event, data in events(response.iter_lines()):
                    piece = self._read(event, data, state, spec, headers)
                    if piece:
                        state.parts.append(piece)
                        yield piece
        except httpx2.RequestError as exc:
            raise self.transport_error(exc, url, spec, headers) from None
        yield self._finished(state, spec, start)

    async def astream(
        self, spec: ModelSpec, prompt: Prompt | str, **options: Any
    ) -> AsyncIterator[Any]:
        """``stream`` for async code, on the session of the running loop."""
        url, headers, body = self.build_request(spec, as_prompt(prompt, **options), stream=True)
        session = await self._async_session()
        state, start = StreamState(), time.perf_counter()
        try:
            async with session.post(url, headers=headers, json=body) as response:
                if response.status >= 400:
                    text = _decoded(await response.read())
                    raise self._http_error(response.status, response.headers, text, spec, headers)
                state.request_id = response.headers.get(self.request_id_header)
                async for event, data in aevents(_lines(response.content)):
                    piece = self._read(event, data, state, spec, headers)
                    if piece:
                        state.parts.append(piece)
                        yield piece
        except _async_failures() as exc:
            raise self.transport_error(exc, url, spec, headers) from None
        yield self._finished(state, spec, start)

    def _read(self, event, data, state, spec: ModelSpec, headers) -> str | None:
        error = self.event_error(data, spec, headers)
        if error is not None:
            raise error
        try:
            return self.read_event(event, data, state)
        except (LookupError, TypeError, AttributeError):
            raise ProviderError(
                f"unexpected stream event: {clean_text(redact(str(data)))!r}",
                provider=self.name,
                model=spec.model_id,
                error_type="invalid_response",
            ) from None

    def final_text(self, state: StreamState) -> str:
        """The answer's text once the stream is over: its pieces joined."""
        return state.text

    def event_error(self, data: Any, spec: ModelSpec, headers: Mapping[str, str]):
        """The ProviderError of a vendor's mid-stream error event (None for other events)."""
        if not (isinstance(data, dict) and (data.get("type") == "error" or "error" in data)):
            return None
        fields = error_fields(data)
        code = (
            (data.get("error") or {}).get("code") if isinstance(data.get("error"), dict) else None
        )
        message = redact(
            fields.get("message") or "the stream reported an error", secrets_of(headers)
        )
        return ProviderError(
            message,
            provider=self.name,
            model=spec.model_id,
            status=code if isinstance(code, int) and 400 <= code < 600 else None,
            error_type=fields.get("error_type"),
            code=fields.get("code"),
        )

    def _finished(self, state: StreamState, spec: ModelSpec, start: float) -> Completion:
        if not state.done:
            raise ProviderError(
                "the stream ended before the vendor said it was complete",
                provider=self.name,
                model=spec.model_id,
                transport="read",
            )
        latency_ms = (time.perf_counter() - start) * 1000
        return Completion(
            self.final_text(state),
            state.tokens_in,
            state.tokens_out,
            state.finish_reason,
            state.request_id,
            latency_ms,
            state.model or spec.model_id,
        )

    def _http_error(
        self, status: int, got: Mapping[str, str], text: str, spec: ModelSpec, headers
    ) -> ProviderError:
        return self.parse_error(status, got, text, model=spec.model_id, secrets=secrets_of(headers))

    def _sync_client(self) -> httpx2.Client:
        with self._client_lock:  # threads may share a provider: create one pool, not several
            if self._client is None:
                self._client = httpx2.Client(
                    timeout=httpx2.Timeout(self.timeout_s, connect=self.connect_timeout_s),
                    limits=httpx2.Limits(
                        max_connections=self.max_connections,
                        max_keepalive_connections=self.max_connections,
                    ),
                    verify=_ssl_context(),
                )
            return self._client

    async def _async_session(self) -> Any:
        # A session's connections belong to one event loop: each loop gets its own. It is
        # closed when its loop shuts down (asyncio.run finalises async generators before
        # closing the loop, and one holds the session); a loop closed without that has its
        # session dropped when another loop asks.
        loop = asyncio.get_running_loop()
        held = self._sessions.get(loop)
        if held is not None:
            return held[0]
        import aiohttp

        for old in [lp for lp in self._sessions if lp.is_closed()]:
            _drop(self._sessions.pop(old)[0])
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.max_async_connections, ssl=_ssl_context()),
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=self.connect_timeout_s, sock_read=self.timeout_s
            ),
            # HTTP(S)_PROXY / NO_PROXY, as httpx reads them; only when one is set, since
            # aiohttp then looks them up in a thread for every request
            trust_env=_proxied(),
        )
        keeper = _closed_with_the_loop(session)
        await anext(keeper)
        self._sessions[loop] = (session, keeper)  # the strong reference keeps it alive
        return session

    def _finish(
        self,
        status: int,
        got: Mapping[str, str],
        text: str,
        latency_ms: float,
        spec: ModelSpec,
        headers: Mapping[str, str],
    ) -> Completion:
        if status >= 400:
            raise self._http_error(status, got, text, spec, headers)
        try:
            fields = self.parse_success(json.loads(text), got)
        except (ValueError, LookupError, TypeError, AttributeError):
            raise ProviderError(
                f"unexpected response body: {clean_text(redact(text))!r}",
                provider=self.name,
                model=spec.model_id,
                status=status,
                error_type="invalid_response",
                request_id=got.get(self.request_id_header),
            ) from None
        fields["model"] = fields.get("model") or spec.model_id  # the vendor's name for it
        return Completion(**fields, latency_ms=latency_ms)

    def parse_error(
        self,
        status: int,
        headers: Mapping[str, str],
        body_text: str,
        *,
        model: str | None = None,
        secrets: Iterable[str] = (),
    ) -> ProviderError:
        """The ``ProviderError`` for an HTTP error response, its message redacted."""
        try:
            data = json.loads(body_text) if body_text else None
        except ValueError:
            data = None
        fields = error_fields(data)
        message = fields.get("message")
        if not isinstance(message, str) or not message.strip():
            message = clean_text(body_text) if data is None else clean_text(body_text, 300)
        message = redact(message or _reason(status), secrets)
        request_id = fields.get("request_id") or headers.get(self.request_id_header)
        counts = overflow(message)
        return ProviderError(
            message[:MAX_MESSAGE_CHARS],
            provider=self.name,
            model=model,
            status=status,
            error_type=fields.get("error_type"),
            code=fields.get("code"),
            retry_after_s=parse_retry_after(headers, data, message=message),
            request_id=request_id,
            prompt_tokens=counts.prompt_tokens,
            limit_tokens=counts.limit_tokens,
            output_tokens=counts.output_tokens,
        )

    def transport_error(
        self, exc: BaseException, url: str, spec: ModelSpec, headers: Mapping[str, str]
    ) -> ProviderError:
        """A ``ProviderError`` (status None) for a failure below HTTP: timeout, refused, dropped.

        A connection that was never made (refused, DNS, TLS, or no connection within the
        connect timeout) is ``connect``: the endpoint's failure, not only this model's. The
        sync client's (httpx2) and the async one's (aiohttp) exceptions map alike."""
        transport, what = transport_kind(exc)
        message = redact(f"{what} calling {url}", secrets_of(headers))
        return ProviderError(
            message,
            provider=self.name,
            model=spec.model_id,
            transport=transport,
            endpoint=self.endpoint(spec),
        )

    # ------------------------------------------------------------------ cleanup
    def close(self) -> None:
        """Close the pooled sync client (the provider stays usable: a new one opens on demand)."""
        if self._client is not None:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        """Close the running loop's session (and drop those of closed loops), and the sync
        client."""
        held = self._sessions.pop(asyncio.get_running_loop(), None)
        if held is not None:
            await held[1].aclose()  # closes the session
        for old in [lp for lp in self._sessions if lp.is_closed()]:
            _drop(self._sessions.pop(old)[0])
        self.close()

    def __enter__(self) -> HTTPProvider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def secrets_of(headers: Mapping[str, str]) -> list[str]:
    """The credential values in request headers (bearer token without its scheme)."""
    found = []
    for name in _SECRET_HEADERS:
        value = headers.get(name)
        if value:
            found.append(value)
            if value.lower().startswith("bearer "):
                found.append(value[7:].strip())
    return found


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    # Building a context (loading the CA bundle) takes ~25 ms; every client shares one.
    return httpx2.create_ssl_context()


def transport_kind(exc: BaseException) -> tuple[str, str]:
    """(transport, what happened) of a failure below HTTP, from httpx2 or aiohttp."""
    kind = type(exc).__name__
    if isinstance(exc, httpx2.ConnectTimeout):
        return "connect", f"no connection within the timeout ({kind})"
    if isinstance(exc, httpx2.TimeoutException):
        return "timeout", f"no answer within the timeout ({kind})"
    if isinstance(exc, httpx2.ConnectError):
        return "connect", f"could not connect ({exc})"
    if isinstance(exc, httpx2.NetworkError):
        return "read", f"connection failed mid-exchange ({kind}: {exc})"
    if isinstance(exc, httpx2.RequestError):
        return "protocol", f"broken HTTP exchange ({kind}: {exc})"
    import aiohttp

    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return "connect", f"no connection within the timeout ({kind})"
    if isinstance(exc, aiohttp.ServerTimeoutError | asyncio.TimeoutError):
        return "timeout", f"no answer within the timeout ({kind})"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "connect", f"could not connect ({exc})"
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return "protocol", f"broken HTTP exchange ({kind}: {exc})"
    if isinstance(exc, aiohttp.ClientOSError):
        return "read", f"connection failed mid-exchange ({kind}: {exc})"
    return "protocol", f"broken HTTP exchange ({kind}: {exc})"


@functools.cache
def _async_failures() -> tuple[type[BaseException], ...]:
    """What an aiohttp exchange raises below HTTP (imported when the first async call is)."""
    import aiohttp

    return (aiohttp.ClientError, asyncio.TimeoutError)


async def _lines(content: Any) -> AsyncIterator[str]:
    """An aiohttp body as text lines (the line ending dropped), for the SSE parser."""
    async for raw in content:
        yield raw.decode("utf-8", errors="replace").rstrip("\r\n")


def _proxied() -> bool:
    names = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NETRC")
    return any(os.environ.get(n) or os.environ.get(n.lower()) for n in names)


def _decoded(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


async def _closed_with_the_loop(session: Any) -> AsyncIterator[None]:
    """Holds ``session`` open until its loop finalises async generators (or aclose())."""
    try:
        yield
    finally:
        await session.close()


def _drop(session: Any) -> None:
    """Forget a session whose event loop has closed (it can no longer be awaited closed)."""
    connector = session.connector
    if connector is not None:
        connector._close()  # its loop is closed: nothing is left to wait for
    session.detach()


def _reason(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"
