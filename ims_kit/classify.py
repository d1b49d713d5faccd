"""How recovery reads a failure: one table maps every provider, transport or SDK error to an
``ErrorKind``, whether waiting helps (``retryable``), and how far the failure reaches
(``scope``): this model, every model of the endpoint, every model of the vendor, or the
request itself. First match wins; the README prints the table.

Every call goes through here, whatever raised it: ims_kit's adapters, the gemini CLI, or your
own code calling an official SDK through ``execute_with_recovery`` (openai, anthropic,
google-genai, and the httpx/httpx2 errors under them). The whole message and every code of the
body are read: a per-day quota listed after two per-minute ones is still a per-day quota.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ims_kit.errors import ErrorKind, ProviderError
from ims_kit.vendor_errors import error_fields, overflow, parse_retry_after, redact

K = ErrorKind
MODEL, ENDPOINT, VENDOR, REQUEST = "model", "endpoint", "vendor", "request"


@dataclass(frozen=True)
class Classification:
    """What a failure means for recovery.

    ``scope``: what else the same failure rules out in this request: ``model`` (try the next
    candidate), ``endpoint`` (skip every model behind the same base URL), ``vendor`` (skip the
    vendor's models: a bad key, an account out of credit) or ``request`` (fail: the request
    itself is wrong). ``counted``: whether it counts against the model's (or the endpoint's)
    circuit breaker; a wrong request says nothing about the model's health.
    """

    kind: ErrorKind
    retryable: bool
    rule: str
    scope: str = MODEL
    counted: bool = True

    @property
    def account_wide(self) -> bool:
        """True when every model of the same vendor would fail the same way."""
        return self.scope == VENDOR


def _text(e: ProviderError) -> str:
    return f"{e.error_type or ''} {e.code or ''} {e.message}".lower()


_DAILY_QUOTA = re.compile(r"per ?day|daily limit|daily quota|terminalquotaerror")
_ACCOUNT_QUOTA = re.compile(
    r"insufficient_quota|exceeded your current quota|credit balance is too low|"
    r"spend_limit_reached|billing_error"
)
_OVERFLOW = re.compile(
    r"context_length_exceeded|maximum context length|prompt is too long|"
    r"input token count.*exceeds|too many tokens|context window|exceed context limit|"
    r"input tokens exceed the configured limit"
)
_TOO_LARGE_FOR_RATE = re.compile(r"request too large for .* on tokens per min")
_AUTH = re.compile(
    r"invalid_api_key|authentication_error|permission_error|api_key_invalid|"
    r"permission_denied|unauthenticated|invalid x-api-key|api key not valid|api key not found|"
    r"unauthorizederror|forbiddenerror"
)
_MODEL_MISSING = re.compile(
    r"model_not_found|not_found_error|modelnotfounderror|\bnot_found\b|does not exist|"
    r"is not found for api version|unknown model"
)
_UNSUPPORTED = re.compile(r"unsupported_parameter|unsupported_value")


def _account_quota(e: ProviderError) -> bool:
    # Gemini says "exceeded your current quota" for per-minute limits too; its quota ids (in
    # ``code``; the gemini CLI's RetryableQuotaError) tell a per-minute limit, which passes,
    # from a per-day one, which does not.
    text = _text(e)
    per_minute = "perminute" in text or "retryablequotaerror" in text
    return not per_minute and bool(_ACCOUNT_QUOTA.search(text))


@dataclass(frozen=True)
class Rule:
    """One row of the classification table: first match wins."""

    name: str
    kind: ErrorKind
    retryable: bool
    scope: str
    counted: bool
    matches: Callable[[ProviderError], bool]
    when: str


def _status(*codes: int | None) -> Callable[[ProviderError], bool]:
    return lambda e: e.status in codes


RULES: tuple[Rule, ...] = (
    Rule(
        "invalid output",
        K.INVALID_OUTPUT,
        True,
        MODEL,
        False,
        lambda e: e.error_type == "invalid_output",
        "the answer is not JSON, or not valid against the json_schema: asked once more, then"
        " the next candidate (the answer was billed)",
    ),
    Rule(
        "configuration",
        K.CONFIGURATION,
        False,
        REQUEST,
        False,
        lambda e: e.error_type == "configuration",
        "the local set-up refused the call (the gemini CLI's untrusted folder, its settings)",
    ),
    Rule(
        "daily quota exhausted",
        K.RATE_LIMIT,
        False,
        MODEL,
        True,
        lambda e: e.status in (429, 400, 403, None) and bool(_DAILY_QUOTA.search(_text(e))),
        "a per-day quota among the violations (`...PerDay...`), the gemini CLI's"
        " `TerminalQuotaError`",
    ),
    Rule(
        "account quota exhausted",
        K.RATE_LIMIT,
        False,
        VENDOR,
        True,
        lambda e: e.status in (429, 400, 402, 403, None) and _account_quota(e),
        "OpenAI `insufficient_quota`, Anthropic credit balance too low or a spend limit",
    ),
    Rule(
        "context overflow",
        K.CONTEXT_OVERFLOW,
        False,
        MODEL,
        False,
        lambda e: e.status in (400, 413, 422, None) and bool(_OVERFLOW.search(_text(e))),
        "`context_length_exceeded`, `prompt is too long`, `input length and max_tokens exceed"
        " context limit`, `input token count ... exceeds`, 413",
    ),
    Rule(
        "request larger than the rate limit",
        K.RATE_LIMIT,
        False,
        MODEL,
        False,
        lambda e: e.status == 429 and bool(_TOO_LARGE_FOR_RATE.search(_text(e))),
        "OpenAI 429 `Request too large ... on tokens per min`: waiting never helps",
    ),
    Rule(
        "authentication",
        K.AUTHENTICATION,
        False,
        VENDOR,
        True,
        lambda e: e.status in (401, 403) or bool(_AUTH.search(_text(e))),
        "401, 403, `invalid_api_key`, `authentication_error`, `API_KEY_INVALID`",
    ),
    Rule(
        "rate limit",
        K.RATE_LIMIT,
        True,
        MODEL,
        True,
        lambda e: e.status == 429 or "rate_limit" in _text(e) or "resource_exhausted" in _text(e),
        "429, `rate_limit_error`, `RESOURCE_EXHAUSTED` (waits out Retry-After or a 'try again"
        " in' hint up to the cap)",
    ),
    Rule(
        "timeout",
        K.TIMEOUT,
        True,
        MODEL,
        True,
        lambda e: (
            e.transport == "timeout" or e.status in (408, 504) or "deadline_exceeded" in _text(e)
        ),
        "client timeout, 408, 504, `DEADLINE_EXCEEDED`",
    ),
    Rule(
        "overload",
        K.OVERLOAD,
        True,
        MODEL,
        True,
        lambda e: (
            (e.status is not None and (e.status == 529 or e.status >= 500))
            or e.error_type in ("server_error", "overloaded_error", "api_error", "UNAVAILABLE")
        ),
        "529 `overloaded_error`, 503 `UNAVAILABLE`, any other 5xx (HTML gateway pages too),"
        " a `server_error` body whatever its status",
    ),
    Rule(
        "endpoint unreachable",
        K.OVERLOAD,
        True,
        ENDPOINT,
        True,
        lambda e: e.transport == "connect",
        "connection refused, DNS or TLS failure: the endpoint's other models are skipped",
    ),
    Rule(
        "connection dropped",
        K.OVERLOAD,
        True,
        MODEL,
        True,
        lambda e: e.transport in ("read", "protocol"),
        "connection reset or dropped mid-exchange: transient, the server may be restarting",
    ),
    Rule(
        "model not found",
        K.INVALID_REQUEST,
        False,
        MODEL,
        True,
        lambda e: e.status == 404 or (e.status is None and bool(_MODEL_MISSING.search(_text(e)))),
        "404 `model_not_found`, `NOT_FOUND`: this model is unknown there, another may answer",
    ),
    Rule(
        "unsupported option",
        K.INVALID_REQUEST,
        False,
        MODEL,
        False,
        lambda e: e.status == 400 and bool(_UNSUPPORTED.search(_text(e))),
        "400 `unsupported_parameter` / `unsupported_value`: this model refuses an option",
    ),
    Rule(
        "invalid request",
        K.INVALID_REQUEST,
        False,
        REQUEST,
        False,
        lambda e: e.status is not None and 400 <= e.status < 500,
        "any other 4xx: 400 bad parameter, 422: not retried, not sent elsewhere",
    ),
)
_UNKNOWN = Classification(K.UNKNOWN, False, "unknown")


def classify(error: BaseException) -> Classification:
    """Map a ProviderError, a transport error or an SDK's exception to its classification."""
    e = error if isinstance(error, ProviderError) else as_provider_error(error)
    for rule in RULES:
        if rule.matches(e):
            return Classification(rule.kind, rule.retryable, rule.name, rule.scope, rule.counted)
    return _UNKNOWN


