"""A fake LLM vendor HTTP server for tests and benchmarks.

Adapters and the retry/fallback logic must be tested against real HTTP: real sockets, status
codes, headers and the exact error bodies OpenAI, Anthropic and Gemini send, so that parsing code
(``retry-after-ms``, ``RetryInfo.retryDelay``, ``insufficient_quota``, ...) runs the way production
traffic will run it. This module starts a stdlib ``ThreadingHTTPServer`` on 127.0.0.1 that speaks
the three wire formats, records every request and answers from a FIFO of scripted faults (success
when the script is empty). Standard library only, keep-alive, one write per response, no
logging: ~0.1 ms per request from a raw socket (~0.5 ms median with httpx.Client) on loopback.

Per request: ``fail_always(key)`` > ``script_for(key)`` queue > ``script()`` queue > success,
where a key is a model name or a request path (e.g. "/v1/messages"); the model wins over the path.
"""

from __future__ import annotations

import dataclasses
import json
import re
import socket
import struct
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

AUTO = "auto"  # usage sentinel: compute token counts from the texts
_GEMINI_PATH = re.compile(r"^/v1(?:beta)?/models/([^/:]+):(generateContent|streamGenerateContent)$")
_VENDOR_PATHS = {"/v1/chat/completions": "openai", "/v1/messages": "anthropic"}
_ID_HEADER = {"openai": "x-request-id", "anthropic": "request-id"}
GATE_TIMEOUT_S = 5.0
_AFTER_FIRST_PIECE = {"openai": 2, "anthropic": 4, "gemini": 1}  # events up to the first piece


@dataclass
class RecordedRequest:
    """One request as the server received it (header keys are lower-case)."""

    method: str
    path: str  # without the query string
    raw_path: str  # as sent, including the query string
    headers: dict[str, str]
    json: Any  # parsed body, or None if empty / not JSON
    body: bytes
    timestamp: float  # time.time() on arrival
    vendor: str  # "openai" | "anthropic" | "gemini" | "unknown"
    model: str | None  # body["model"], or the model segment of the Gemini URL
    request_id: str  # the id the server put in its response (header and/or body)


Body = dict | str | Callable[[RecordedRequest], dict | str] | None


@dataclass(frozen=True)
class Fault:
    """A scripted response. status 200 with body None means "the vendor's success body"."""

    status: int = 200
    body: Body = None  # dict -> JSON, str -> raw text, callable(request) -> either
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering (cut short by stop())
    hang: bool = False  # never answer; the connection is dropped on stop()
    drop: str | None = None  # "close": FIN without a response; "reset": TCP RST
    text: str | None = None  # success only: fixed reply text
    usage: Any = AUTO  # success only: AUTO (server default), None (omit), (prompt, completion)
    # streamed answers only: pause between pieces; after N pieces send the vendor's own
    # mid-stream error event, or drop the connection (no final event, no usage)
    piece_delay: float = 0.0
    error_after: int | None = None
    cut_after: int | None = None
    # streamed answers only: after the first piece, wait for this threading.Event before the
    # rest; unset after GATE_TIMEOUT_S, the connection drops (a client that buffered fails)
    gate: Any = None

    def with_headers(self, **headers: Any) -> Fault:
        """Copy with extra response headers (underscores in names become dashes)."""
        extra = {k.replace("_", "-").lower(): str(v) for k, v in headers.items()}
        return dataclasses.replace(self, headers={**self.headers, **extra})


def _fixed(fault: Fault) -> Callable[[], Fault]:
    return lambda: fault  # faults are immutable, so one instance serves every call


def _msg(message: Any, req: RecordedRequest) -> str:
    return message(req) if callable(message) else message


# ---------------------------------------------------------------------------- generic faults
def ok(text: str | None = None, usage: Any = AUTO, delay: float = 0.0) -> Fault:
    """Success, optionally with a fixed text, a usage override (None = omit) or a delay."""
    return Fault(200, None, text=text, usage=usage, delay=delay)


