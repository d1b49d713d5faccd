"""OpenAI chat completions, which also serves any OpenAI-compatible server (Ollama, vLLM, ...)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ims_kit.providers.base import HTTPProvider, env, require_key
from ims_kit.records import ModelSpec

DEFAULT_BASE_URL = "https://api.openai.com/v1"


class OpenAIProvider(HTTPProvider):
    """``POST {base}/chat/completions``; the base URL includes the version (``.../v1``).

    With ``compatible=True`` (provider name ``openai_compatible``) the key is optional
    (``OPENAI_COMPATIBLE_API_KEY``; no Authorization header when unset), the base URL comes from
    the model row or ``OPENAI_COMPATIBLE_BASE_URL``, and the output cap is sent as ``max_tokens``
    (local servers know it) instead of ``max_completion_tokens`` (which OpenAI's reasoning models
    require).
    """

    request_id_header = "x-request-id"

    def __init__(self, *, compatible: bool = False, **kw: Any):
        super().__init__(**kw)
        self.compatible = compatible
        self.name = "openai_compatible" if compatible else "openai"

    def base_url(self, spec: ModelSpec) -> str:
        """The row's base URL, else the environment's, else OpenAI's own."""
        if self.compatible:
            url = spec.base_url or env("OPENAI_COMPATIBLE_BASE_URL", "OPENAI_BASE_URL")
        else:
            url = spec.base_url or env("OPENAI_BASE_URL")
        return (url or DEFAULT_BASE_URL).rstrip("/")

    def build_request(
        self, spec: ModelSpec, prompt: str, max_tokens: int | None, system: str | None
    ) -> tuple[str, dict[str, str], dict[str, Any]]:
        if self.compatible:
            key = env("OPENAI_COMPATIBLE_API_KEY")
        else:
            key = require_key(self.name, "OPENAI_API_KEY")
        headers = {"authorization": f"Bearer {key}"} if key else {}
        messages = [{"role": "user", "content": prompt}]
        if system:
            messages.insert(0, {"role": "system", "content": system})
        body: dict[str, Any] = {"model": spec.api_model, "messages": messages}
        if max_tokens is not None:
            body["max_tokens" if self.compatible else "max_completion_tokens"] = max_tokens
        return f"{self.base_url(spec)}/chat/completions", headers, body

    def parse_success(self, data: Any, headers: Mapping[str, str]) -> dict[str, Any]:
        choice = data["choices"][0]
        message = choice.get("message") or {}
        usage = data.get("usage") or {}
        return {
            "text": message.get("content") or message.get("refusal") or "",
            "tokens_in": usage.get("prompt_tokens"),
            "tokens_out": usage.get("completion_tokens"),
            "finish_reason": choice.get("finish_reason"),
            "request_id": headers.get("x-request-id") or data.get("id"),
        }

    def error_fields(self, data: dict[str, Any]) -> dict[str, Any]:
        error = data.get("error")
        if isinstance(error, dict):  # OpenAI and most compatible servers
            return {
                "message": error.get("message"),
                "error_type": _text(error.get("type")),
                "code": _text(error.get("code")),
            }
        if isinstance(error, str):  # Ollama: {"error": "model 'x' not found"}
            return {"message": error}
        detail = data.get("detail") or data.get("message")  # FastAPI-style servers
        return {"message": detail if isinstance(detail, str) else None}


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
