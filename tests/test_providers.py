"""The providers package: adapters by name, key variables, endpoints."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ims_kit.errors import InvalidInputError
from ims_kit.providers import PROVIDER_KEYS, find_key_variable, get_provider


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


@pytest.mark.parametrize("name", ["openia", "", "gemini-cli"])
def test_unknown_provider_lists_known_ones(name):
    """An unknown name raises InvalidInputError naming every known provider."""
    with pytest.raises(InvalidInputError) as info:
        get_provider(name)
    for known in ("anthropic", "gemini", "gemini_cli", "openai", "openai_compatible", "simulated"):
        assert known in str(info.value)


def test_import_and_simulated_provider_do_not_load_an_http_client():
    """Importing ims_kit.providers, and using the simulated provider, imports no HTTP client;
    an HTTP adapter loads httpx2 (sync), and aiohttp only when an async call needs it."""
    code = (
        "import sys, json, ims_kit.providers as p\n"
        "loaded = lambda: [m for m in ('httpx', 'httpx2', 'aiohttp') if m in sys.modules]\n"
        "before = loaded()\n"
        "from ims_kit.records import ModelSpec\n"
        "spec = ModelSpec(model_id='m', vendor='v', provider='simulated', context_window=100)\n"
        "p.get_provider('simulated').complete(spec, 'hi')\n"
        "after_sim = loaded()\n"
        "p.get_provider('openai')\n"
        "print(json.dumps([before, after_sim, loaded()]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == [[], [], ["httpx2"]]


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