def stream_error(after: int = 2, delay: float = 0.0) -> Fault:
    """A streamed answer that fails after ``after`` pieces with the vendor's error event."""
    return Fault(200, None, error_after=after, piece_delay=delay)


def stream_cut(after: int = 2, delay: float = 0.0) -> Fault:
    """A streamed answer whose connection drops after ``after`` pieces."""
    return Fault(200, None, cut_after=after, piece_delay=delay)


def hang(seconds: float | None = None, then: Fault | None = None) -> Fault:
    """Wait `seconds` then answer `then` (default success); None = never answer until stop()."""
    return Fault(hang=True) if seconds is None else dataclasses.replace(then or ok(), delay=seconds)


html_502 = _fixed(
    Fault(502, "<html><body><h1>502 Bad Gateway</h1></body></html>", {"content-type": "text/html"})
)
disconnect = _fixed(Fault(drop="close"))  # FIN without any response
connection_reset = _fixed(Fault(drop="reset"))  # TCP RST without any response


# ----------------------------------------------------------------------------- OpenAI faults
def _oai(status: int, message: Any, type_: str, code: str | None, param: str | None = None):
    def body(req: RecordedRequest) -> dict:
        err = {"message": _msg(message, req), "type": type_, "param": param, "code": code}
        return {"error": err}

    return Fault(status, body)


def openai_rate_limit(
    retry_after_ms: Any = None, retry_after: Any = None, hint: str | None = "2s"
) -> Fault:
    """429 rate_limit_exceeded; header values are sent verbatim (e.g. "soon", "-5", "nan");
    ``hint`` is the message's "Please try again in ..." (None: the message gives none)."""
    wait = f" Please try again in {hint}." if hint else ""
    msg = lambda r: (  # noqa: E731
        f"Rate limit reached for {r.model} in organization org-vendorserver on tokens per min "
        f"(TPM): Limit 30000, Used 29000, Requested 2000.{wait} Visit "
        "https://platform.openai.com/account/rate-limits to learn more."
    )
    hdrs = {"retry-after-ms": retry_after_ms, "retry-after": retry_after}
    hdrs = {k: str(v) for k, v in hdrs.items() if v is not None}
    return dataclasses.replace(_oai(429, msg, "tokens", "rate_limit_exceeded"), headers=hdrs)


def openai_invalid_param(
    param: str = "temperature",
    message: str = "2.5 is greater than the maximum of 2 - 'temperature'",
) -> Fault:
    """400 invalid_request_error with code null and the offending `param`."""
    return _oai(400, message, "invalid_request_error", None, param)


def _masked_key(req: RecordedRequest) -> str:
    auth = req.headers.get("authorization", "")
    key = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
    shown = key if len(key) <= 12 else key[:8] + "*" * (len(key) - 12) + key[-4:]
    return (
        f"Incorrect API key provided: {shown}. You can find your API key at "
        "https://platform.openai.com/account/api-keys."
    )


openai_insufficient_quota = _fixed(_oai(
    429,
    "You exceeded your current quota, please check your plan and billing details. For more "
    "information on this error, read the docs: "
    "https://platform.openai.com/docs/guides/error-codes/api-errors.",
    "insufficient_quota", "insufficient_quota",
))  # fmt: skip
openai_context_length = _fixed(_oai(
    400,
    "This model's maximum context length is 128000 tokens. However, your messages resulted in "
    "130532 tokens. Please reduce the length of the messages.",
    "invalid_request_error", "context_length_exceeded", "messages",
))  # fmt: skip
# 401 whose message echoes the received key like the real one: first 8 + stars + last 4
openai_invalid_api_key = _fixed(_oai(401, _masked_key, "invalid_request_error", "invalid_api_key"))
openai_model_not_found = _fixed(_oai(
    404,
    lambda r: f"The model `{r.model}` does not exist or you do not have access to it.",
    "invalid_request_error", "model_not_found",
))  # fmt: skip
openai_server_error = _fixed(_oai(
    500,
    lambda r: "The server had an error processing your request. Sorry about that! You can retry "
    "your request, or contact us through our help center at help.openai.com if you keep seeing "
    f"this error. (Please include the request ID {r.request_id} in your email.)",
    "server_error", None,
))  # fmt: skip
openai_unavailable = _fixed(_oai(
    503,
    lambda r: "That model is currently overloaded with other requests. You can retry your "
    "request, or contact us through our help center at help.openai.com if the error persists. "
    f"(Please include the request ID {r.request_id} in your message.)",
    "server_error", None,
))  # fmt: skip


