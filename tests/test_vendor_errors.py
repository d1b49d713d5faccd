"""What vendors say when a call fails: Retry-After and wait hints in words, every code of an
error body, the counts of a context overflow, redaction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ims_kit.vendor_errors import (
    clean_text,
    error_fields,
    message_wait,
    overflow,
    overflow_tokens,
    parse_retry_after,
    redact,
)

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
RETRY_INFO = {"@type": "type.googleapis.com/google.rpc.RetryInfo"}
RPC = "type.googleapis.com/google.rpc."


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        ({"retry-after-ms": "250"}, None, 0.25),
        ({"Retry-After-Ms": "1500.5"}, None, 1.5005),
        ({"retry-after": "7"}, None, 7.0),
        ({"retry-after": "0.5"}, None, 0.5),
        ({"retry-after": "0"}, None, 0.0),
        ({"retry-after-ms": "soon", "retry-after": "3"}, None, 3.0),
        ({"retry-after-ms": "100", "retry-after": "3"}, None, 0.1),
        ({"retry-after": "Sun, 01 Jun 2025 12:00:30 GMT"}, None, 30.0),
        ({"retry-after": "Sun, 01 Jun 2025 11:59:00 GMT"}, None, 0.0),  # in the past: now
        ({"retry-after": "soon"}, None, None),
        ({"retry-after": "-5"}, None, None),
        ({"retry-after": "nan"}, None, None),
        ({"retry-after": "inf"}, None, None),
        ({"retry-after": ""}, None, None),
        ({"retry-after-ms": "-5"}, None, None),
        ({"retry-after-ms": "NaN"}, None, None),
        ({}, None, None),
        ({}, {"error": {"details": [RETRY_INFO]}}, None),
        ({}, {"error": {"details": [{**RETRY_INFO, "retryDelay": "17s"}]}}, 17.0),
        ({}, {"error": {"details": [{**RETRY_INFO, "retryDelay": "1.5s"}]}}, 1.5),
        ({}, {"error": {"details": [{**RETRY_INFO, "retryDelay": "soon"}]}}, None),
        ({}, {"error": {"details": [{**RETRY_INFO, "retryDelay": "-2s"}]}}, None),
        ({}, {"error": {"details": "garbage"}}, None),
        ({}, ["not", "a", "dict"], None),
        ({"retry-after": "2"}, {"error": {"details": [{**RETRY_INFO, "retryDelay": "17s"}]}}, 2.0),
    ],
)
def test_parse_retry_after(headers, body, expected):
    """Retry-After comes from retry-after-ms, retry-after (seconds or date), then RetryInfo."""
    assert parse_retry_after(headers, body, now=NOW) == pytest.approx(expected)


def test_parse_retry_after_date_defaults_to_now():
    """An HTTP date is measured from the real current time when no `now` is given."""
    when = datetime.now(UTC) + timedelta(seconds=60)
    value = when.strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert 57 <= parse_retry_after({"retry-after": value}) <= 60


@pytest.mark.parametrize(
    ("text", "secrets", "expected"),
    [
        ("key sk-canary-1234567890abcdef here", (), "key [redacted] here"),
        ("provided: sk-abc12******wxyz. You", (), "provided: [redacted]. You"),
        ("anthropic sk-ant-api03-AbC_dEf-123456 x", (), "anthropic [redacted] x"),
        ("google AIzaSyA1234567890abcdefghijKLMNOP.", (), "google [redacted]."),
        ("masked mytoken1*****3456 end", (), "masked [redacted] end"),
        ("Authorization: Bearer abcdefgh12345678", (), "Authorization: [redacted]"),
        ("local key local-secret-99 leaked", ("local-secret-99",), "local key [redacted] leaked"),
        ("short key abc stays", ("abc",), "short key abc stays"),
        ("no secrets in task-force or risk-free", (), "no secrets in task-force or risk-free"),
        ("", ("sk-x",), ""),
    ],
)
def test_redact(text, secrets, expected):
    """redact removes exact secrets and key-looking tokens, and leaves ordinary words alone."""
    assert redact(text, secrets) == expected


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            "This model's maximum context length is 128000 tokens. However, your messages "
            "resulted in 130532 tokens. Please reduce the length of the messages.",
            (130532, 128000),
        ),
        (
            "Input tokens exceed the configured limit of 272,000 tokens. Your messages resulted "
            "in 300,123 tokens. Please reduce the length of the messages.",
            (300123, 272000),
        ),
        ("prompt is too long: 210000 tokens > 200000 maximum", (210000, 200000)),
        (
            "The input token count (1200000) exceeds the maximum number of tokens allowed "
            "(1048576).",
            (1200000, 1048576),
        ),
        ("Overloaded", (None, None)),
    ],
)
def test_overflow_tokens(message, expected):
    """Prompt size and limit are read from each vendor's context-overflow message."""
    assert overflow_tokens(message) == expected


