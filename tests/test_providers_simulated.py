"""The simulated provider: offline, deterministic for a seed, faults on request."""

from __future__ import annotations

import asyncio
import statistics
import time

import pytest

from ims_kit.errors import ErrorKind, InvalidInputError, ProviderError
from ims_kit.providers.simulated import SimulatedProvider, latency_median_ms
from ims_kit.records import ModelSpec


def spec(model_id: str = "gpt-4o-mini", **kw) -> ModelSpec:
    """A simulated model row."""
    fields = {"vendor": "OpenAI", "provider": "simulated", "context_window": 128_000, **kw}
    return ModelSpec(model_id=model_id, **fields)


class FakeClock:
    """A clock that only moves when told."""

    def __init__(self) -> None:
        self.now = 0.0

    def advance(self, seconds: float) -> None:
        self.now += seconds


CALLS = [("gpt-4o-mini", "Summarise the plot of Hamlet."), ("gemini-2.5-pro", "hi there")] * 3


def run(provider: SimulatedProvider, calls=CALLS) -> list:
    return [provider.complete(spec(m), p) for m, p in calls]


def test_deterministic_for_a_seed():
    """The same seed gives the same completions; another seed gives other latencies."""
    first, again = run(SimulatedProvider(seed=3)), run(SimulatedProvider(seed=3))
    other = run(SimulatedProvider(seed=4))
    assert first == again
    assert [c.latency_ms for c in first] != [c.latency_ms for c in other]


def test_models_draw_independently():
    """Calls to one model do not change another model's sequence (async order cannot matter)."""
    alone = run(SimulatedProvider(), CALLS[::2])
    mixed = [c for c in run(SimulatedProvider(), CALLS) if c.model == "gpt-4o-mini"]
    assert [c.text for c in alone] == [c.text for c in mixed]
    assert [c.latency_ms for c in alone] == [c.latency_ms for c in mixed]


@pytest.mark.parametrize(
    ("prompt", "text"),
    [
        ("What is 2+2?", "4"),
        ("  what is 6 * 7 ", "42"),
        ("What's 10-3?", "7"),
        ("What is the capital of France?", "Paris."),
        ("hello", "Hello! How can I help you today?"),
    ],
)
def test_canned_answers(prompt, text):
    """A few well-known prompts get their plausible answer."""
    result = SimulatedProvider().complete(spec(), prompt)
    assert result.text == text and result.tokens_out >= 1


def test_generic_completion_fields():
    """Any other prompt gets prose naming the model, tokens from the prompt and sim-<n> ids."""
    provider = SimulatedProvider()
    prompt = "Explain circuit breakers in distributed systems." * 4
    first = provider.complete(spec(), prompt)
    second = provider.complete(spec("claude-haiku-4-5"), prompt, system="be brief")
    assert first.text.startswith("Simulated answer from gpt-4o-mini.")
    from ims_kit import tokens

    assert first.tokens_in == tokens.count(prompt).tokens  # the selector's own count
    assert second.tokens_in == first.tokens_in + tokens.count("be brief").tokens
    assert first.finish_reason == "stop" and first.model == "gpt-4o-mini"
    assert (first.request_id, second.request_id) == ("sim-1", "sim-2")
    assert 1 <= first.tokens_out <= 4096
    assert provider.calls == 2


def test_output_capped_by_max_tokens():
    """An output longer than max_tokens is cut to it with finish_reason 'length'."""
    results = [SimulatedProvider(seed=s).complete(spec(), "write", max_tokens=5) for s in range(5)]
    assert all(r.tokens_out == 5 and r.finish_reason == "length" for r in results)