# -------------------------------------------------------------------------- Anthropic faults
def _ant(status: int, type_: str, message: Any, headers: Mapping[str, str] | None = None):
    def body(req: RecordedRequest) -> dict:
        err = {"type": type_, "message": _msg(message, req)}
        return {"type": "error", "error": err, "request_id": req.request_id}

    return Fault(status, body, dict(headers or {}))


def anthropic_rate_limit(retry_after: Any = "7") -> Fault:
    """429 rate_limit_error with a `retry-after` header (None = no header)."""
    msg = (
        "This request would exceed the rate limit for your organization "
        "(00000000-0000-0000-0000-000000000000) of 50 input tokens per minute. For details, refer "
        "to: https://docs.claude.com/en/api/rate-limits. You can see the response headers for "
        "current usage. Please reduce the prompt length or the maximum tokens requested, or try "
        "again later. You may also contact sales at https://www.anthropic.com/contact-sales to "
        "discuss your options for a rate limit increase."
    )
    hdrs = {} if retry_after is None else {"retry-after": str(retry_after)}
    return _ant(429, "rate_limit_error", msg, hdrs)


def anthropic_context_limit(input_tokens: int, max_tokens: int, limit: int = 200_000) -> Fault:
    """400 invalid_request_error: the input and max_tokens together exceed the window."""
    return _ant(
        400,
        "invalid_request_error",
        f"input length and `max_tokens` exceed context limit: {input_tokens} + {max_tokens} >"
        f" {limit}, decrease input length or `max_tokens` and try again",
    )


anthropic_overloaded = _fixed(_ant(529, "overloaded_error", "Overloaded"))
anthropic_prompt_too_long = _fixed(
    _ant(400, "invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum")
)
anthropic_credit_too_low = _fixed(_ant(
    400, "invalid_request_error",
    "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing "
    "to upgrade or purchase credits.",
))  # fmt: skip
anthropic_auth_error = _fixed(_ant(401, "authentication_error", "invalid x-api-key"))
anthropic_permission_error = _fixed(_ant(
    403, "permission_error", "Your API key does not have permission to use the specified resource."
))  # fmt: skip
anthropic_not_found = _fixed(_ant(404, "not_found_error", lambda r: f"model: {r.model}"))
anthropic_api_error = _fixed(_ant(500, "api_error", "Internal server error"))


# ----------------------------------------------------------------------------- Gemini faults
def _gem(status: int, rpc_status: str, message: Any, details: list | None = None) -> Fault:
    def body(req: RecordedRequest) -> dict:
        err: dict = {"code": status, "message": _msg(message, req), "status": rpc_status}
        if details:
            err["details"] = details
        return {"error": err}

    return Fault(status, body)


_QUOTA_IDS = {
    "PerMinute": ("GenerateRequestsPerMinutePerProjectPerModel-FreeTier", "15"),
    "TokensPerMinute": ("GenerateContentInputTokensPerModelPerMinute-FreeTier", "250000"),
    "PerDay": ("GenerateRequestsPerDayPerProjectPerModel-FreeTier", "200"),
}


