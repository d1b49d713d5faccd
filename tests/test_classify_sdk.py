"""The official SDKs' exceptions, built from their real classes (openai, anthropic, google-genai
and the httpx/httpx2 errors under them), classified like ims_kit's own calls and recovered
through ``kit.recovery.execute_with_recovery``."""

from __future__ import annotations

import asyncio

import anthropic
import httpx
import httpx2
import openai
import pytest
from google.genai import errors as genai_errors

from ims_kit.classify import as_provider_error, classify
from ims_kit.records import ModelSpec

OPENAI_URL = "https://api.openai.com/v1/chat/completions"
ANTHROPIC_URL = "https://api.anthropic.com/v1/messages"
GEMINI_URL = "https://generativelanguage.googleapis.com/v1beta/models/x:generateContent"
RPC = "type.googleapis.com/google.rpc."


def _response(status: int, url: str, headers: dict | None = None, body=None) -> httpx2.Response:
    request = httpx2.Request("POST", url)
    if body is None:
        return httpx2.Response(status, request=request, headers=headers or {})
    return httpx2.Response(status, request=request, headers=headers or {}, json=body)


def openai_429(message: str, headers: dict | None = None) -> openai.RateLimitError:
    body = {"message": message, "type": "tokens", "param": None, "code": "rate_limit_exceeded"}
    return openai.RateLimitError(
        f"Error code: 429 - {message}", response=_response(429, OPENAI_URL, headers), body=body
    )


def gemini_error(code: int, status: str, message: str, details: list | None = None):
    body = {"error": {"code": code, "message": message, "status": status}}
    if details:
        body["error"]["details"] = details
    cls = genai_errors.ClientError if code < 500 else genai_errors.ServerError
    return cls(code, body, _response(code, GEMINI_URL, body=body))


def quota(*ids: str, delay: str | None = None) -> list:
    details = [{"@type": RPC + "QuotaFailure", "violations": [{"quotaId": q} for q in ids]}]
    if delay:
        details.append({"@type": RPC + "RetryInfo", "retryDelay": delay})
    return details


API_KEY_INVALID = {"@type": RPC + "ErrorInfo", "reason": "API_KEY_INVALID"}
ANTHROPIC_OVERLOAD = {
    "type": "error",
    "error": {"type": "overloaded_error", "message": "Overloaded"},
    "request_id": "req_011X",
}


@pytest.mark.parametrize(
    ("error", "kind", "retryable", "scope"),
    [
        (
            openai_429("Rate limit reached ... Please try again in 644ms."),
            "RATE_LIMIT",
            True,
            "model",
        ),
        (
            openai.RateLimitError(
                "Error code: 429",
                response=_response(429, OPENAI_URL),
                body={"message": "You exceeded your current quota", "code": "insufficient_quota"},
            ),
            "RATE_LIMIT",
            False,
            "vendor",
        ),
        (
            openai.BadRequestError(
                "Error code: 400",
                response=_response(400, OPENAI_URL),
                body={
                    "message": "This model's maximum context length is 128000 tokens. However,"
                    " your messages resulted in 130532 tokens.",
                    "type": "invalid_request_error",
                    "code": "context_length_exceeded",
                },
            ),
            "CONTEXT_OVERFLOW",
            False,
            "model",
        ),
        (
            openai.InternalServerError(
                "Error code: 503", response=_response(503, OPENAI_URL), body=None
            ),
            "OVERLOAD",
            True,
            "model",
        ),
        (
            openai.APITimeoutError(request=httpx2.Request("POST", OPENAI_URL)),
            "TIMEOUT",
            True,
            "model",
        ),
        (
            anthropic.OverloadedError(
                "Error code: 529", response=_response(529, ANTHROPIC_URL), body=ANTHROPIC_OVERLOAD
            ),
            "OVERLOAD",
            True,
            "model",
        ),
        (
            anthropic.APIStatusError(  # an `event: error` mid-stream keeps the stream's 200
                "overloaded", response=_response(200, ANTHROPIC_URL), body=ANTHROPIC_OVERLOAD
            ),
            "OVERLOAD",
            True,
            "model",
        ),
        (
            anthropic.BadRequestError(
                "Error code: 400",
                response=_response(400, ANTHROPIC_URL),
                body={
                    "type": "error",
                    "error": {
                        "type": "invalid_request_error",
                        "message": "input length and `max_tokens` exceed context limit: 199759 +"
                        " 8192 > 200000, decrease input length or `max_tokens` and try again",
                    },
                },
            ),
            "CONTEXT_OVERFLOW",
            False,
            "model",
        ),
        (
            gemini_error(
                429,
                "RESOURCE_EXHAUSTED",
                "You exceeded your current quota, please check your plan and billing details.",
                quota("PerMinute-Tokens", "GenerateRequestsPerMinute", "GenerateRequestsPerDay"),
            ),
            "RATE_LIMIT",
            False,
            "model",
        ),
        (
            gemini_error(
                429,
                "RESOURCE_EXHAUSTED",
                "You exceeded your current quota, " + "please check your plan. " * 30,
                quota("GenerateRequestsPerMinutePerProjectPerModel", delay="7s"),
            ),
            "RATE_LIMIT",
            True,
            "model",
        ),
        (gemini_error(503, "UNAVAILABLE", "The model is overloaded."), "OVERLOAD", True, "model"),
        (
            gemini_error(
                400,
                "INVALID_ARGUMENT",
                "API key not valid. Please pass a valid API key.",
                [{"@type": RPC + "ErrorInfo", "reason": "API_KEY_INVALID"}],
            ),
            "AUTHENTICATION",
            False,
            "vendor",
        ),
        (
            gemini_error(404, "NOT_FOUND", "models/foo is not found"),
            "INVALID_REQUEST",
            False,
            "model",
        ),
        (httpx2.ConnectError("refused"), "OVERLOAD", True, "endpoint"),
        (httpx.ConnectError("refused"), "OVERLOAD", True, "endpoint"),
        (httpx2.ReadTimeout("slow"), "TIMEOUT", True, "model"),
        (httpx.RemoteProtocolError("dropped"), "OVERLOAD", True, "model"),
    ],
)
def test_sdk_exceptions_are_classified_like_the_adapters_errors(error, kind, retryable, scope):
    """Status, body, every quota violation and the transport under an SDK's exception decide
    its kind, whether waiting helps, and how far the failure reaches."""
    found = classify(error)
    assert (found.kind.value, found.retryable, found.scope) == (kind, retryable, scope)