def as_provider_error(error: BaseException, provider: str = "external") -> ProviderError:
    """Everything a foreign exception says, as a ProviderError (redacted).

    Read: an HTTP status (``status_code``, or an integer ``code``), the error body (``body``,
    google-genai's ``details``), the response headers (Retry-After, request id), and the
    transport failure of connection and timeout errors (``APIConnectionError`` and
    ``APITimeoutError``, httpx/httpx2's ``ConnectError`` and ``ReadTimeout``, OS errors) by
    class name and ``__cause__``, since no SDK error subclasses ``OSError``.
    """
    status = getattr(error, "status_code", None)
    if not _is_status(status):
        code = getattr(error, "code", None)
        status = code if _is_status(code) else None
    body = getattr(error, "body", None)
    if body is None and isinstance(getattr(error, "details", None), Mapping | list):
        body = error.details  # google-genai: the whole response JSON
    fields = error_fields(body) if body is not None else {}
    if not fields.get("error_type"):
        sdk_type = getattr(error, "status", None) or getattr(error, "type", None)
        fields["error_type"] = sdk_type if isinstance(sdk_type, str) else None
    if status == 200:  # Anthropic's mid-stream error event keeps the stream's 200
        status = None
    headers = _headers(error)
    message = fields.get("message") or getattr(error, "message", None) or str(error)
    message = redact(str(message))
    found = overflow(message)
    request_id = (
        getattr(error, "request_id", None)
        or fields.get("request_id")
        or headers.get("x-request-id")
        or headers.get("request-id")
    )
    return ProviderError(
        message,
        provider=provider,
        status=status,
        error_type=fields.get("error_type"),
        code=fields.get("code") or _string(getattr(error, "code", None)),
        retry_after_s=parse_retry_after(headers, body, message=message),
        request_id=request_id if isinstance(request_id, str) else None,
        transport=None if status is not None else transport_of(error),
        prompt_tokens=found.prompt_tokens,
        limit_tokens=found.limit_tokens,
        output_tokens=found.output_tokens,
    )