def gemini_quota(
    per_day: bool = False,
    retry_delay: str | None = "17s",
    violations: tuple[str, ...] | None = None,
    long_message: bool = False,
) -> Fault:
    """429 RESOURCE_EXHAUSTED with a QuotaFailure and RetryInfo. ``violations`` lists the
    quotas exceeded in order (``PerMinute``, ``TokensPerMinute``, ``PerDay``); ``long_message``
    is the 2026 wording that names every exceeded metric (well over 300 characters)."""
    kinds = violations or (("PerDay",) if per_day else ("PerMinute",))
    listed = [
        {
            "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
            "quotaId": _QUOTA_IDS[kind][0],
            "quotaDimensions": {"location": "global", "model": "gemini-2.0-flash"},
            "quotaValue": _QUOTA_IDS[kind][1],
        }
        for kind in kinds
    ]
    rpc = "type.googleapis.com/google.rpc."
    link = {"description": "Learn more about Gemini API quotas", "url": _GEMINI_RATE_DOCS}
    details: list = [
        {"@type": rpc + "QuotaFailure", "violations": listed},
        {"@type": rpc + "Help", "links": [link]},
    ]
    if retry_delay is not None:
        details.append({"@type": rpc + "RetryInfo", "retryDelay": retry_delay})
    msg = (
        "You exceeded your current quota, please check your plan and billing details. For more "
        f"information on this error, head to: {_GEMINI_RATE_DOCS}."
    )
    if long_message:
        msg += " To monitor your current usage, head to: https://ai.dev/rate-limit. " + "".join(
            f"\n* Quota exceeded for metric: {v['quotaMetric']}, limit: {v['quotaValue']},"
            " model: gemini-2.0-flash"
            for v in listed
        )
        if retry_delay:
            msg += f"\nPlease retry in {retry_delay}."
    return _gem(429, "RESOURCE_EXHAUSTED", msg, details)


_GEMINI_RATE_DOCS = "https://ai.google.dev/gemini-api/docs/rate-limits"
_BAD_KEY = "API key not valid. Please pass a valid API key."
gemini_invalid_key = _fixed(_gem(400, "INVALID_ARGUMENT", _BAD_KEY, [
    {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": "API_KEY_INVALID",
        "domain": "googleapis.com",
        "metadata": {"service": "generativelanguage.googleapis.com"},
    },
    {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US",
     "message": _BAD_KEY},
]))  # fmt: skip
gemini_overloaded = _fixed(
    _gem(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")
)
gemini_too_many_tokens = _fixed(_gem(
    400, "INVALID_ARGUMENT",
    "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
))  # fmt: skip
gemini_permission_denied = _fixed(
    _gem(403, "PERMISSION_DENIED", "The caller does not have permission")
)
gemini_not_found = _fixed(_gem(
    404, "NOT_FOUND",
    lambda r: f"models/{r.model} is not found for API version v1beta, or is not supported for "
    "generateContent. Call ListModels to see the list of available models and their supported "
    "methods.",
))  # fmt: skip
gemini_internal = _fixed(_gem(
    500, "INTERNAL",
    "An internal error has occurred. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting",
))  # fmt: skip
gemini_deadline = _fixed(
    _gem(504, "DEADLINE_EXCEEDED", "Deadline expired before operation could complete.")
)


# ------------------------------------------------------------------------- request parsing
def _texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):  # OpenAI/Anthropic content blocks or Gemini parts
        return [
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        ]
    return []


def extract_texts(vendor: str, body: Any) -> tuple[str, str]:
    """(prompt_text, last_user_text); prompt_text is every text, system included, "\\n"-joined."""
    if not isinstance(body, dict):
        return "", ""
    if vendor == "gemini":
        texts = _texts((body.get("systemInstruction") or {}).get("parts"))
        turns = [(c.get("role", "user"), c.get("parts")) for c in body.get("contents") or []]
    else:
        texts = _texts(body.get("system"))  # Anthropic's top-level system prompt
        turns = [(m.get("role"), m.get("content")) for m in body.get("messages") or []]
    last_user = ""
    for role, content in turns:
        parts = _texts(content)
        texts += parts
        if role == "user":
            last_user = "\n".join(parts)
    return "\n".join(texts), last_user


