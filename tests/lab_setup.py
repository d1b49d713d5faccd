"""The recovery lab: a kit whose models all live on the loopback vendor server, with
canary keys and the fake clock; shared by the recovery test files."""

from __future__ import annotations

from ims_kit.records import ModelSpec

KEYS = {
    "OPENAI_API_KEY": "sk-canary-1234567890abcdefWXYZ",
    "ANTHROPIC_API_KEY": "sk-ant-canary-abcdef123456",
    "GEMINI_API_KEY": "AIzaCanaryKey0123456789abcdef",
}
COMMON = dict(
    context_window=100_000, max_output_tokens=1_000, cost_per_mil_in=1.0, cost_per_mil_out=2.0
)
MODELS = [
    ("primary", "OpenAI", "openai"),
    ("backup", "OpenAI", "openai"),
    ("claude", "Anthropic", "anthropic"),
    ("gem", "Google", "gemini"),
]


def build_lab(kit, vendor, monkeypatch, clock):
    """Register the lab's four models on ``vendor`` and point the keys and URLs at it."""
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", vendor.url)
    monkeypatch.setenv("GEMINI_BASE_URL", vendor.url)
    for model_id, vendor_name, provider in MODELS:
        base = f"{vendor.url}/v1" if provider == "openai" else None
        register(kit, model_id, vendor_name, provider, base, quality=80)
    kit.circuits.clock = clock
    return kit


def register(kit, model_id, vendor, provider, base_url, **extra):
    kit.registry.register(
        ModelSpec(
            model_id=model_id,
            vendor=vendor,
            provider=provider,
            base_url=base_url,
            **{**COMMON, **extra},
        )
    )


def hits(server, model):
    """How many requests the server received for ``model``."""
    return sum(1 for r in server.requests if r.model == model)


def events(kit, kind):
    """The kit's events of ``kind``, oldest first."""
    return [e for e in reversed(kit.events.recent(limit=500)) if e.kind == kind]
