"""What the HTTP adapters share: pooled clients, timeouts, transport errors, Retry-After, redaction.

An adapter supplies three pure hooks (``build_request``, ``parse_success``, ``error_fields``);
``HTTPProvider`` runs them over a reused ``httpx.Client`` (``complete``) or a lazily created
``httpx.AsyncClient`` (``acomplete``). Providers never retry, log or read the registry: they
turn one exchange into a ``Completion`` or a ``ProviderError`` and leave the rest to recovery.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import json
import math
import os
import re
import ssl
import threading
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, Protocol, runtime_checkable

import httpx

from ims_kit.errors import MissingKeyError, ProviderError
from ims_kit.records import Completion, ModelSpec

REDACTED = "[redacted]"
_SECRET_HEADERS = ("authorization", "x-api-key", "x-goog-api-key")
_KEY_LIKE = re.compile(
    r"(?<![A-Za-z0-9])(?:sk-[A-Za-z0-9_\-*]{6,}|AIza[0-9A-Za-z_\-]{16,})"  # vendor keys
    r"|[A-Za-z0-9_\-]+\*{4,}[A-Za-z0-9_\-]*"  # a masked echo such as sk-abc12*****wxyz
    r"|(?i:bearer)\s+[A-Za-z0-9._~+/=\-]{8,}"
)
_OVERFLOW = (  # (pattern, group of the prompt's tokens, group of the limit)
    (r"maximum context length is ([\d,]+) tokens.*?resulted in ([\d,]+) tokens", 2, 1),  # OpenAI
    (r"limit of ([\d,]+) tokens.*?resulted in ([\d,]+) tokens", 2, 1),  # OpenAI, newer wording
    (r"prompt is too long: ([\d,]+) tokens > ([\d,]+) maximum", 1, 2),  # Anthropic
    (r"input token count \(([\d,]+)\) exceeds the maximum[^(]*\(([\d,]+)\)", 1, 2),  # Gemini
)
_OVERFLOW_RE = [(re.compile(p, re.I | re.S), a, b) for p, a, b in _OVERFLOW]
_GEMINI_DELAY = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")
_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")
MAX_MESSAGE_CHARS = 1000


@runtime_checkable
class Provider(Protocol):
    """What ``Kit`` and recovery call: one model call, sync or async, and cleanup."""

    name: str

    def complete(
        self,
        spec: ModelSpec,
        prompt: str,
        *,
        max_tokens: int | None = None,
        system: str | None = None,
    ) -> Completion: ...

    async def acomplete(
        self,
        spec: ModelSpec,
        prompt: str,
        *,
        max_tokens: int | None = None,
        system: str | None = None,
    ) -> Completion: ...

    def close(self) -> None: ...

    async def aclose(self) -> None: ...


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with the exact ``secrets`` and any key-looking token replaced by ``[redacted]``.

    Secrets shorter than 4 characters are not treated as secrets (replacing them would shred
    the message without protecting anything).
    """
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return _KEY_LIKE.sub(REDACTED, text)