def _route(path: str, body: Any) -> tuple[str, str | None]:
    m = _GEMINI_PATH.match(path)
    if m:
        return "gemini", unquote(m.group(1))
    model = body.get("model") if isinstance(body, dict) else None
    return _VENDOR_PATHS.get(path, "unknown"), model if isinstance(model, str) else None


def _success_body(req: RecordedRequest, text: str, usage: Any) -> tuple[int, dict]:
    hexid, model = uuid.uuid4().hex, req.model
    if req.vendor == "openai":
        msg = {"role": "assistant", "content": text, "refusal": None, "annotations": []}
        choice = {"index": 0, "message": msg, "logprobs": None, "finish_reason": "stop"}
        out: dict = {"id": f"chatcmpl-{hexid[:29]}", "object": "chat.completion"}
        out.update(created=int(req.timestamp), model=model, choices=[choice])
        if usage is not None:
            n, m = usage
            out["usage"] = {"prompt_tokens": n, "completion_tokens": m, "total_tokens": n + m}
        out["system_fingerprint"] = "fp_vendorsrv"
    elif req.vendor == "anthropic":
        tool = _forced_tool(req)  # a forced tool's answer is its input, the text as JSON
        block = {"type": "text", "text": text}
        if tool:
            block = {"type": "tool_use", "id": f"toolu_01{hexid[:22]}", "name": tool,
                     "input": _tool_input(text)}  # fmt: skip
        end = "tool_use" if tool else "end_turn"
        out = {"id": f"msg_01{hexid[:22]}", "type": "message", "role": "assistant",
               "model": model, "content": [block], "stop_reason": end,
               "stop_sequence": None}  # fmt: skip
        if usage is not None:
            out["usage"] = {"input_tokens": usage[0], "output_tokens": usage[1]}
    elif req.vendor == "gemini":
        content = {"parts": [{"text": text}], "role": "model"}
        out = {"candidates": [{"content": content, "finishReason": "STOP", "index": 0}]}
        if usage is not None:
            n, m = usage
            out["usageMetadata"] = {"promptTokenCount": n, "candidatesTokenCount": m,
                                    "totalTokenCount": n + m}  # fmt: skip
        out.update(modelVersion=model, responseId=hexid[:22])
    else:
        message = f"Invalid URL ({req.method} {req.path})"
        return 404, {"error": {"message": message, "type": "invalid_request_error",
                               "param": None, "code": None}}  # fmt: skip
    return 200, out


# ------------------------------------------------------------------------------- the server
class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every response carries content-length
    disable_nagle_algorithm = True

    def setup(self) -> None:
        super().setup()
        self.server.conns.add(self.connection)  # type: ignore[attr-defined]

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.conns.discard(self.connection)  # type: ignore[attr-defined]

    def _dispatch(self) -> None:
        self.server.vendor._handle(self)  # type: ignore[attr-defined]

    do_POST = do_GET = do_PUT = do_DELETE = do_PATCH = _dispatch

    def log_message(self, format: str, *args: Any) -> None:
        pass  # no per-request logging: benchmarks measure this server's overhead


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # client hang-ups and aborted hangs are expected here