def test_a_connection_error_is_read_from_its_cause():
    """openai's APIConnectionError wraps the httpx2 error that says the connection was never
    made (the endpoint's failure); a timeout wrapper is a timeout."""
    request = httpx2.Request("POST", OPENAI_URL)
    try:
        try:
            raise httpx2.ConnectError("[Errno 111] Connection refused")
        except httpx2.ConnectError as cause:
            raise openai.APIConnectionError(request=request) from cause
    except openai.APIConnectionError as wrapped:
        assert as_provider_error(wrapped).transport == "connect"
        assert classify(wrapped).scope == "endpoint"
    assert classify(anthropic.APITimeoutError(request=request)).kind.value == "TIMEOUT"


def test_headers_and_request_ids_of_an_sdk_exception_are_read():
    """Retry-After (retry-after-ms first), the vendor's request id, and a wait in words."""
    err = as_provider_error(
        openai_429("slow down", {"retry-after-ms": "250", "x-request-id": "r1"})
    )
    assert (err.status, err.retry_after_s, err.request_id) == (429, 0.25, "r1")
    worded = as_provider_error(openai_429("Rate limit. Please try again in 3.89s. Visit ..."))
    assert worded.retry_after_s == pytest.approx(3.89)
    claude = anthropic.RateLimitError(
        "Error code: 429",
        response=_response(429, ANTHROPIC_URL, {"retry-after": "11", "request-id": "req_9"}),
        body={"type": "error", "error": {"type": "rate_limit_error", "message": "x"}},
    )
    assert (as_provider_error(claude).retry_after_s, as_provider_error(claude).request_id) == (
        11.0,
        "req_9",
    )
    gem = gemini_error(429, "RESOURCE_EXHAUSTED", "quota", quota("PerMinute", delay="37s"))
    assert as_provider_error(gem).retry_after_s == 37.0


def test_secrets_in_an_sdk_message_are_redacted():
    """A key echoed by a vendor's message never reaches what ims_kit keeps."""
    err = openai.AuthenticationError(
        "Error code: 401",
        response=_response(401, OPENAI_URL),
        body={
            "message": "Incorrect API key provided: sk-abc12*****wxyz.",
            "code": "invalid_api_key",
        },
    )
    assert "sk-abc12" not in as_provider_error(err).message


# -- through execute_with_recovery -----------------------------------------------------------
@pytest.fixture
def pair(kit):
    """Two registered models for the user's own function to call."""
    for model_id, vendor in (("first", "Google"), ("second", "OpenAI")):
        kit.registry.register(
            ModelSpec(model_id=model_id, vendor=vendor, provider="openai", context_window=10_000)
        )
    return kit


def run_protected(kit, fn, fallbacks=("second",)):
    return asyncio.run(
        kit.recovery.execute_with_recovery(
            execution_fn=fn, model_id="first", prompt="hi", fallbacks=list(fallbacks)
        )
    )


@pytest.mark.parametrize(
    ("raised", "calls_to_first"),
    [
        (lambda: gemini_error(503, "UNAVAILABLE", "The model is overloaded."), 3),
        (lambda: gemini_error(400, "INVALID_ARGUMENT", "bad", [API_KEY_INVALID]), 1),
        (lambda: openai.APIConnectionError(request=httpx2.Request("POST", OPENAI_URL)), 3),
        (lambda: anthropic.APITimeoutError(request=httpx2.Request("POST", ANTHROPIC_URL)), 3),
        (lambda: httpx2.ReadTimeout("slow"), 3),
    ],
)
def test_sdk_failures_are_retried_and_fall_back_with_a_usage_row_each(pair, raised, calls_to_first):
    """google-genai's ClientError/ServerError and the SDKs' connection and timeout errors are
    call failures: retried as their kind says, then the fallback answers; every try is a row."""
    calls = []

    async def call(model_id, prompt):
        calls.append(model_id)
        if model_id == "first":
            raise raised()
        return {"text": "ok"}

    assert run_protected(pair, call) == {"text": "ok"}
    assert calls == ["first"] * calls_to_first + ["second"]
    rows = pair.usage.records()
    assert len(rows) == calls_to_first + 1 and rows[-1].success
    assert all(r.request_id == rows[0].request_id for r in rows)


def test_gemini_thinking_tokens_count_as_output(pair):
    """A google-genai response's thoughts_token_count is billed as output, as Google bills it."""

    class Usage:
        prompt_token_count, candidates_token_count, thoughts_token_count = 12, 5, 40

    class Response:
        usage_metadata = Usage()

    async def call(model_id, prompt):
        return Response()

    run_protected(pair, call)
    row = pair.usage.records()[-1]
    assert (row.tokens_in, row.tokens_out, row.token_source) == (12, 45, "provider")
