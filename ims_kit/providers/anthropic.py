"""Anthropic's Messages API (``x-api-key``, ``anthropic-version``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ims_kit.prompts import Prompt
from ims_kit.providers.base import HTTPProvider, env, require_key
from ims_kit.records import ModelSpec

DEFAULT_BASE_URL = "https://api.anthropic.com"
API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096  # Messages requires max_tokens; this caps it when the caller says none


class AnthropicProvider(HTTPProvider):
    """``POST {base}/v1/messages``; the base URL is the bare host, as in Anthropic's SDK.

    The system prompt is the top-level ``system``; consecutive turns of one role are joined
    (Messages alternates user and assistant); stop sequences are ``stop_sequences``; a JSON
    Schema asks for structured output (``output_config.format``), whose answer is the text.
    """

    name = "anthropic"
    request_id_header = "request-id"

    def base_url(self, spec: ModelSpec) -> str:
        """The row's base URL, else ``ANTHROPIC_BASE_URL``, else Anthropic's own."""
        return (spec.base_url or env("ANTHROPIC_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")

    def build_request(
        self, spec: ModelSpec, prompt: Prompt
    ) -> tuple[str, dict[str, str], dict[str, Any]]:
        key = require_key(self.name, "ANTHROPIC_API_KEY")
        headers = {"x-api-key": key, "anthropic-version": API_VERSION}
        o = prompt.options
        max_tokens = o.max_tokens or min(spec.max_output_tokens, DEFAULT_MAX_TOKENS)
        body: dict[str, Any] = {
            "model": spec.api_model,
            "max_tokens": max_tokens,
            "messages": alternating(prompt),
        }
        if prompt.system:
            body["system"] = prompt.system
        for name, value in (("temperature", o.temperature), ("top_p", o.top_p)):
            if value is not None:
                body[name] = value
        if o.stop:
            body["stop_sequences"] = list(o.stop)
        if prompt.json_schema is not None:
            body["output_config"] = {
                "format": {"type": "json_schema", "schema": dict(prompt.json_schema)}
            }
        return f"{self.base_url(spec)}/v1/messages", headers, body

    def parse_success(self, data: Any, headers: Mapping[str, str]) -> dict[str, Any]:
        blocks = data["content"]
        usage = data.get("usage") or {}
        return {
            "text": "".join(b.get("text", "") for b in blocks if b.get("type") == "text"),
            "tokens_in": usage.get("input_tokens"),
            "tokens_out": usage.get("output_tokens"),
            "finish_reason": data.get("stop_reason"),
            "request_id": headers.get("request-id") or data.get("id"),
            "model": data.get("model") or "",
        }


def alternating(prompt: Prompt) -> list[dict[str, str]]:
    """The turns, consecutive ones of the same role joined into one."""
    out: list[dict[str, str]] = []
    for m in prompt.messages:
        if out and out[-1]["role"] == m.role:
            out[-1]["content"] += "\n\n" + m.content
        else:
            out.append({"role": m.role, "content": m.content})
    return out