class VendorServer:
    """Fake OpenAI/Anthropic/Gemini server on 127.0.0.1 with a FIFO of scripted faults."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self.url = ""  # "http://127.0.0.1:PORT" once started
        self.reset()

    def start(self) -> VendorServer:
        self._stopping.clear()
        self._httpd = httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        httpd.vendor, httpd.conns = self, set()  # type: ignore[attr-defined]
        self.port = httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        kwargs = {"poll_interval": 0.05}  # shutdown() returns within ~50 ms
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs=kwargs, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; hung requests are released and every open connection is closed."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        for conn in list(httpd.conns):  # type: ignore[attr-defined]
            with suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def __enter__(self) -> VendorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget scripts, fail_always rules, reply overrides and recorded requests."""
        with self._lock:
            self._script: deque[Fault] = deque()
            self._per_model: dict[str, deque[Fault]] = {}
            self._always: dict[str, Fault] = {}
            self._requests: list[RecordedRequest] = []
            self.abandoned: list[str] = []  # request ids of streams the client left early
            self.reply_text: str | None = None  # fixed success text (None = echo)
            self.usage: Any = AUTO  # AUTO, None (omit usage) or (prompt, completion)

    def script(self, *faults: Fault) -> None:
        """Enqueue faults consumed one per request (any path, any model)."""
        with self._lock:
            self._script.extend(faults)

    def script_for(self, model: str, *faults: Fault) -> None:
        """Enqueue faults consumed only by requests for `model` (or for a path like "/v1/...")."""
        with self._lock:
            self._per_model.setdefault(model, deque()).extend(faults)

    def fail_always(self, model: str, fault: Fault | None) -> None:
        """Answer every request for `model` (or path) with `fault` (None removes the rule)."""
        with self._lock:
            if fault is None:
                self._always.pop(model, None)
            else:
                self._always[model] = fault

    @property
    def requests(self) -> list[RecordedRequest]:
        """Snapshot of the requests received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def wait_for_requests(self, n: int, timeout: float = 5.0) -> bool:
        """Block until at least `n` requests were received; False on timeout."""
        with self._lock:
            return self._lock.wait_for(lambda: len(self._requests) >= n, timeout)

    def _next_fault(self, model: str | None, path: str) -> Fault:
        keys = (path,) if model is None else (model, path)
        for key in keys:
            if key in self._always:
                return self._always[key]
        for key in keys:
            if self._per_model.get(key):
                return self._per_model[key].popleft()
        return self._script.popleft() if self._script else Fault()

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("content-length") or 0)
        raw = h.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        path = h.path.partition("?")[0]
        vendor, model = _route(path, body)
        headers = {k.lower(): v for k, v in h.headers.items()}
        hexid = uuid.uuid4().hex
        rid = f"req_011C{hexid[:20]}" if vendor == "anthropic" else f"req_{hexid}"
        req = RecordedRequest(
            h.command, path, h.path, headers, body, raw, time.time(), vendor, model, rid
        )
        with self._lock:
            self._requests.append(req)
            fault = self._next_fault(model, path)
            self._lock.notify_all()
        waiting = fault.hang or fault.delay
        if waiting and self._stopping.wait(None if fault.hang else fault.delay):
            fault = Fault(drop="close")  # stopped while waiting: never answer
        if fault.drop:
            h.close_connection = True
            if fault.drop == "reset":
                h.rfile.close()  # drop the makefile reference so close() really closes
                h.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                h.connection.close()
            return
        status, payload = fault.status, fault.body
        if status == 200 and payload is None:
            prompt, last_user = extract_texts(vendor, body)
            text = fault.text if fault.text is not None else self.reply_text
            text = "echo: " + last_user[:40] if text is None else text
            usage = self.usage if fault.usage == AUTO else fault.usage
            if usage == AUTO:
                usage = (max(1, len(prompt) // 4), max(1, len(text) // 4))
            if _streamed(vendor, path, body):
                self._stream(h, req, text, usage, fault)
                return
            status, payload = _success_body(req, text, usage)
        elif callable(payload):
            payload = payload(req)
        out: dict[str, str] = {}
        if isinstance(payload, dict):  # vendor JSON (not proxy HTML) carries the request-id
            if vendor in _ID_HEADER:
                out[_ID_HEADER[vendor]] = req.request_id
            gem = vendor == "gemini"  # Google pretty-prints JSON and names the charset
            data = json.dumps(payload, indent=2 if gem else None).encode()
            out["content-type"] = "application/json; charset=UTF-8" if gem else "application/json"
        else:
            data = str(payload or "").encode()
            out["content-type"] = "text/plain; charset=utf-8"
        out.update({k.lower(): str(v) for k, v in fault.headers.items()})
        reason = h.responses.get(status, ("Site Overloaded" if status == 529 else "",))[0]
        lines = [f"HTTP/1.1 {status} {reason}", *(f"{k}: {v}" for k, v in out.items())]
        lines.append(f"content-length: {len(data)}")
        if h.close_connection:
            lines.append("connection: close")
        h.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + data)  # one write

    def _stream(self, h: Any, req: RecordedRequest, text: str, usage: Any, fault: Fault) -> None:
        """Answer as the vendor streams: Server-Sent Events, each written and flushed on its
        own (chunked encoding), the usage where that vendor puts it."""
        head = ["HTTP/1.1 200 OK", "content-type: text/event-stream", "transfer-encoding: chunked"]
        if req.vendor in _ID_HEADER:
            head.append(f"{_ID_HEADER[req.vendor]}: {req.request_id}")
        h.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        h.wfile.flush()
        pieces = re.findall(r"\S+\s*", text) or [text]
        try:
            for n, event in enumerate(_sse_events(req, pieces, usage, fault)):
                if event is None:  # the connection drops here
                    h.close_connection = True
                    h.connection.shutdown(socket.SHUT_RDWR)
                    return
                if n and fault.piece_delay and self._stopping.wait(fault.piece_delay):
                    return
                # once the first piece is out (after the opening events), hold the rest
                held = fault.gate is not None and n == _AFTER_FIRST_PIECE.get(req.vendor)
                if held and not fault.gate.wait(GATE_TIMEOUT_S):
                    h.close_connection = True
                    h.connection.shutdown(socket.SHUT_RDWR)
                    return
                data = event.encode()
                h.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                h.wfile.flush()
            h.wfile.write(b"0\r\n\r\n")
            h.wfile.flush()
        except OSError:  # the client left early
            h.close_connection = True
            with self._lock:
                self.abandoned.append(req.request_id)
                self._lock.notify_all()


_SORRY = "The server had an error while processing your request. Sorry about that!"


def _tool_input(text: str) -> Any:
    """A tool's input is always JSON (decoding is constrained): the text, or it wrapped."""
    try:
        return json.loads(text)
    except ValueError:
        return {"text": text}


