"""What the HTTP adapters share: pooled clients, timeouts, transport errors, the error body.

An adapter supplies its pure hooks (``build_request``, ``parse_success``, ``base_url``);
``HTTPProvider`` runs them over a reused ``httpx.Client`` (``complete``) or a lazily created
``httpx.AsyncClient`` (``acomplete``). Error bodies of every vendor are read by
``ims_kit.vendor_errors``. Providers never retry, log or read the registry: they turn one
exchange into a ``Completion`` or a ``ProviderError`` and leave the rest to recovery.
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

import httpx

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
    """An adapter over httpx: one pooled sync client, one async client per event loop.

    Subclasses set ``name`` and ``request_id_header`` and implement the three hooks.
    Timeouts: ``connect_timeout_s`` to open a connection, ``timeout_s`` for every other phase.
    """

    name = "http"
    request_id_header = "x-request-id"

    def __init__(self, *, timeout_s: float = 120.0, connect_timeout_s: float = 10.0):
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self._timeout = httpx.Timeout(timeout_s, connect=connect_timeout_s)
        self._client: httpx.Client | None = None
        self._client_lock = threading.Lock()
        self._aclient: httpx.AsyncClient | None = None
        self._aloop: asyncio.AbstractEventLoop | None = None

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
        except httpx.RequestError as exc:
            raise self.transport_error(exc, url, spec, headers) from None
        latency_ms = (time.perf_counter() - start) * 1000
        return self._finish(response, latency_ms, spec.model_id, headers)

    async def acomplete(self, spec: ModelSpec, prompt: Prompt | str, **options: Any) -> Completion:
        """``complete`` for async code, on an ``httpx.AsyncClient`` bound to the running loop."""
        url, headers, body = self.build_request(spec, as_prompt(prompt, **options))
        client = self._async_client()
        start = time.perf_counter()
        try:
            response = await client.post(url, headers=headers, json=body)
        except httpx.RequestError as exc:
            raise self.transport_error(exc, url, spec, headers) from None
        latency_ms = (time.perf_counter() - start) * 1000
        return self._finish(response, latency_ms, spec.model_id, headers)

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
                    raise self._http_error(response, spec, headers)
                state.request_id = response.headers.get(self.request_id_header)
                for event, data in events(response.iter_lines()):
                    piece = self._read(event, data, state, spec, headers)
                    if piece:
                        state.parts.append(piece)
                        yield piece
        except httpx.RequestError as exc:
            raise self.transport_error(exc, url, spec, headers) from None
        yield self._finished(state, spec, start)

    async def astream(
        self, spec: ModelSpec, prompt: Prompt | str, **options: Any
    ) -> AsyncIterator[Any]:
        """``stream`` for async code, on the async client of the running loop."""
        url, headers, body = self.build_request(spec, as_prompt(prompt, **options), stream=True)
        client = self._async_client()
        state, start = StreamState(), time.perf_counter()
        try:
            async with client.stream("POST", url, headers=headers, json=body) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise self._http_error(response, spec, headers)
                state.request_id = response.headers.get(self.request_id_header)
                async for event, data in aevents(response.aiter_lines()):
                    piece = self._read(event, data, state, spec, headers)
                    if piece:
                        state.parts.append(piece)
                        yield piece
        except httpx.RequestError as exc:
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

    def _http_error(self, response, spec: ModelSpec, headers) -> ProviderError:
        return self.parse_error(
            response.status_code,
            response.headers,
            response.text,
            model=spec.model_id,
            secrets=secrets_of(headers),
        )

    def _sync_client(self) -> httpx.Client:
        with self._client_lock:  # threads may share a provider: create one pool, not several
            if self._client is None:
                self._client = httpx.Client(timeout=self._timeout, verify=_ssl_context())
            return self._client

    def _async_client(self) -> httpx.AsyncClient:
        # An AsyncClient's pooled connections belong to one event loop; a new loop (a second
        # asyncio.run) gets a new client rather than connections it cannot use.
        loop = asyncio.get_running_loop()
        if self._aclient is None or self._aloop is not loop:
            self._aclient = httpx.AsyncClient(timeout=self._timeout, verify=_ssl_context())
            self._aloop = loop
        return self._aclient

    def _finish(
        self, response: httpx.Response, latency_ms: float, model: str, headers: Mapping[str, str]
    ) -> Completion:
        if response.status_code >= 400:
            raise self.parse_error(
                response.status_code,
                response.headers,
                response.text,
                model=model,
                secrets=secrets_of(headers),
            )
        try:
            fields = self.parse_success(response.json(), response.headers)
        except (ValueError, LookupError, TypeError, AttributeError):
            raise ProviderError(
                f"unexpected response body: {clean_text(redact(response.text))!r}",
                provider=self.name,
                model=model,
                status=response.status_code,
                error_type="invalid_response",
                request_id=response.headers.get(self.request_id_header),
            ) from None
        fields["model"] = fields.get("model") or model  # the vendor's name for what answered
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
        self, exc: httpx.RequestError, url: str, spec: ModelSpec, headers: Mapping[str, str]
    ) -> ProviderError:
        """A ``ProviderError`` (status None) for a failure below HTTP: timeout, refused, dropped.

        A connection that was never made (refused, DNS, TLS, or no connection within the
        connect timeout) is ``connect``: the endpoint's failure, not only this model's."""
        if isinstance(exc, httpx.ConnectTimeout):
            transport, what = "connect", f"no connection within the timeout ({type(exc).__name__})"
        elif isinstance(exc, httpx.TimeoutException):
            transport, what = "timeout", f"no answer within the timeout ({type(exc).__name__})"
        elif isinstance(exc, httpx.ConnectError):
            transport, what = "connect", f"could not connect ({exc})"
        elif isinstance(exc, httpx.NetworkError):
            transport, what = (
                "read",
                f"connection failed mid-exchange ({type(exc).__name__}: {exc})",
            )
        else:
            transport, what = "protocol", f"broken HTTP exchange ({type(exc).__name__}: {exc})"
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
        """Close the async client of the running loop, and the sync client."""
        client, self._aclient, self._aloop = self._aclient, None, None
        if client is not None:
            await client.aclose()
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
    return httpx.create_ssl_context()


def _reason(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"
