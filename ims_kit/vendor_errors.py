"""What vendors say when a call fails, read the same way from an HTTP response or from an
SDK's exception: the error body's message, type and codes (every quota violation, not only
the first), the wait it asks for (headers, Gemini's RetryInfo, "try again in 644ms"), the token
counts of a context overflow, and key-looking text redacted.

Shapes read: OpenAI ``{"error": {"message", "type", "code"}}`` (and the SDK's inner dict),
Anthropic ``{"type": "error", "error": {"type", "message"}, "request_id"}``, Gemini
``{"error": {"code", "message", "status", "details": [...]}}`` (also as a one-element list),
Ollama ``{"error": "..."}`` and FastAPI ``{"detail": "..."}``.
"""

from __future__ import annotations

import email.utils
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

REDACTED = "[redacted]"
_KEY_LIKE = re.compile(
    r"(?<![A-Za-z0-9])(?:sk-[A-Za-z0-9_\-*]{6,}|AIza[0-9A-Za-z_\-]{16,})"  # vendor keys
    r"|[A-Za-z0-9_\-]+\*{4,}[A-Za-z0-9_\-]*"  # a masked echo such as sk-abc12*****wxyz
    r"|(?i:bearer)\s+[A-Za-z0-9._~+/=\-]{8,}"
)
_RPC = "type.googleapis.com/google.rpc."
_GEMINI_DELAY = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")
# "Please try again in 644ms", "in 3.89s", "in 7m12s" (OpenAI); "Please retry in 36.4s" (Gemini)
_HINT = re.compile(r"\b(?:try again|retry) in ((?:\d+(?:\.\d+)?(?:ms|us|µs|ns|h|m|s))+)\b", re.I)
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_N = r"([\d,]+)"
_OVERFLOW = (  # (pattern, group of the prompt's tokens, of the limit, of the answer asked for)
    (rf"input length and `max_tokens` exceed context limit: {_N} \+ {_N} > {_N}", 1, 3, 2),
    (
        rf"is too large: {_N}\. This model's maximum context length is {_N} tokens and your"
        rf" request has {_N} input tokens",
        3,
        2,
        1,
    ),  # OpenAI: max_tokens alone too large
    (
        rf"maximum context length is {_N} tokens\. However, you requested {_N} tokens \({_N} in"
        rf" the messages, {_N} in the completion\)",
        3,
        1,
        4,
    ),
    (rf"maximum context length is {_N} tokens.*?resulted in {_N} tokens", 2, 1, None),
    (rf"limit of {_N} tokens.*?resulted in {_N} tokens", 2, 1, None),  # OpenAI, newer wording
    (rf"prompt is too long: {_N} tokens > {_N} maximum", 1, 2, None),  # Anthropic
    (rf"input token count \({_N}\) exceeds the maximum[^(]*\({_N}\)", 1, 2, None),  # Gemini
)
_OVERFLOW_RE = [(re.compile(p, re.I | re.S), a, b, c) for p, a, b, c in _OVERFLOW]
_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with the exact ``secrets`` and any key-looking token replaced by ``[redacted]``.

    Secrets shorter than 4 characters are not treated as secrets (replacing them would shred
    the message without protecting anything).
    """
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return _KEY_LIKE.sub(REDACTED, text)


def clean_text(text: str, limit: int = 200) -> str:
    """A non-JSON body (an HTML error page) as one short line of text."""
    line = _SPACE.sub(" ", _TAG.sub(" ", text)).strip()
    return line if len(line) <= limit else line[: limit - 1] + "…"


def error_fields(data: Any) -> dict[str, Any]:
    """message, error_type, code and request_id from an error body of any vendor.

    ``code`` joins every machine-readable code the body carries (OpenAI's ``code``, Gemini's
    ErrorInfo reason and the id of every quota it says was exceeded), so that a per-day quota
    listed after two per-minute ones is still seen.
    """
    if isinstance(data, list) and len(data) == 1:  # Gemini's streaming endpoint wraps it
        data = data[0]
    if not isinstance(data, Mapping):
        return {}
    error = data.get("error", data)
    if isinstance(error, str):  # Ollama: {"error": "model 'x' not found"}
        return {"message": error}
    if not isinstance(error, Mapping):
        return {}
    message = error.get("message")
    if message is None:  # FastAPI-style servers
        detail = data.get("detail") or data.get("message")
        message = detail if isinstance(detail, str) else None
    codes = [str(error["code"])] if isinstance(error.get("code"), str) else []
    codes += _detail_codes(error.get("details"))
    error_type = error.get("type") or error.get("status")
    request_id = data.get("request_id")
    return {
        "message": message if isinstance(message, str) else None,
        "error_type": None if error_type is None else str(error_type),
        "code": ",".join(codes) or None,
        "request_id": request_id if isinstance(request_id, str) else None,
    }


def _detail_codes(details: Any) -> list[str]:
    """Gemini's google.rpc details: ErrorInfo's reason and every QuotaFailure violation's id."""
    codes = []
    for detail in details if isinstance(details, list) else ():
        if not isinstance(detail, Mapping):
            continue
        kind = str(detail.get("@type", "")).removeprefix(_RPC)
        if kind == "ErrorInfo" and detail.get("reason"):
            codes.append(str(detail["reason"]))
        elif kind == "QuotaFailure":
            violations = detail.get("violations")
            for v in violations if isinstance(violations, list) else ():
                if isinstance(v, Mapping) and v.get("quotaId"):
                    codes.append(str(v["quotaId"]))
    return codes