def _forced_tool(req: RecordedRequest) -> str | None:
    """The tool an Anthropic request forces (its answer is that tool's input), if any."""
    choice = (req.json or {}).get("tool_choice") if isinstance(req.json, dict) else None
    return choice.get("name") if isinstance(choice, dict) and choice.get("type") == "tool" else None


def _streamed(vendor: str, path: str, body: Any) -> bool:
    if vendor == "gemini":
        return path.endswith(":streamGenerateContent")
    return isinstance(body, dict) and body.get("stream") is True


def _sse_events(req: RecordedRequest, pieces: list[str], usage: Any, fault: Fault) -> Iterator:
    """The events of one streamed answer (None where the connection is to drop)."""
    vendor, hexid, model = req.vendor, uuid.uuid4().hex, req.model
    n_in, n_out = usage if usage is not None else (None, None)
    stop_at = len(pieces) if fault.error_after is None else fault.error_after
    cut_at = fault.cut_after

    def data(obj: Any, event: str | None = None) -> str:
        head = f"event: {event}\n" if event else ""
        sep = "\r\n\r\n" if vendor == "gemini" else "\n\n"
        return f"{head}data: {json.dumps(obj)}{sep}"

    if vendor == "openai":
        base = {"id": f"chatcmpl-{hexid[:29]}", "object": "chat.completion.chunk",
                "created": int(req.timestamp), "model": model}  # fmt: skip
        yield data({**base, "choices": [{"index": 0, "delta": {"role": "assistant",
                    "content": ""}, "finish_reason": None}], "usage": None})  # fmt: skip
        for i, piece in enumerate(pieces):
            if i == cut_at:
                yield None
            if i == stop_at:
                yield data({"error": {"message": _SORRY, "type": "server_error"}})
                return
            yield data({**base, "choices": [{"index": 0, "delta": {"content": piece},
                        "finish_reason": None}], "usage": None})  # fmt: skip
        yield data({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                    "usage": None})  # fmt: skip
        include = (req.json or {}).get("stream_options", {}).get("include_usage")
        if include and n_in is not None:
            yield data({**base, "choices": [], "usage": {"prompt_tokens": n_in,
                        "completion_tokens": n_out, "total_tokens": n_in + n_out}})  # fmt: skip
        yield "data: [DONE]\n\n"
    elif vendor == "anthropic":
        start_usage = {"input_tokens": n_in, "output_tokens": 1} if n_in is not None else {}
        yield data({"type": "message_start", "message": {"id": f"msg_01{hexid[:22]}",
                    "type": "message", "role": "assistant", "model": model, "content": [],
                    "stop_reason": None, "stop_sequence": None, "usage": start_usage}},
                   "message_start")  # fmt: skip
        tool = _forced_tool(req)
        block = {"type": "text", "text": ""}
        if tool:
            block = {"type": "tool_use", "id": f"toolu_01{hexid[:22]}", "name": tool, "input": {}}
        yield data(
            {"type": "content_block_start", "index": 0, "content_block": block},
            "content_block_start",
        )
        yield data({"type": "ping"}, "ping")
        for i, piece in enumerate(pieces):
            if i == cut_at:
                yield None
            if i == stop_at:
                yield data({"type": "error", "error": {"type": "overloaded_error",
                            "message": "Overloaded"}}, "error")  # fmt: skip
                return
            delta = {"type": "text_delta", "text": piece}
            if tool:
                delta = {"type": "input_json_delta", "partial_json": piece}
            yield data(
                {"type": "content_block_delta", "index": 0, "delta": delta},
                "content_block_delta",
            )
        yield data({"type": "content_block_stop", "index": 0}, "content_block_stop")
        end_usage = {"output_tokens": n_out} if n_out is not None else {}
        end = "tool_use" if tool else "end_turn"
        yield data({"type": "message_delta", "delta": {"stop_reason": end,
                    "stop_sequence": None}, "usage": end_usage}, "message_delta")  # fmt: skip
        yield data({"type": "message_stop"}, "message_stop")
    else:  # gemini: every chunk carries the cumulative usageMetadata
        for i, piece in enumerate(pieces):
            if i == cut_at:
                yield None
            if i == stop_at:
                yield data({"error": {"code": 503, "message": "The model is overloaded."
                            " Please try again later.", "status": "UNAVAILABLE"}})  # fmt: skip
                return
            candidate = {"content": {"parts": [{"text": piece}], "role": "model"}, "index": 0}
            if i == len(pieces) - 1:
                candidate["finishReason"] = "STOP"
            chunk: dict = {"candidates": [candidate], "modelVersion": model,
                           "responseId": hexid[:22]}  # fmt: skip
            if n_in is not None:
                done = max(1, round(n_out * (i + 1) / len(pieces)))
                chunk["usageMetadata"] = {"promptTokenCount": n_in, "candidatesTokenCount": done,
                                          "totalTokenCount": n_in + done}  # fmt: skip
            yield data(chunk)


@contextmanager
def running_server() -> Iterator[VendorServer]:
    """Start a VendorServer for the duration of the with-block (fixture-friendly)."""
    server = VendorServer().start()
    try:
        yield server
    finally:
        server.stop()
