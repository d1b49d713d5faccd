"""The OpenAI, Anthropic and Gemini adapters against a real loopback server speaking their wire."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import socket
from datetime import UTC, datetime, timedelta

import pytest
import vendor_server as vs
from vendor_specs import (
    API_MODELS,
    KEYS,
    PATHS,
    VENDORS,
    base_url,
    point_at,
    spec_for,
)

from ims_kit.errors import MissingKeyError, ProviderError
from ims_kit.providers import get_provider
from ims_kit.records import ModelSpec


def closed_port_url() -> str:
    """A loopback URL on which nothing listens (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def _shared_server():
    """One fake vendor server on 127.0.0.1 for the module (starting one per test costs 50 ms)."""
    with vs.running_server() as s:
        yield s


@pytest.fixture
def server(_shared_server):
    """The fake vendor server with no scripts, overrides or recorded requests left over."""
    _shared_server.reset()
    yield _shared_server
    _shared_server.reset()


@pytest.fixture
def vendor_env(server, monkeypatch):
    """Canary keys and base URLs pointing every vendor at the loopback server."""
    point_at(server, monkeypatch)
    return server


@pytest.fixture
def make(vendor_env):
    """Build providers by name; they are closed after the test."""
    made = []

    def make(name: str, **kw):
        provider = get_provider(name, **kw)
        made.append(provider)
        return provider

    yield make
    for provider in made:
        provider.close()


def call(vendor: str, make, **kw):
    """One call through `vendor`'s adapter; the ProviderError it raised, if any."""
    with pytest.raises(ProviderError) as info:
        make(vendor).complete(spec_for(vendor), "hello world", **kw)
    return info.value


def assert_no_key(*texts: str) -> None:
    for text in texts:
        for key in KEYS.values():
            assert key not in text
            assert key[:8] + "*" not in text  # OpenAI's masked echo: first 8, stars, last 4


# ------------------------------------------------------------------------------- success
@pytest.mark.parametrize("vendor", VENDORS)
def test_success(vendor, make, server):
    """A call returns the text, the provider's token counts, finish reason and request id."""
    server.usage = (123, 45)
    result = make(vendor).complete(spec_for(vendor), "hello world")
    req = server.requests[-1]
    assert result.text == "echo: hello world"
    assert (result.tokens_in, result.tokens_out) == (123, 45)
    assert result.finish_reason == {"openai": "stop", "anthropic": "end_turn"}.get(vendor, "STOP")
    assert result.request_id
    if vendor != "gemini":  # Gemini's id is the body's responseId, not a header
        assert result.request_id == req.request_id
    assert result.latency_ms > 0
    assert result.model == API_MODELS[vendor]  # the vendor's own name of what answered
    assert (req.method, req.path, req.model) == ("POST", PATHS[vendor], API_MODELS[vendor])


def test_openai_request(make, server):
    """OpenAI gets a bearer token, the messages and max_completion_tokens only when asked."""
    provider = make("openai")
    provider.complete(spec_for("openai"), "hello world")
    provider.complete(spec_for("openai"), "hello world", max_tokens=50, system="be brief")
    first, second = server.requests
    assert first.headers["authorization"] == f"Bearer {KEYS['openai']}"
    assert first.json == {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "hello world"}],
    }
    assert second.json["max_completion_tokens"] == 50
    assert second.json["messages"][0] == {"role": "system", "content": "be brief"}


def test_anthropic_request(make, server):
    """Anthropic gets x-api-key, anthropic-version and a max_tokens default of min(cap, 4096)."""
    provider = make("anthropic")
    provider.complete(spec_for("anthropic"), "hello world", system="be brief")
    provider.complete(spec_for("anthropic", max_output_tokens=1024), "hello world")
    provider.complete(spec_for("anthropic"), "hello world", max_tokens=10)
    first, second, third = server.requests
    assert first.headers["x-api-key"] == KEYS["anthropic"]
    assert first.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in first.headers
    assert first.json == {
        "model": "claude-sonnet-4-5-20250929",
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": "hello world"}],
        "system": "be brief",
    }
    assert second.json["max_tokens"] == 1024 and "system" not in second.json
    assert third.json["max_tokens"] == 10