def parse_retry_after(
    headers: Mapping[str, str],
    body: Any = None,
    *,
    message: str | None = None,
    now: datetime | None = None,
) -> float | None:
    """The provider's wait hint in seconds, or None when absent or malformed.

    Tried in order: ``retry-after-ms`` (milliseconds), ``retry-after`` (seconds or an HTTP
    date, measured from ``now``), Gemini's ``RetryInfo.retryDelay`` in the JSON error ``body``,
    then a hint in the ``message`` ("Please try again in 644ms", "in 1m2.5s").
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
    delay = _gemini_retry_delay(body)
    if delay is not None:
        return delay
    return message_wait(message or "")


def message_wait(message: str) -> float | None:
    """The wait a message asks for in words ("try again in 644ms"), in seconds, or None."""
    m = _HINT.search(message)
    if m is None:
        return None
    return sum(float(n) * _UNIT_S[unit] for n, unit in _DURATION_PART.findall(m.group(1)))


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
    if isinstance(body, list) and len(body) == 1:
        body = body[0]
    error = body.get("error") if isinstance(body, Mapping) else None
    details = error.get("details") if isinstance(error, Mapping) else None
    for detail in details if isinstance(details, list) else ():
        if isinstance(detail, Mapping) and str(detail.get("@type", "")).endswith(".RetryInfo"):
            m = _GEMINI_DELAY.match(str(detail.get("retryDelay", "")))
            return float(m.group(1)) if m else None
    return None


@dataclass(frozen=True)
class Overflow:
    """What a context-overflow message says: the prompt's tokens, the window, and the answer
    length that was asked for when the vendor counted it in (None when not said)."""

    prompt_tokens: int | None = None
    limit_tokens: int | None = None
    output_tokens: int | None = None


def overflow(message: str) -> Overflow:
    """The token counts of a context-overflow message of any of the three vendors."""
    for pattern, prompt_group, limit_group, output_group in _OVERFLOW_RE:
        m = pattern.search(message)
        if m:
            counts = [
                None if g is None else int(m.group(g).replace(",", ""))
                for g in (prompt_group, limit_group, output_group)
            ]
            return Overflow(*counts)
    return Overflow()


def overflow_tokens(message: str) -> tuple[int | None, int | None]:
    """(prompt tokens, limit) read from a context-overflow message, or (None, None)."""
    found = overflow(message)
    return found.prompt_tokens, found.limit_tokens
