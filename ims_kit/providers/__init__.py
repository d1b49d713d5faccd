"""Provider adapters by name: ``get_provider("openai")``, ``get_provider("simulated", seed=1)``.

Importing this package loads no adapter and no HTTP client: an adapter's module is imported when
``get_provider`` first asks for it (the simulated provider never needs one).
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

from ims_kit.errors import InvalidInputError

if TYPE_CHECKING:
    from ims_kit.providers.base import Provider

__all__ = [
    "PROVIDER_KEYS",
    "AnthropicProvider",
    "GeminiCliProvider",
    "GeminiProvider",
    "HTTPProvider",
    "OpenAIProvider",
    "Provider",
    "SimulatedProvider",
    "endpoint_of",
    "find_key_variable",
    "get_provider",
    "parse_retry_after",
    "redact",
]

# The variable holding each real provider's key (the status command lists them by name).
PROVIDER_KEYS = {
    "anthropic": "ANTHROPIC_API_KEY",
    "gemini": "GEMINI_API_KEY",
    "openai": "OPENAI_API_KEY",
}
_KEY_FALLBACKS = {"gemini": ("GOOGLE_API_KEY",)}  # read when the main variable is unset

# name -> (module, class, constructor defaults)
_ADAPTERS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "anthropic": ("anthropic", "AnthropicProvider", {}),
    "gemini": ("gemini", "GeminiProvider", {}),
    "gemini_cli": ("gemini_cli", "GeminiCliProvider", {}),
    "openai": ("openai", "OpenAIProvider", {}),
    "openai_compatible": ("openai", "OpenAIProvider", {"compatible": True}),
    "simulated": ("simulated", "SimulatedProvider", {}),
}
_LAZY = {
    "AnthropicProvider": "anthropic",
    "GeminiProvider": "gemini",
    "HTTPProvider": "base",
    "OpenAIProvider": "openai",
    "Provider": "base",
    "SimulatedProvider": "simulated",
    "parse_retry_after": "base",
    "redact": "base",
    "GeminiCliProvider": "gemini_cli",
}


def get_provider(name: str, **kw: Any) -> Provider:
    """A new adapter for a model row's ``provider`` value; ``kw`` go to its constructor."""
    try:
        module, cls, defaults = _ADAPTERS[name]
    except (KeyError, TypeError):
        known = ", ".join(sorted(_ADAPTERS))
        raise InvalidInputError(f"unknown provider {name!r}; known: {known}") from None
    adapter = getattr(importlib.import_module(f"ims_kit.providers.{module}"), cls)
    return adapter(**{**defaults, **kw})


_SHARED: dict[str, Provider] = {}


def endpoint_of(spec: Any) -> str | None:
    """Where a model's calls go (its adapter's base URL), None without an endpoint."""
    adapter = _SHARED.get(spec.provider)
    if adapter is None:
        adapter = _SHARED[spec.provider] = get_provider(spec.provider)
    return adapter.endpoint(spec)


def find_key_variable(provider: str) -> str | None:
    """The name of the set environment variable holding ``provider``'s key, or None."""
    names = (PROVIDER_KEYS[provider], *_KEY_FALLBACKS.get(provider, ()))
    return next((n for n in names if os.environ.get(n, "").strip()), None)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f"ims_kit.providers.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ims_kit.providers' has no attribute {name!r}")
