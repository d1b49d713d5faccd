"""OpenAI chat completions, which also serves any OpenAI-compatible server (Ollama, vLLM, ...)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ims_kit.prompts import Prompt
from ims_kit.providers.base import HTTPProvider, env, require_key
from ims_kit.providers.sse import DONE, StreamState
from ims_kit.records import ModelSpec
from ims_kit.validators import is_closed

DEFAULT_BASE_URL = "https://api.openai.com/v1"


class OpenAIProvider(HTTPProvider):
    """``POST {base}/chat/completions``; the base URL includes the version (``.../v1``).

    With ``compatible=True`` (provider name ``openai_compatible``) the key is optional
    (``OPENAI_COMPATIBLE_API_KEY``; no Authorization header when unset), the base URL comes from
    the model row or ``OPENAI_COMPATIBLE_BASE_URL``, and the output cap is sent as ``max_tokens``
    (local servers know it) instead of ``max_completion_tokens`` (which OpenAI's reasoning models
    require). A system prompt is a ``developer`` message for models the registry marks as
    ``reasoning`` (o-series, gpt-5), a ``system`` message otherwise.
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
        self, spec: ModelSpec, prompt: Prompt, stream: bool = False
    ) -> tuple[str, dict[str, str], dict[str, Any]]:
        if self.compatible:
            key = env("OPENAI_COMPATIBLE_API_KEY")
        else:
            key = require_key(self.name, "OPENAI_API_KEY")
        headers = {"authorization": f"Bearer {key}"} if key else {}
        body: dict[str, Any] = {"model": spec.api_model, "messages": messages(spec, prompt)}
        o = prompt.options
        if o.max_tokens is not None:
            body["max_tokens" if self.compatible else "max_completion_tokens"] = o.max_tokens
        for name, value in (("temperature", o.temperature), ("top_p", o.top_p), ("seed", o.seed)):
            if value is not None:
                body[name] = value
        if o.stop:
            body["stop"] = list(o.stop)
        if prompt.json_schema is not None:
            body["response_format"] = response_format(prompt.json_schema)
        if stream:  # the usage comes in one last chunk, before [DONE]
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
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
            "model": data.get("model") or "",
        }

    def read_event(self, event: str | None, data: Any, state: StreamState) -> str | None:
        if data == DONE:
            state.done = True
            return None
        state.model = data.get("model") or state.model
        state.request_id = state.request_id or data.get("id")
        usage = data.get("usage")
        if usage:
            state.tokens_in = usage.get("prompt_tokens")
            state.tokens_out = usage.get("completion_tokens")
        piece = None
        for choice in data.get("choices") or []:
            delta = choice.get("delta") or {}
            piece = delta.get("content") or delta.get("refusal") or piece
            state.finish_reason = choice.get("finish_reason") or state.finish_reason
        return piece


def messages(spec: ModelSpec, prompt: Prompt) -> list[dict[str, str]]:
    """The conversation as OpenAI's messages, the system prompt first."""
    out = [{"role": m.role, "content": m.content} for m in prompt.messages]
    if prompt.system:
        role = "developer" if "reasoning" in spec.capabilities else "system"
        out.insert(0, {"role": role, "content": prompt.system})
    return out


def response_format(schema: Mapping[str, Any]) -> dict[str, Any]:
    """Structured output for a JSON Schema: strict when the schema meets strict mode's rules
    (every object closed, every property required), else the schema as guidance."""
    return {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": dict(schema), "strict": is_closed(schema)},
    }