def test_clean_text_shortens_html():
    """An HTML page becomes one short line without tags."""
    assert clean_text("<html><body><h1>502 Bad Gateway</h1></body></html>") == "502 Bad Gateway"
    assert len(clean_text("<p>" + "x " * 500 + "</p>")) == 200


@pytest.mark.parametrize(
    ("message", "seconds"),
    [
        ("Rate limit reached ... Please try again in 644ms. Visit ...", 0.644),
        ("... on requests per day (RPD): ... Please try again in 8.64s. Visit", 8.64),
        ("Please try again in 7m12s.", 432.0),
        ("Please try again in 1h2m3s.", 3723.0),
        ("* Quota exceeded for metric ...\nPlease retry in 36.429760048s.", 36.429760048),
        ("Overloaded", None),
        ("try again later", None),
    ],
)
def test_a_wait_said_in_words_is_read(message, seconds):
    """OpenAI's "Please try again in 644ms / 7m12s" and Gemini's "Please retry in 36.4s"."""
    assert message_wait(message) == (None if seconds is None else pytest.approx(seconds))


def test_the_words_count_only_when_no_header_or_retry_info_says(monkeypatch):
    """Headers first, then RetryInfo, then the message."""
    body = {"error": {"details": [{**RETRY_INFO, "retryDelay": "5s"}]}}
    words = "Please try again in 2s."
    assert parse_retry_after({"retry-after": "1"}, body, message=words) == 1.0
    assert parse_retry_after({}, body, message=words) == 5.0
    assert parse_retry_after({}, None, message=words) == 2.0


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        (
            {"error": {"message": "m", "type": "tokens", "code": "rate_limit_exceeded"}},
            {"message": "m", "error_type": "tokens", "code": "rate_limit_exceeded"},
        ),
        (  # the openai SDK's body: the inner error object
            {"message": "m", "type": "insufficient_quota", "code": "insufficient_quota"},
            {"message": "m", "error_type": "insufficient_quota", "code": "insufficient_quota"},
        ),
        (
            {
                "type": "error",
                "error": {"type": "overloaded_error", "message": "O"},
                "request_id": "r",
            },
            {"message": "O", "error_type": "overloaded_error", "code": None, "request_id": "r"},
        ),
        (
            {
                "error": {
                    "code": 429,
                    "message": "q",
                    "status": "RESOURCE_EXHAUSTED",
                    "details": [
                        {"@type": RPC + "ErrorInfo", "reason": "RATE_LIMIT_EXCEEDED"},
                        {
                            "@type": RPC + "QuotaFailure",
                            "violations": [{"quotaId": "A-PerMinute"}, {"quotaId": "B-PerDay"}],
                        },
                    ],
                }
            },
            {
                "error_type": "RESOURCE_EXHAUSTED",
                "code": "RATE_LIMIT_EXCEEDED,A-PerMinute,B-PerDay",
            },
        ),
        (
            [{"error": {"code": 503, "message": "busy", "status": "UNAVAILABLE"}}],
            {"message": "busy"},
        ),
        ({"error": "model 'x' not found"}, {"message": "model 'x' not found"}),
        ({"detail": "bad input"}, {"message": "bad input"}),
        ("not a body", {}),
    ],
)
def test_error_fields_read_every_vendors_shape(body, fields):
    """One reader for OpenAI, Anthropic, Gemini (every violation), Ollama and FastAPI bodies."""
    found = error_fields(body)
    assert {k: found.get(k) for k in fields} == fields


def test_an_overflow_that_counts_the_answer_says_how_much_was_asked():
    """Anthropic's input + max_tokens and OpenAI's max_tokens-too-large give all three counts."""
    found = overflow(
        "input length and `max_tokens` exceed context limit: 199759 + 8192 > 200000, decrease"
    )
    assert (found.prompt_tokens, found.limit_tokens, found.output_tokens) == (199759, 200000, 8192)
    found = overflow(
        "'max_tokens' or 'max_completion_tokens' is too large: 2000. This model's maximum context"
        " length is 4096 tokens and your request has 2104 input tokens (2000 > 4096 - 2104)."
    )
    assert (found.prompt_tokens, found.limit_tokens, found.output_tokens) == (2104, 4096, 2000)