def test_gemini_request_keeps_key_out_of_url(make, server):
    """Gemini's key travels in x-goog-api-key and never in the URL."""
    make("gemini").complete(spec_for("gemini"), "hello world", max_tokens=20, system="be brief")
    req = server.requests[-1]
    assert req.headers["x-goog-api-key"] == KEYS["gemini"]
    assert req.raw_path == PATHS["gemini"]
    assert KEYS["gemini"] not in req.raw_path and "key=" not in req.raw_path
    assert req.json == {
        "contents": [{"role": "user", "parts": [{"text": "hello world"}]}],
        "systemInstruction": {"parts": [{"text": "be brief"}]},
        "generationConfig": {"maxOutputTokens": 20},
    }


@pytest.mark.parametrize("vendor", VENDORS)
def test_missing_usage_gives_none(vendor, make, server):
    """Token counts are None when the provider reports no usage."""
    server.usage = None
    result = make(vendor).complete(spec_for(vendor), "hi")
    assert (result.tokens_in, result.tokens_out) == (None, None)


def test_gemini_blocked_prompt_and_thoughts(make, server):
    """A blocked Gemini prompt gives empty text with the block reason; thoughts count as output."""
    blocked = {"promptFeedback": {"blockReason": "SAFETY"}, "responseId": "r1"}
    parts = [{"text": "thinking...", "thought": True}, {"text": "answer"}]
    thought = {
        "candidates": [{"content": {"parts": parts, "role": "model"}, "finishReason": "STOP"}],
        "usageMetadata": {
            "promptTokenCount": 5,
            "candidatesTokenCount": 2,
            "thoughtsTokenCount": 9,
        },
        "responseId": "r2",
    }
    server.script(vs.Fault(200, blocked), vs.Fault(200, thought))
    provider = make("gemini")
    result = provider.complete(spec_for("gemini"), "hi")
    assert (result.text, result.finish_reason, result.request_id) == ("", "SAFETY", "r1")
    result = provider.complete(spec_for("gemini"), "hi")
    assert (result.text, result.tokens_in, result.tokens_out) == ("answer", 5, 11)


@pytest.mark.parametrize(
    ("vendor", "body"),
    [(v, "not json at all") for v in VENDORS]
    + [("openai", {"unexpected": True}), ("anthropic", {"unexpected": True})],
)
def test_malformed_success_body(vendor, body, make, server):
    """A 200 whose body is not the vendor's shape is a ProviderError of type invalid_response."""
    server.script(vs.Fault(200, body))
    err = call(vendor, make)
    assert (err.status, err.error_type) == (200, "invalid_response")


# ------------------------------------------------------------------------------- errors
def _rate_limit_date(seconds: float) -> str:
    when = datetime.now(UTC) + timedelta(seconds=seconds)
    return email.utils.format_datetime(when, usegmt=True)


