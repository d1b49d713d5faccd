"""The providers package: the registry by name, key variables, Retry-After parsing, redaction."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from ims_kit.errors import InvalidInputError
from ims_kit.providers import PROVIDER_KEYS, find_key_variable, get_provider
from ims_kit.providers.base import clean_text, overflow_tokens, parse_retry_after, redact

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
RETRY_INFO = {"@type": "type.googleapis.com/google.rpc.RetryInfo"}


@pytest.mark.parametrize(
    ("name", "cls", "provider_name"),
    [
        ("openai", "OpenAIProvider", "openai"),
        ("openai_compatible", "OpenAIProvider", "openai_compatible"),
        ("anthropic", "AnthropicProvider", "anthropic"),
        ("gemini", "GeminiProvider", "gemini"),
        ("simulated", "SimulatedProvider", "simulated"),
    ],
)
def test_get_provider_by_row_name(name, cls, provider_name):
    """Each provider value of a model row maps to its adapter, named after the row's value."""
    provider = get_provider(name)
    try:
        assert type(provider).__name__ == cls
        assert provider.name == provider_name
    finally:
        provider.close()


def test_get_provider_passes_options():
    """Keyword arguments reach the adapter's constructor."""
    assert get_provider("simulated", seed=7).seed == 7
    provider = get_provider("openai", timeout_s=3.0, connect_timeout_s=1.0)
    assert (provider.timeout_s, provider.connect_timeout_s) == (3.0, 1.0)


@pytest.mark.parametrize("name", ["openia", "", "gemini_cli"])
def test_unknown_provider_lists_known_ones(name):
    """An unknown name raises InvalidInputError naming every known provider."""
    with pytest.raises(InvalidInputError) as info:
        get_provider(name)
    for known in ("anthropic", "gemini", "openai", "openai_compatible", "simulated"):
        assert known in str(info.value)


def test_import_and_simulated_provider_do_not_load_httpx():
    """Importing ims_kit.providers, and using the simulated provider, never imports httpx."""
    code = (
        "import sys, json, ims_kit.providers as p\n"
        "before = 'httpx' in sys.modules\n"
        "from ims_kit.records import ModelSpec\n"
        "spec = ModelSpec(model_id='m', vendor='v', provider='simulated', context_window=100)\n"
        "p.get_provider('simulated').complete(spec, 'hi')\n"
        "after_sim = 'httpx' in sys.modules\n"
        "p.get_provider('openai')\n"
        "print(json.dumps([before, after_sim, 'httpx' in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == [False, False, True]


def test_provider_keys_name_the_variables():
    """PROVIDER_KEYS names each real provider's key variable."""
    assert PROVIDER_KEYS == {
        "anthropic": "ANTHROPIC_API_KEY",
        "gemini": "GEMINI_API_KEY",
        "openai": "OPENAI_API_KEY",
    }


def test_find_key_variable(monkeypatch):
    """find_key_variable names the set variable, with GOOGLE_API_KEY as Gemini's fallback."""
    for var in ("OPENAI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY", "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "  ")  # blank counts as unset
    assert find_key_variable("openai") is None
    assert find_key_variable("anthropic") is None
    monkeypatch.setenv("GOOGLE_API_KEY", "AIza-x")
    assert find_key_variable("gemini") == "GOOGLE_API_KEY"
    monkeypatch.setenv("GEMINI_API_KEY", "AIza-y")
    assert find_key_variable("gemini") == "GEMINI_API_KEY"


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
