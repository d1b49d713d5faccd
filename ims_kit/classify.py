"""How recovery reads a failure: one table maps every provider, transport or SDK error to an
``ErrorKind`` and a ``retryable`` flag. First match wins; the README prints the table.

Quota exhaustion looks like a rate limit (OpenAI's ``insufficient_quota`` is a 429, Gemini's
per-day quota too) but waiting never helps, hence the flag beside the kind.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass

from ims_kit.errors import ErrorKind, ProviderError

K = ErrorKind


@dataclass(frozen=True)
class Classification:
    """What a failure means for recovery."""

    kind: ErrorKind
    retryable: bool
    rule: str

    @property
    def account_wide(self) -> bool:
        """True when every model of the same vendor would fail the same way: a bad key, or an
        account out of credit. (Gemini's per-day quotas are per model, so they are not.)"""
        return self.kind is K.AUTHENTICATION or self.rule == "account quota exhausted"


def _text(e: ProviderError) -> str:
    return f"{e.error_type or ''} {e.code or ''} {e.message}".lower()


_DAILY_QUOTA = re.compile(r"per ?day|daily limit|daily quota|terminalquotaerror")
_ACCOUNT_QUOTA = re.compile(
    r"insufficient_quota|exceeded your current quota|credit balance is too low"
)
_OVERFLOW = re.compile(
    r"context_length_exceeded|maximum context length|prompt is too long|"
    r"input token count.*exceeds|too many tokens|context window"
)
_AUTH = re.compile(
    r"invalid_api_key|authentication_error|permission_error|api_key_invalid|"
    r"permission_denied|unauthenticated|invalid x-api-key|api key not valid"
)


def _account_quota(e: ProviderError) -> bool:
    # Gemini says "exceeded your current quota" for per-minute limits too; its quota id
    # (in ``code``) tells a per-minute limit, which passes, from a per-day one, which does not.
    text = _text(e)
    return "perminute" not in text and bool(_ACCOUNT_QUOTA.search(text))


@dataclass(frozen=True)
class Rule:
    """One row of the classification table: first match wins."""

    name: str
    kind: ErrorKind
    retryable: bool
    matches: Callable[[ProviderError], bool]
    when: str


RULES: tuple[Rule, ...] = (
    Rule(
        "daily quota exhausted",
        K.RATE_LIMIT,
        False,
        lambda e: e.status in (429, 400, 403, None) and bool(_DAILY_QUOTA.search(_text(e))),
        "Gemini per-day quota (`...PerDay...`), the gemini CLI's `TerminalQuotaError`",
    ),
    Rule(
        "account quota exhausted",
        K.RATE_LIMIT,
        False,
        lambda e: e.status in (429, 400, 403, None) and _account_quota(e),
        "OpenAI `insufficient_quota`, Anthropic credit balance too low (skips the vendor)",
    ),
    Rule(
        "context overflow",
        K.CONTEXT_OVERFLOW,
        False,
        lambda e: e.status in (400, 413, 422, None) and bool(_OVERFLOW.search(_text(e))),
        "`context_length_exceeded`, `prompt is too long`, `input token count ... exceeds`, 413",
    ),
    Rule(
        "authentication",
        K.AUTHENTICATION,
        False,
        lambda e: e.status in (401, 403) or bool(_AUTH.search(_text(e))),
        "401, 403, `invalid_api_key`, `authentication_error`, `API_KEY_INVALID`",
    ),
    Rule(
        "rate limit",
        K.RATE_LIMIT,
        True,
        lambda e: e.status == 429 or "rate_limit" in _text(e) or "resource_exhausted" in _text(e),
        "429, `rate_limit_error`, `RESOURCE_EXHAUSTED` (honours Retry-After up to the cap)",
    ),
    Rule(
        "timeout",
        K.TIMEOUT,
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
        lambda e: e.status is not None and (e.status == 529 or e.status >= 500),
        "529 `overloaded_error`, 503 `UNAVAILABLE`, any other 5xx (HTML gateway pages too)",
    ),
    Rule(
        "connection failure",
        K.OVERLOAD,
        True,
        lambda e: e.transport in ("connect", "read", "protocol"),
        "connection refused, reset or dropped: transient, the server may be restarting",
    ),
    Rule(
        "invalid request",
        K.INVALID_REQUEST,
        False,
        lambda e: e.status is not None and 400 <= e.status < 500,
        "any other 4xx: 400 bad parameter, 404 unknown model, 422",
    ),
)


def classify(error: BaseException) -> Classification:
    """Map a ProviderError, an httpx/OS transport error or an SDK error to kind + retryable."""
    e = error if isinstance(error, ProviderError) else _as_provider_error(error)
    for rule in RULES:
        if rule.matches(e):
            return Classification(rule.kind, rule.retryable, rule.name)
    return Classification(K.UNKNOWN, False, "unknown")


def _as_provider_error(error: BaseException) -> ProviderError:
    """Read what we can from foreign exceptions (httpx, asyncio, vendor SDKs)."""
    name = type(error).__name__.lower()
    transport = None
    if isinstance(error, TimeoutError | asyncio.TimeoutError) or "timeout" in name:
        transport = "timeout"
    elif isinstance(error, ConnectionRefusedError) or "connect" in name:
        transport = "connect"
    elif isinstance(error, ConnectionError) or name in ("readerror", "remoteprotocolerror"):
        transport = "read"
    status = getattr(error, "status_code", None) or getattr(error, "status", None)
    if not isinstance(status, int):
        code = getattr(error, "code", None)
        status = code if isinstance(code, int) else None
    body = getattr(error, "body", None)
    err = body.get("error", body) if isinstance(body, dict) else {}
    err = err if isinstance(err, dict) else {}
    return ProviderError(
        str(error)[:300],
        provider="external",
        status=status,
        error_type=err.get("type") or err.get("status"),
        code=err.get("code"),
        transport=transport,
    )


def rules_table() -> str:
    """The classification table as Markdown, for the README and ``ims`` help."""
    lines = ["| order | kind | retryable | matches |", "|---|---|---|---|"]
    for i, r in enumerate(RULES, start=1):
        lines.append(f"| {i} | {r.kind.value} | {'yes' if r.retryable else 'no'} | {r.when} |")
    lines.append(f"| - | {K.UNKNOWN.value} | no | anything else |")
    return "\n".join(lines)