def transport_of(error: BaseException) -> str | None:
    """timeout, connect, read or protocol for a failure below HTTP, else None.

    The exception and its causes are read: an SDK's ``APIConnectionError`` wraps the
    httpx/httpx2 error that says whether the connection was never made (refused, DNS, TLS:
    the endpoint's failure) or dropped mid-exchange.
    """
    first, seen = type(error).__name__.lower(), 0
    while error is not None and seen < 5:
        name = type(error).__name__.lower()
        if isinstance(error, TimeoutError | asyncio.TimeoutError) or "timeout" in name:
            return "connect" if name == "connecttimeout" else "timeout"
        if isinstance(error, ConnectionRefusedError | ssl.SSLError) or name in (
            "connecterror",
            "gaierror",
            "sslerror",
        ):
            return "connect"
        if isinstance(error, ConnectionError) or name in (
            "readerror",
            "writeerror",
            "networkerror",
        ):
            return "read"
        if name in ("remoteprotocolerror", "localprotocolerror", "protocolerror"):
            return "protocol"
        error, seen = error.__cause__ or error.__context__, seen + 1
    return "connect" if first.endswith("connectionerror") else None  # an SDK's, cause unknown


def _is_status(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 100 <= value < 600


def _string(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _headers(error: BaseException) -> Mapping[str, str]:
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None)
    try:
        return {str(k).lower(): str(v) for k, v in headers.items()} if headers else {}
    except (AttributeError, TypeError):
        return {}


def rules_table() -> str:
    """The classification table as Markdown, for the README and ``ims`` help."""
    then = {MODEL: "next model", ENDPOINT: "next endpoint", VENDOR: "next vendor", REQUEST: "fail"}
    lines = [
        "| order | kind | retryable | then | counts against the breaker | matches |",
        "|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(RULES, start=1):
        lines.append(
            f"| {i} | {r.kind.value} | {'yes' if r.retryable else 'no'} | {then[r.scope]} |"
            f" {'yes' if r.counted else 'no'} | {r.when} |"
        )
    lines.append(f"| - | {K.UNKNOWN.value} | no | next model | yes | anything else |")
    return "\n".join(lines)
