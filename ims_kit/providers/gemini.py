"""Google's Gemini API ``generateContent``, the key in ``x-goog-api-key`` and never in the URL.

A key in the query string (``?key=``) would appear in httpx's INFO log line and in the text of
its exceptions; in a header it appears nowhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from ims_kit.providers.base import HTTPProvider, env, require_key
from ims_kit.records import ModelSpec

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
_RPC = "type.googleapis.com/google.rpc."


class GeminiProvider(HTTPProvider):
    """``POST {base}/v1beta/models/{api_model}:generateContent``; base URL is the bare host."""

    name = "gemini"
    request_id_header = "x-request-id"  # Gemini sends none; its bodies carry ``responseId``

    def base_url(self, spec: ModelSpec) -> str:
        """Row base URL, else ``GEMINI_BASE_URL`` (or ``GOOGLE_GEMINI_BASE_URL``), else Google."""
        url = spec.base_url or env("GEMINI_BASE_URL", "GOOGLE_GEMINI_BASE_URL") or DEFAULT_BASE_URL
        return url.rstrip("/")

    def build_request(
        self, spec: ModelSpec, prompt: str, max_tokens: int | None, system: str | None
    ) -> tuple[str, dict[str, str], dict[str, Any]]:
        key = require_key(self.name, "GEMINI_API_KEY", "GOOGLE_API_KEY")
        model = quote(spec.api_model.removeprefix("models/"), safe="")
        body: dict[str, Any] = {"contents": [{"role": "user", "parts": [{"text": prompt}]}]}
        if system:
            body["systemInstruction"] = {"parts": [{"text": system}]}
        if max_tokens is not None:
            body["generationConfig"] = {"maxOutputTokens": max_tokens}
        url = f"{self.base_url(spec)}/v1beta/models/{model}:generateContent"
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
        out = usage.get("candidatesTokenCount")
        if out is not None and usage.get("thoughtsTokenCount"):
            out += usage["thoughtsTokenCount"]  # thinking is billed as output
        return {
            "text": text,
            "tokens_in": usage.get("promptTokenCount"),
            "tokens_out": out,
            "finish_reason": finish,
            "request_id": data.get("responseId"),
        }

    def error_fields(self, data: dict[str, Any]) -> dict[str, Any]:
        error = data.get("error") or {}
        return {
            "message": error.get("message"),
            "error_type": error.get("status"),
            "code": _detail_code(error.get("details")),
        }


def _detail_code(details: Any) -> str | None:
    """ErrorInfo's reason (``API_KEY_INVALID``) or the violated quota's id (per minute or day)."""
    by_type = {
        str(d.get("@type", "")).removeprefix(_RPC): d
        for d in (details if isinstance(details, list) else ())
        if isinstance(d, dict)
    }
    reason = (by_type.get("ErrorInfo") or {}).get("reason")
    if reason:
        return str(reason)
    violations = (by_type.get("QuotaFailure") or {}).get("violations") or [{}]
    quota_id = violations[0].get("quotaId")
    return str(quota_id) if quota_id else None