@pytest.mark.parametrize(
    ("model_id", "api_model", "median_ms"),
    [
        ("gpt-4o-mini", "", 400),
        ("gpt-5-nano", "", 400),
        ("o4-mini", "", 400),
        ("gemini-2.5-flash-lite", "", 400),
        ("claude-haiku-4-5", "claude-haiku-4-5-20251001", 400),
        ("llama-3.1-8b", "llama3.1:8b", 400),
        ("gemini-2.5-pro", "", 2500),
        ("claude-opus-4-1", "claude-opus-4-1-20250805", 2500),
        ("o1-preview", "", 2500),
        ("o3", "", 2500),
        ("gpt-5", "", 2500),
        ("llama-3.1-405b", "llama3.1:405b", 2500),
        ("gpt-4o", "", 1000),
        ("claude-sonnet-4-5", "claude-sonnet-4-5-20250929", 1000),
        ("llama-3.1-70b", "llama3.1:70b", 1000),
    ],
)
def test_latency_median_by_model_size(model_id, api_model, median_ms):
    """Small models are fast, large ones slow, the rest in between."""
    assert latency_median_ms(spec(model_id, api_model=api_model)) == median_ms


@pytest.mark.parametrize("model_id", ["gpt-4o-mini", "gpt-4o", "gemini-2.5-pro"])
def test_latency_distribution(model_id):
    """Drawn latencies scatter around the model's median with a realistic spread."""
    provider = SimulatedProvider(seed=1)
    latencies = [provider.complete(spec(model_id), "x").latency_ms for _ in range(400)]
    median = latency_median_ms(spec(model_id))
    assert 0.9 * median < statistics.median(latencies) < 1.1 * median
    assert max(latencies) > 1.5 * median and min(latencies) < median / 1.5


FAULTS = [  # (kind as given, expected fields)
    (ErrorKind.RATE_LIMIT,
     {"status": 429, "error_type": "rate_limit_error", "code": "rate_limit_exceeded",
      "retry_after_s": 2.5, "transport": None}),
    ("rate_limit", {"status": 429, "retry_after_s": 2.5}),
    ("OVERLOAD", {"status": 529, "error_type": "overloaded_error", "retry_after_s": 2.5}),
    (ErrorKind.TIMEOUT, {"status": None, "transport": "timeout", "retry_after_s": None}),
    (ErrorKind.CONTEXT_OVERFLOW,
     {"status": 400, "error_type": "invalid_request_error", "code": "context_length_exceeded",
      "prompt_tokens": 128_001, "limit_tokens": 128_000}),
    (ErrorKind.AUTHENTICATION,
     {"status": 401, "error_type": "authentication_error", "code": "invalid_api_key"}),
    (ErrorKind.INVALID_REQUEST, {"status": 400, "error_type": "invalid_request_error"}),
    (ErrorKind.UNKNOWN, {"status": 302, "error_type": "unexpected"}),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "expected"), FAULTS)
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_injected_faults(kind, expected, mode):
    """Each fault kind raises a ProviderError shaped like the real vendors' answer."""
    provider = SimulatedProvider()
    provider.inject("gpt-4o-mini", kind, retry_after_s=2.5)
    with pytest.raises(ProviderError) as info:
        if mode == "sync":
            provider.complete(spec(), "hi")
        else:
            asyncio.run(provider.acomplete(spec(), "hi"))
    err = info.value
    assert {name: getattr(err, name) for name in expected} == expected
    assert (err.provider, err.model) == ("simulated", "gpt-4o-mini")
    assert provider.complete(spec(), "hi").text  # one fault only, then success


def test_context_overflow_message_carries_counts():
    """The injected overflow reads like OpenAI's, so message parsers see the same numbers."""
    provider = SimulatedProvider()
    provider.inject("gpt-4o-mini", "context_overflow")
    with pytest.raises(ProviderError, match="maximum context length is 128000 tokens"):
        provider.complete(spec(), "hi")


def test_inject_count_and_other_models():
    """count=N fails the next N calls to that model only."""
    provider = SimulatedProvider()
    provider.inject("gpt-4o-mini", ErrorKind.OVERLOAD, count=2)
    assert provider.complete(spec("gpt-4o"), "hi").text
    for _ in range(2):
        with pytest.raises(ProviderError):
            provider.complete(spec(), "hi")
    assert provider.complete(spec(), "hi").text


