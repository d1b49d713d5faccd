"""Anthropic's Messages API (``x-api-key``, ``anthropic-version``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ims_kit.providers.base import HTTPProvider, env, require_key
from ims_kit.records import ModelSpec

DEFAULT_BASE_URL = "https://api.anthropic.com"
API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096  # Messages requires max_tokens; this caps it when the caller says none


class AnthropicProvider(HTTPProvider):
    """``POST {base}/v1/messages``; the base URL is the bare host, as in Anthropic's SDK."""

    name = "anthropic"
    request_id_header = "request-id"

    def base_url(self, spec: ModelSpec) -> str:
        """The row's base URL, else ``ANTHROPIC_BASE_URL``, else Anthropic's own."""
        return (spec.base_url or env("ANTHROPIC_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")

    def build_request(
        self, spec: ModelSpec, prompt: str, max_tokens: int | None, system: str | None
    ) -> tuple[str, dict[str, str], dict[str, Any]]:
        key = require_key(self.name, "ANTHROPIC_API_KEY")
        headers = {"x-api-key": key, "anthropic-version": API_VERSION}
        if max_tokens is None:
            max_tokens = min(spec.max_output_tokens, DEFAULT_MAX_TOKENS)
        body: dict[str, Any] = {
            "model": spec.api_model,
            "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": prompt}],
        }
        if system:
            body["system"] = system
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
        }

    def error_fields(self, data: dict[str, Any]) -> dict[str, Any]:
        error = data.get("error") or {}
        return {
            "message": error.get("message"),
            "error_type": error.get("type"),
            "request_id": data.get("request_id"),
        }