ERRORS = [  # (vendor, fault factory, expected fields)
    ("openai", lambda: vs.openai_rate_limit(retry_after_ms=250),
     {"status": 429, "error_type": "tokens", "code": "rate_limit_exceeded", "retry_after_s": 0.25}),
    ("openai", lambda: vs.openai_rate_limit(retry_after="3"),
     {"status": 429, "retry_after_s": 3.0}),
    ("openai", lambda: vs.openai_rate_limit(retry_after_ms="soon", retry_after="2"),
     {"retry_after_s": 2.0}),
    ("openai", lambda: vs.openai_rate_limit(), {"status": 429, "retry_after_s": 2.0}),  # words
    ("openai", lambda: vs.openai_rate_limit(hint="644ms"), {"retry_after_s": 0.644}),
    ("openai", lambda: vs.openai_rate_limit(hint=None), {"status": 429, "retry_after_s": None}),
    ("openai", vs.openai_insufficient_quota,
     {"status": 429, "error_type": "insufficient_quota", "code": "insufficient_quota",
      "retry_after_s": None}),
    ("openai", lambda: vs.openai_invalid_param(),
     {"status": 400, "error_type": "invalid_request_error", "code": None}),
    ("openai", vs.openai_context_length,
     {"status": 400, "error_type": "invalid_request_error", "code": "context_length_exceeded",
      "prompt_tokens": 130532, "limit_tokens": 128000}),
    ("openai", vs.openai_invalid_api_key,
     {"status": 401, "error_type": "invalid_request_error", "code": "invalid_api_key"}),
    ("openai", vs.openai_model_not_found,
     {"status": 404, "error_type": "invalid_request_error", "code": "model_not_found"}),
    ("openai", vs.openai_server_error, {"status": 500, "error_type": "server_error"}),
    ("openai", vs.openai_unavailable, {"status": 503, "error_type": "server_error"}),
    ("anthropic", lambda: vs.anthropic_rate_limit("7"),
     {"status": 429, "error_type": "rate_limit_error", "retry_after_s": 7.0}),
    ("anthropic", lambda: vs.anthropic_rate_limit(None), {"status": 429, "retry_after_s": None}),
    ("anthropic", vs.anthropic_overloaded, {"status": 529, "error_type": "overloaded_error"}),
    ("anthropic", vs.anthropic_prompt_too_long,
     {"status": 400, "error_type": "invalid_request_error", "prompt_tokens": 210000,
      "limit_tokens": 200000}),
    ("anthropic", vs.anthropic_credit_too_low,
     {"status": 400, "error_type": "invalid_request_error", "prompt_tokens": None}),
    ("anthropic", vs.anthropic_auth_error, {"status": 401, "error_type": "authentication_error"}),
    ("anthropic", vs.anthropic_permission_error, {"status": 403, "error_type": "permission_error"}),
    ("anthropic", vs.anthropic_not_found, {"status": 404, "error_type": "not_found_error"}),
    ("anthropic", vs.anthropic_api_error, {"status": 500, "error_type": "api_error"}),
    ("gemini", lambda: vs.gemini_quota(),
     {"status": 429, "error_type": "RESOURCE_EXHAUSTED", "retry_after_s": 17.0,
      "code": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}),
    ("gemini", lambda: vs.gemini_quota(per_day=True, retry_delay="1.5s"),
     {"status": 429, "retry_after_s": 1.5,
      "code": "GenerateRequestsPerDayPerProjectPerModel-FreeTier"}),
    ("gemini", lambda: vs.gemini_quota(retry_delay=None), {"status": 429, "retry_after_s": None}),
    ("gemini", lambda: vs.gemini_quota(retry_delay="soon"), {"retry_after_s": None}),
    ("gemini", vs.gemini_invalid_key,
     {"status": 400, "error_type": "INVALID_ARGUMENT", "code": "API_KEY_INVALID"}),
    ("gemini", vs.gemini_overloaded, {"status": 503, "error_type": "UNAVAILABLE"}),
    ("gemini", lambda: vs.gemini_quota(violations=("PerMinute", "PerMinute", "PerDay")),
     {"code": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier,"
              "GenerateRequestsPerMinutePerProjectPerModel-FreeTier,"
              "GenerateRequestsPerDayPerProjectPerModel-FreeTier"}),
    ("anthropic", lambda: vs.anthropic_context_limit(199759, 8192),
     {"status": 400, "prompt_tokens": 199759, "limit_tokens": 200000, "output_tokens": 8192}),
    ("gemini", vs.gemini_too_many_tokens,
     {"status": 400, "error_type": "INVALID_ARGUMENT", "code": None, "prompt_tokens": 1200000,
      "limit_tokens": 1048576}),
    ("gemini", vs.gemini_permission_denied, {"status": 403, "error_type": "PERMISSION_DENIED"}),
    ("gemini", vs.gemini_not_found, {"status": 404, "error_type": "NOT_FOUND"}),
    ("gemini", vs.gemini_internal, {"status": 500, "error_type": "INTERNAL"}),
    ("gemini", vs.gemini_deadline, {"status": 504, "error_type": "DEADLINE_EXCEEDED"}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("vendor", "fault", "expected"),
    [pytest.param(v, f, e, id=f"{v}-{i}") for i, (v, f, e) in enumerate(ERRORS)],
)
def test_error_shapes(vendor, fault, expected, make, server):
    """Every vendor error shape becomes a ProviderError with status, type, code and hints."""
    server.script(fault())
    err = call(vendor, make)
    assert {name: getattr(err, name) for name in expected} == expected
    assert err.provider == vendor and err.model == spec_for(vendor).model_id
    assert err.transport is None and err.message
    assert err.request_id == (None if vendor == "gemini" else server.requests[-1].request_id)
    assert_no_key(str(err), repr(err), err.message)


@pytest.mark.parametrize(
    ("vendor", "fault"),
    [
        ("openai", lambda v: vs.openai_rate_limit(retry_after_ms=v, hint=None)),
        ("openai", lambda v: vs.openai_rate_limit(retry_after=v, hint=None)),
        ("anthropic", lambda v: vs.anthropic_rate_limit(v)),
    ],
)
@pytest.mark.parametrize("value", ["soon", "-5", "nan", "inf", "", "Mon, 99 Foo"])
def test_malformed_retry_after_is_none(vendor, fault, value, make, server):
    """A malformed Retry-After header gives retry_after_s None rather than a bogus wait."""
    server.script(fault(value))
    assert call(vendor, make).retry_after_s is None


@pytest.mark.parametrize(
    ("vendor", "fault"),
    [
        ("openai", lambda v: vs.openai_rate_limit(retry_after=v)),
        ("anthropic", lambda v: vs.anthropic_rate_limit(v)),
    ],
)
def test_retry_after_http_date(vendor, fault, make, server):
    """A Retry-After HTTP date becomes the seconds from now until then."""
    server.script(fault(_rate_limit_date(30)))
    assert 27 <= call(vendor, make).retry_after_s <= 30


@pytest.mark.parametrize("vendor", VENDORS)
def test_html_502(vendor, make, server):
    """A proxy's HTML 502 gives a ProviderError with the status and a short clean message."""
    server.script(vs.html_502())
    err = call(vendor, make)
    assert (err.status, err.error_type, err.code, err.request_id) == (502, None, None, None)
    assert err.message == "502 Bad Gateway"


# ---------------------------------------------------------------------------- transport
@pytest.mark.parametrize("vendor", VENDORS)
def test_hang_is_a_timeout(vendor, make, server):
    """A server that never answers gives transport 'timeout' after the client's read timeout."""
    server.script(vs.hang())
    with pytest.raises(ProviderError) as info:
        make(vendor, timeout_s=0.3).complete(spec_for(vendor), "hi")
    assert (info.value.status, info.value.transport) == (None, "timeout")


@pytest.mark.parametrize("vendor", VENDORS)
@pytest.mark.parametrize(
    ("fault", "transports"),
    [(vs.disconnect, {"protocol"}), (vs.connection_reset, {"read", "protocol"})],
)
def test_dropped_connection(vendor, fault, transports, make, server):
    """A connection closed or reset without a response is a transport error with no status."""
    server.script(fault())
    err = call(vendor, make)
    assert err.status is None and err.transport in transports
    assert_no_key(str(err))


@pytest.mark.parametrize("vendor", VENDORS)
def test_connection_refused(vendor, make, monkeypatch):
    """Nothing listening on the base URL is transport 'connect', naming the URL."""
    dead = closed_port_url()
    for var in ("OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "GEMINI_BASE_URL"):
        monkeypatch.setenv(var, base_url(var.lower().split("_")[0], dead))
    err = call(vendor, make)
    assert (err.status, err.transport) == (None, "connect")
    assert dead in err.message
    assert_no_key(str(err), repr(err))


# ---------------------------------------------------------------------------- keys, URLs
@pytest.mark.parametrize(
    ("vendor", "unset", "variable"),
    [
        ("openai", ["OPENAI_API_KEY"], "OPENAI_API_KEY"),
        ("anthropic", ["ANTHROPIC_API_KEY"], "ANTHROPIC_API_KEY"),
        ("gemini", ["GEMINI_API_KEY"], "GEMINI_API_KEY"),
    ],
)
@pytest.mark.parametrize("how", ["unset", "blank"])
def test_missing_key(vendor, unset, variable, how, make, server, monkeypatch):
    """A missing or blank key raises MissingKeyError naming the variable; nothing is sent."""
    for var in unset:
        if how == "unset":
            monkeypatch.delenv(var)
        else:
            monkeypatch.setenv(var, "  ")
    provider = make(vendor)
    with pytest.raises(MissingKeyError) as info:
        provider.complete(spec_for(vendor), "hi")
    assert (info.value.provider, info.value.variable) == (vendor, variable)
    with pytest.raises(MissingKeyError):
        asyncio.run(provider.acomplete(spec_for(vendor), "hi"))
    assert server.requests == []


def test_gemini_falls_back_to_google_api_key(make, server, monkeypatch):
    """Without GEMINI_API_KEY, Gemini uses GOOGLE_API_KEY."""
    monkeypatch.delenv("GEMINI_API_KEY")
    monkeypatch.setenv("GOOGLE_API_KEY", "AIzaGoogleFallback000000000000000000")
    make("gemini").complete(spec_for("gemini"), "hi")
    assert server.requests[-1].headers["x-goog-api-key"] == "AIzaGoogleFallback000000000000000000"


@pytest.mark.parametrize("vendor", VENDORS)
def test_row_base_url_beats_environment(vendor, make, server, monkeypatch):
    """A model row's base_url wins over the environment's base URL."""
    for var in ("OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "GEMINI_BASE_URL"):
        monkeypatch.setenv(var, closed_port_url())
    spec = spec_for(vendor, base_url=base_url(vendor, server.url) + "/")
    assert make(vendor).complete(spec, "hi").text == "echo: hi"
    assert server.requests[-1].path == PATHS[vendor]


def test_google_gemini_base_url(make, server, monkeypatch):
    """GOOGLE_GEMINI_BASE_URL is read when GEMINI_BASE_URL is unset, as google-genai does."""
    monkeypatch.delenv("GEMINI_BASE_URL")
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", server.url)
    assert make("gemini").complete(spec_for("gemini"), "hi").text == "echo: hi"


def test_openai_compatible_key_is_optional(make, server, monkeypatch):
    """openai_compatible rows call their own base URL, with a bearer key only when one is set."""
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.setenv("OPENAI_BASE_URL", closed_port_url())
    spec = ModelSpec(
        model_id="llama-3.1-8b",
        vendor="Meta",
        provider="openai_compatible",
        api_model="llama3.1:8b",
        base_url=server.url + "/v1",
        context_window=131072,
    )
    provider = make("openai_compatible")
    result = provider.complete(spec, "hi", max_tokens=5)
    assert result.model == "llama3.1:8b" and result.text == "echo: hi"
    req = server.requests[-1]
    assert "authorization" not in req.headers
    assert req.json["model"] == "llama3.1:8b" and req.json["max_tokens"] == 5
    monkeypatch.setenv("OPENAI_COMPATIBLE_API_KEY", "local-secret-token")
    provider.complete(spec, "hi")
    assert server.requests[-1].headers["authorization"] == "Bearer local-secret-token"


def test_openai_compatible_error_forms(make, server, monkeypatch):
    """Local servers' error bodies ({"error": "..."} and {"detail": "..."}) give their message."""
    monkeypatch.setenv("OPENAI_COMPATIBLE_BASE_URL", server.url + "/v1")
    spec = ModelSpec(model_id="m", vendor="Meta", provider="openai_compatible", context_window=99)
    server.script(
        vs.Fault(404, {"error": "model 'm' not found"}), vs.Fault(400, {"detail": "bad input"})
    )
    provider = make("openai_compatible")
    for status, message in ((404, "model 'm' not found"), (400, "bad input")):
        with pytest.raises(ProviderError) as info:
            provider.complete(spec, "hi")
        assert (info.value.status, info.value.message) == (status, message)
        assert info.value.provider == "openai_compatible"


# ------------------------------------------------------------------------------ secrets
def _echo_key(req: vs.RecordedRequest) -> dict:
    """A hostile error body that echoes the whole key, whatever header carried it."""
    h = req.headers
    key = h.get("x-api-key") or h.get("x-goog-api-key") or h.get("authorization", "")[7:]
    return {"error": {"message": f"key {key} rejected", "type": "authentication_error"}}


@pytest.mark.parametrize("vendor", VENDORS)
def test_keys_never_leak(vendor, make, server, caplog):
    """Keys appear in no error, repr or log line (httpx at DEBUG), even when a vendor echoes one."""
    caplog.set_level(logging.DEBUG)
    provider = make(vendor)
    provider.complete(spec_for(vendor), "hi")
    server.script(vs.openai_invalid_api_key(), vs.Fault(401, _echo_key))
    errors = [call(vendor, lambda _: provider) for _ in range(2)]
    assert all(e.status == 401 and "[redacted]" in e.message for e in errors[1:])
    for err in errors:
        assert_no_key(str(err), repr(err), err.message, repr(err.args))
    assert_no_key(repr(provider), caplog.text, *(r.getMessage() for r in caplog.records))
    assert server.url + PATHS[vendor].split("/models")[0] in caplog.text  # httpx did log


def test_openai_masked_echo_is_redacted(make, server):
    """OpenAI's 401 echo of the key (first 8, stars, last 4) is removed from the message."""
    server.script(vs.openai_invalid_api_key())
    err = call("openai", make)
    assert err.message.startswith("Incorrect API key provided: [redacted].")
    assert "*" not in str(err) and "cdef" not in str(err)


# -------------------------------------------------------------------------------- async
@pytest.mark.parametrize(
    ("vendor", "fault", "status"),
    [
        ("openai", lambda: vs.openai_rate_limit(retry_after_ms=500), 429),
        ("anthropic", vs.anthropic_overloaded, 529),
        ("gemini", lambda: vs.gemini_quota(retry_delay="2s"), 429),
    ],
)
def test_async_success_and_error(vendor, fault, status, make, server):
    """acomplete returns the same Completion and raises the same ProviderError as complete."""
    provider = make(vendor)

    async def twice():
        first = await provider.acomplete(spec_for(vendor), "hello async")
        server.script(fault())
        with pytest.raises(ProviderError) as info:
            await provider.acomplete(spec_for(vendor), "hello async")
        await provider.aclose()
        return first, info.value

    result, err = asyncio.run(twice())
    assert result.text == "echo: hello async" and result.latency_ms > 0
    assert result.tokens_in and result.tokens_out
    assert err.status == status and err.retry_after_s == {"openai": 0.5, "gemini": 2.0}.get(vendor)


@pytest.mark.parametrize("vendor", VENDORS)
def test_async_across_event_loops(vendor, make, server):
    """One provider serves successive asyncio.run loops (each gets its own pooled client)."""
    provider = make(vendor)
    for _ in range(2):
        result = asyncio.run(provider.acomplete(spec_for(vendor), "hi"))
        assert result.text == "echo: hi"


@pytest.mark.parametrize("vendor", VENDORS)
def test_async_transport_errors(vendor, make, server):
    """acomplete maps a hang to transport 'timeout' too."""
    server.script(vs.hang())
    provider = make(vendor, timeout_s=0.3)
    with pytest.raises(ProviderError) as info:
        asyncio.run(provider.acomplete(spec_for(vendor), "hi"))
    assert (info.value.status, info.value.transport) == (None, "timeout")


def test_client_is_reused(make, server):
    """Sequential calls share one pooled connection (keep-alive), and close() resets the pool."""
    provider = make("openai")
    for _ in range(3):
        provider.complete(spec_for("openai"), "hi")
    client = provider._client
    provider.complete(spec_for("openai"), "hi")
    assert provider._client is client
    provider.close()
    assert provider._client is None
    assert provider.complete(spec_for("openai"), "hi").text == "echo: hi"
