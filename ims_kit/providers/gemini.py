"""Google's Gemini API ``generateContent``, the key in ``x-goog-api-key`` and never in the URL.

A key in the query string (``?key=``) would appear in the HTTP client's INFO log line and in
the text of its exceptions; in a header it appears nowhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from ims_kit.prompts import Prompt
from ims_kit.providers.base import HTTPProvider, env, require_key
from ims_kit.providers.sse import StreamState
from ims_kit.records import ModelSpec

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
_ROLE = {"user": "user", "assistant": "model"}


class GeminiProvider(HTTPProvider):
    """``POST {base}/v1beta/models/{api_model}:generateContent``; base URL is the bare host.

    The system prompt is ``systemInstruction``; turns are ``contents`` with roles user and
    model (consecutive ones of a role joined); options go in ``generationConfig``, a JSON
    Schema as ``responseMimeType`` + ``responseJsonSchema``.
    """

    name = "gemini"
    request_id_header = "x-request-id"  # Gemini sends none; its bodies carry ``responseId``

    def base_url(self, spec: ModelSpec) -> str:
        """Row base URL, else ``GEMINI_BASE_URL`` (or ``GOOGLE_GEMINI_BASE_URL``), else Google."""
        url = spec.base_url or env("GEMINI_BASE_URL", "GOOGLE_GEMINI_BASE_URL") or DEFAULT_BASE_URL
        return url.rstrip("/")

    def build_request(
        self, spec: ModelSpec, prompt: Prompt, stream: bool = False
    ) -> tuple[str, dict[str, str], dict[str, Any]]:
        key = require_key(self.name, "GEMINI_API_KEY", "GOOGLE_API_KEY")
        model = quote(spec.api_model.removeprefix("models/"), safe="")
        body: dict[str, Any] = {"contents": contents(prompt)}
        if prompt.system:
            body["systemInstruction"] = {"parts": [{"text": prompt.system}]}
        config = generation_config(prompt)
        if config:
            body["generationConfig"] = config
        method = "streamGenerateContent?alt=sse" if stream else "generateContent"
        url = f"{self.base_url(spec)}/v1beta/models/{model}:{method}"
        return url, {"x-goog-api-key": key}, body

    def parse_success(self, data: Any, headers: Mapping[str, str]) -> dict[str, Any]:
        usage = data.get("usageMetadata") or {}
        candidates = data.get("candidates") or []
        if candidates:
            parts = (candidates[0].get("content") or {}).get("parts") or []
            text = "".join(p.get("text", "") for p in parts if not p.get("thought"))
            finish = candidates[0].get("finishReason")
        else:  # the prompt itself was blocked: no candidate, the reason in promptFeedback
            text, finish = "", (data.get("promptFeedback") or {}).get("blockReason")
        tokens_in, tokens_out = usage_tokens(usage)
        return {
            "text": text,
            "tokens_in": tokens_in,
            "tokens_out": tokens_out,
            "finish_reason": finish,
            "request_id": data.get("responseId"),
            "model": data.get("modelVersion") or "",
        }

    def read_event(self, event: str | None, data: Any, state: StreamState) -> str | None:
        # every chunk carries the usage so far (cumulative): the last one is the total
        if data.get("usageMetadata"):
            state.tokens_in, state.tokens_out = usage_tokens(data["usageMetadata"])
        state.model = data.get("modelVersion") or state.model
        state.request_id = data.get("responseId") or state.request_id
        candidates = data.get("candidates") or []
        if not candidates:
            if (data.get("promptFeedback") or {}).get("blockReason"):
                state.finish_reason, state.done = data["promptFeedback"]["blockReason"], True
            return None
        first = candidates[0]
        if first.get("finishReason"):
            state.finish_reason, state.done = first["finishReason"], True
        parts = (first.get("content") or {}).get("parts") or []
        return "".join(p.get("text", "") for p in parts if not p.get("thought")) or None


def contents(prompt: Prompt) -> list[dict[str, Any]]:
    """The turns as Gemini ``contents``, consecutive ones of the same role joined."""
    out: list[dict[str, Any]] = []
    for m in prompt.messages:
        role = _ROLE[m.role]
        if out and out[-1]["role"] == role:
            out[-1]["parts"][0]["text"] += "\n\n" + m.content
        else:
            out.append({"role": role, "parts": [{"text": m.content}]})
    return out


def generation_config(prompt: Prompt) -> dict[str, Any]:
    """The options Gemini takes, by its names (empty when none is set)."""
    o = prompt.options
    config: dict[str, Any] = {}
    for name, value in (
        ("maxOutputTokens", o.max_tokens),
        ("temperature", o.temperature),
        ("topP", o.top_p),
        ("seed", o.seed),
    ):
        if value is not None:
            config[name] = value
    if o.stop:
        config["stopSequences"] = list(o.stop)
    if prompt.json_schema is not None:
        config["responseMimeType"] = "application/json"
        config["responseJsonSchema"] = dict(prompt.json_schema)
    return config


def usage_tokens(usage: Mapping[str, Any]) -> tuple[int | None, int | None]:
    """Prompt and output tokens of ``usageMetadata``; thinking is billed as output."""
    out = usage.get("candidatesTokenCount")
    if usage.get("thoughtsTokenCount"):
        out = (out or 0) + usage["thoughtsTokenCount"]
    return usage.get("promptTokenCount"), out
