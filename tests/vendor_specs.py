"""What the adapter tests share: canary keys, the vendors' variables and a model row each."""

from __future__ import annotations

from ims_kit.records import ModelSpec

VENDORS = ("openai", "anthropic", "gemini")
KEYS = {  # canaries: none of them may ever appear in an error, a repr or a log line
    "openai": "sk-canary-1234567890abcdef",
    "anthropic": "sk-ant-canary-1234567890abcdef",
    "gemini": "AIzaCanary1234567890abcdefghijklmnopqr",
}
KEY_VARS = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "gemini": "GEMINI_API_KEY",
}
API_MODELS = {
    "openai": "gpt-4o",
    "anthropic": "claude-sonnet-4-5-20250929",
    "gemini": "gemini-2.0-flash",
}
PATHS = {
    "openai": "/v1/chat/completions",
    "anthropic": "/v1/messages",
    "gemini": "/v1beta/models/gemini-2.0-flash:generateContent",
}
ENV_VARS = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_COMPATIBLE_API_KEY",
    "OPENAI_COMPATIBLE_BASE_URL",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "GEMINI_BASE_URL",
    "GOOGLE_GEMINI_BASE_URL",
)


def spec_for(vendor: str, **kw) -> ModelSpec:
    """A model row for `vendor` whose model_id differs from its api_model where vendors do."""
    model_id = {"anthropic": "claude-sonnet-4-5"}.get(vendor, API_MODELS[vendor])
    fields = {"context_window": 128_000, "max_output_tokens": 8192, "provider": vendor, **kw}
    return ModelSpec(model_id=model_id, vendor=vendor, api_model=API_MODELS[vendor], **fields)


def base_url(vendor: str, url: str) -> str:
    """The base URL for `vendor` on a server at `url` (OpenAI's includes the version)."""
    return url + "/v1" if vendor.startswith("openai") else url


def point_at(server, monkeypatch) -> None:
    """Canary keys and base URLs pointing every vendor at the loopback ``server``."""
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    for vendor in VENDORS:
        monkeypatch.setenv(KEY_VARS[vendor], KEYS[vendor])
    monkeypatch.setenv("OPENAI_BASE_URL", server.url + "/v1")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
    monkeypatch.setenv("GEMINI_BASE_URL", server.url)