def parse_retry_after(
    headers: Mapping[str, str], body: Any = None, *, now: datetime | None = None
) -> float | None:
    """The provider's wait hint in seconds, or None when absent or malformed.

    Tried in order: ``retry-after-ms`` (milliseconds), ``retry-after`` (seconds or an HTTP
    date, measured from ``now``), Gemini's ``RetryInfo.retryDelay`` in the JSON error ``body``.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    ms = _non_negative(lower.get("retry-after-ms"))
    if ms is not None:
        return ms / 1000
    value = lower.get("retry-after")
    seconds = _non_negative(value)
    if seconds is not None:
        return seconds
    if value and not _looks_numeric(value):
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            when = None
        if when is not None:
            when = when if when.tzinfo else when.replace(tzinfo=UTC)
            return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
    return _gemini_retry_delay(body)


def _looks_numeric(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _non_negative(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _gemini_retry_delay(body: Any) -> float | None:
    error = body.get("error") if isinstance(body, dict) else None
    details = error.get("details") if isinstance(error, dict) else None
    for detail in details if isinstance(details, list) else ():
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith(".RetryInfo"):
            m = _GEMINI_DELAY.match(str(detail.get("retryDelay", "")))
            return float(m.group(1)) if m else None
    return None


def overflow_tokens(message: str) -> tuple[int | None, int | None]:
    """(prompt tokens, limit) read from a context-overflow message of any of the three vendors."""
    for pattern, prompt_group, limit_group in _OVERFLOW_RE:
        m = pattern.search(message)
        if m:
            prompt, limit = m.group(prompt_group, limit_group)
            return int(prompt.replace(",", "")), int(limit.replace(",", ""))
    return None, None


def clean_text(text: str, limit: int = 200) -> str:
    """A non-JSON body (an HTML error page) as one short line of text."""
    line = _SPACE.sub(" ", _TAG.sub(" ", text)).strip()
    return line if len(line) <= limit else line[: limit - 1] + "…"


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
    def build_request(
        self, spec: ModelSpec, prompt: str, max_tokens: int | None, system: str | None
    ) -> tuple[str, dict[str, str], dict[str, Any]]:
        """(url, headers, JSON body) of the call; raises ``MissingKeyError`` before any I/O."""
        raise NotImplementedError

    def parse_success(self, data: Any, headers: Mapping[str, str]) -> dict[str, Any]:
        """Completion fields (text, tokens_in, tokens_out, finish_reason, request_id)."""
        raise NotImplementedError

    def error_fields(self, data: dict[str, Any]) -> dict[str, Any]:
        """From a JSON error body: message, error_type, code (and request_id if it has one)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ calls
    def complete(
        self,
        spec: ModelSpec,
        prompt: str,
        *,
        max_tokens: int | None = None,
        system: str | None = None,
    ) -> Completion:
        """Call the model once; a ``Completion`` or a ``ProviderError`` (never retried here)."""
        url, headers, body = self.build_request(spec, prompt, max_tokens, system)
        client = self._client or self._sync_client()
        start = time.perf_counter()
        try:
            response = client.post(url, headers=headers, json=body)
        except httpx.RequestError as exc:
            raise self.transport_error(exc, url, spec.model_id, headers) from None
        latency_ms = (time.perf_counter() - start) * 1000
        return self._finish(response, latency_ms, spec.model_id, headers)

    async def acomplete(
        self,
        spec: ModelSpec,
        prompt: str,
        *,
        max_tokens: int | None = None,
        system: str | None = None,
    ) -> Completion:
        """``complete`` for async code, on an ``httpx.AsyncClient`` bound to the running loop."""
        url, headers, body = self.build_request(spec, prompt, max_tokens, system)
        client = self._async_client()
        start = time.perf_counter()
        try:
            response = await client.post(url, headers=headers, json=body)
        except httpx.RequestError as exc:
            raise self.transport_error(exc, url, spec.model_id, headers) from None
        latency_ms = (time.perf_counter() - start) * 1000
        return self._finish(response, latency_ms, spec.model_id, headers)

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
        return Completion(**fields, latency_ms=latency_ms, model=model)

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
        fields: dict[str, Any] = {}
        if isinstance(data, dict):
            try:
                fields = self.error_fields(data)
            except (LookupError, TypeError, AttributeError):
                fields = {}
        message = fields.pop("message", None)
        if not isinstance(message, str) or not message.strip():
            message = clean_text(body_text) if data is None else clean_text(body_text, 300)
        message = message or _reason(status)
        request_id = fields.pop("request_id", None) or headers.get(self.request_id_header)
        prompt_tokens, limit_tokens = overflow_tokens(message)
        return ProviderError(
            redact(message[:MAX_MESSAGE_CHARS], secrets),
            provider=self.name,
            model=model,
            status=status,
            error_type=fields.get("error_type"),
            code=fields.get("code"),
            retry_after_s=parse_retry_after(headers, data),
            request_id=request_id,
            prompt_tokens=prompt_tokens,
            limit_tokens=limit_tokens,
        )

    def transport_error(
        self, exc: httpx.RequestError, url: str, model: str | None, headers: Mapping[str, str]
    ) -> ProviderError:
        """A ``ProviderError`` (status None) for a failure below HTTP: timeout, refused, dropped."""
        if isinstance(exc, httpx.TimeoutException):
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
        return ProviderError(message, provider=self.name, model=model, transport=transport)

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
