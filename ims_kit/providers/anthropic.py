"""Anthropic's Messages API (``x-api-key``, ``anthropic-version``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ims_kit.prompts import Prompt
from ims_kit.providers.base import HTTPProvider, env, require_key
from ims_kit.providers.sse import StreamState
from ims_kit.records import ModelSpec
from ims_kit.validators import is_closed

DEFAULT_BASE_URL = "https://api.anthropic.com"
API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096  # Messages requires max_tokens; this caps it when the caller says none
ANSWER_TOOL = "answer"  # the forced tool whose input is the JSON answer
WRAPPED = "answer_value"  # a schema whose root is not an object is this property of one


class AnthropicProvider(HTTPProvider):
    """``POST {base}/v1/messages``; the base URL is the bare host, as in Anthropic's SDK.

    The system prompt is the top-level ``system``; consecutive turns of one role are joined
    (Messages alternates user and assistant); stop sequences are ``stop_sequences``; a JSON
    Schema asks for structured output (``output_config.format``) when the model has it
    (``json_mode``) and the schema is closed, which constrained decoding requires; otherwise
    a forced tool whose input is the answer (any schema, any model with tools).
    """

    name = "anthropic"
    request_id_header = "request-id"

    def base_url(self, spec: ModelSpec) -> str:
        """The row's base URL, else ``ANTHROPIC_BASE_URL``, else Anthropic's own."""
        return (spec.base_url or env("ANTHROPIC_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")

    def refused_options(self, spec: ModelSpec, prompt: Prompt) -> dict[str, str]:
        """The registry's, plus what Messages never takes: a seed, and top_p beside temperature
        (current models refuse both at once; temperature is kept)."""
        refused = super().refused_options(spec, prompt)
        refused.setdefault("seed", "Anthropic's Messages API has no seed")
        o = prompt.options
        if o.temperature is not None and o.top_p is not None and "temperature" not in refused:
            refused.setdefault("top_p", "Anthropic takes temperature or top_p, not both")
        return refused

    def build_request(
        self, spec: ModelSpec, prompt: Prompt, stream: bool = False
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
            body.update(json_output(spec, prompt.json_schema))
        if stream:
            body["stream"] = True
        return f"{self.base_url(spec)}/v1/messages", headers, body

    def parse_success(self, data: Any, headers: Mapping[str, str]) -> dict[str, Any]:
        blocks = data["content"]
        usage = data.get("usage") or {}
        tool = next((b for b in blocks if b.get("type") == "tool_use"), None)
        if tool is not None and tool.get("name") == ANSWER_TOOL:
            text = json.dumps(_unwrapped(tool.get("input")))
        else:
            text = "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
        return {
            "text": text,
            "tokens_in": usage.get("input_tokens"),
            "tokens_out": usage.get("output_tokens"),
            "finish_reason": data.get("stop_reason"),
            "request_id": headers.get("request-id") or data.get("id"),
            "model": data.get("model") or "",
        }

    def read_event(self, event: str | None, data: Any, state: StreamState) -> str | None:
        kind = data.get("type") or event
        if kind == "message_start":  # the input count, once, at the start
            message = data.get("message") or {}
            usage = message.get("usage") or {}
            state.tokens_in = usage.get("input_tokens", state.tokens_in)
            state.model = message.get("model") or state.model
            state.request_id = state.request_id or message.get("id")
        elif kind == "content_block_delta":
            delta = data.get("delta") or {}
            if delta.get("type") == "input_json_delta":  # the forced tool's JSON, in pieces
                state.tool_json = True
                return delta.get("partial_json") or None
            return delta.get("text") if delta.get("type") == "text_delta" else None
        elif kind == "message_delta":  # the output count so far (cumulative) and the end
            usage = data.get("usage") or {}
            state.tokens_out = usage.get("output_tokens", state.tokens_out)
            state.finish_reason = (data.get("delta") or {}).get(
                "stop_reason"
            ) or state.finish_reason
        elif kind == "message_stop":
            state.done = True
        return None

    def final_text(self, state: StreamState) -> str:
        """A streamed forced tool's JSON, unwrapped when its schema was wrapped."""
        if not state.tool_json:
            return state.text
        try:
            return json.dumps(_unwrapped(json.loads(state.text)))
        except ValueError:
            return state.text  # not JSON: the check will say so


def alternating(prompt: Prompt) -> list[dict[str, str]]:
    """The turns, consecutive ones of the same role joined into one."""
    out: list[dict[str, str]] = []
    for m in prompt.messages:
        if out and out[-1]["role"] == m.role:
            out[-1]["content"] += "\n\n" + m.content
        else:
            out.append({"role": m.role, "content": m.content})
    return out


def json_output(spec: ModelSpec, schema: Mapping[str, Any]) -> dict[str, Any]:
    """The body fields asking for a JSON answer valid against ``schema``."""
    if "json_mode" in spec.capabilities and is_closed(schema) and schema.get("type") == "object":
        return {"output_config": {"format": {"type": "json_schema", "schema": dict(schema)}}}
    wrapped = schema.get("type") != "object"
    tool_schema = (
        {"type": "object", "properties": {WRAPPED: dict(schema)}, "required": [WRAPPED]}
        if wrapped
        else dict(schema)
    )
    description = "Give the answer." + (f" Put it in '{WRAPPED}'." if wrapped else "")
    return {
        "tools": [{"name": ANSWER_TOOL, "description": description, "input_schema": tool_schema}],
        "tool_choice": {"type": "tool", "name": ANSWER_TOOL},
    }


def _unwrapped(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {WRAPPED}:
        return value[WRAPPED]
    return value