def test_fail_always_until_removed():
    """fail_always fails every call until removed with kind None or clear()."""
    provider = SimulatedProvider()
    provider.fail_always("gpt-4o-mini", "timeout")
    for _ in range(3):
        with pytest.raises(ProviderError):
            provider.complete(spec(), "hi")
    provider.fail_always("gpt-4o-mini", None)
    assert provider.complete(spec(), "hi").text
    provider.fail_always("*", ErrorKind.AUTHENTICATION)
    provider.inject("gpt-4o", ErrorKind.RATE_LIMIT)
    with pytest.raises(ProviderError) as info:
        provider.complete(spec("gpt-4o"), "hi")
    assert info.value.status == 401  # a permanent fault wins over a queued one
    provider.clear()
    assert provider.complete(spec("gpt-4o"), "hi").text


def test_wildcard_injection():
    """A fault injected for '*' hits the next call to any model."""
    provider = SimulatedProvider()
    provider.inject("*", "rate_limit", count=2)
    for model in ("gpt-4o", "gemini-2.5-pro"):
        with pytest.raises(ProviderError):
            provider.complete(spec(model), "hi")
    assert provider.complete(spec("gpt-4o"), "hi").text


def test_natural_context_overflow():
    """A prompt larger than the model's context window overflows without any injection."""
    provider = SimulatedProvider()
    with pytest.raises(ProviderError) as info:
        provider.complete(spec(context_window=100), "x" * 1000)
    err = info.value
    assert (err.status, err.code) == (400, "context_length_exceeded")
    from ims_kit import tokens

    assert (err.prompt_tokens, err.limit_tokens) == (tokens.count("x" * 1000).tokens, 100)
    fits = "word " * 90
    assert provider.complete(spec(context_window=100), fits).tokens_in == tokens.count(fits).tokens


@pytest.mark.parametrize(("kind", "count"), [("bogus", 1), ("rate_limit", 0)])
def test_bad_injection_is_refused(kind, count):
    """An unknown kind or a count below 1 is an InvalidInputError."""
    with pytest.raises(InvalidInputError):
        SimulatedProvider().inject("m", kind, count=count)


def test_needs_no_key(monkeypatch):
    """The simulated provider works with no API key in the environment."""
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    assert SimulatedProvider().complete(spec("claude-opus-4-1"), "What is 2+2?").text == "4"


def test_not_realtime_by_default(monkeypatch):
    """Without realtime the latency is only reported; no time passes."""
    monkeypatch.setattr(time, "sleep", lambda s: pytest.fail("slept"))
    result = SimulatedProvider().complete(spec("gemini-2.5-pro"), "hi")
    assert result.latency_ms > 100


def test_realtime_sleeps_the_drawn_latency(monkeypatch):
    """realtime=True sleeps the drawn latency, with asyncio.sleep in acomplete."""
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    provider = SimulatedProvider(realtime=True)
    first = provider.complete(spec(), "hi")
    second = asyncio.run(provider.acomplete(spec(), "hi"))
    assert slept == pytest.approx([first.latency_ms / 1000, second.latency_ms / 1000])


def test_clock_advances_by_simulated_time():
    """A fake clock advances by each call's latency, and by timeout_s for a timeout."""
    clock = FakeClock()
    provider = SimulatedProvider(clock=clock, timeout_s=30.0)
    result = provider.complete(spec(), "hi")
    assert clock.now == pytest.approx(result.latency_ms / 1000)
    provider.inject("gpt-4o-mini", "timeout")
    with pytest.raises(ProviderError):
        provider.complete(spec(), "hi")
    assert clock.now == pytest.approx(result.latency_ms / 1000 + 30.0)


def test_repr_and_close():
    """The provider has a short repr and close/aclose are harmless."""
    provider = SimulatedProvider(seed=5)
    assert repr(provider) == "SimulatedProvider(seed=5, realtime=False)"
    provider.close()
    asyncio.run(provider.aclose())
