"""Self-test of the fake vendor server used by the adapter and recovery tests."""

from __future__ import annotations

import threading
import time

import httpx2 as httpx  # the sync client ims_kit uses
import pytest
import vendor_server as vs

OPENAI_KEY = "sk-abc12345678901234567890wxyz"
CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello world"}]}
CLAUDE = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 64,
    "system": "be brief",
    "messages": [{"role": "user", "content": [{"type": "text", "text": "hi claude"}]}],
}
GEMINI = {"contents": [{"role": "user", "parts": [{"text": "hi gemini"}]}]}
GEMINI_PATH = "/v1beta/models/gemini-2.0-flash:generateContent"


@pytest.fixture
def server():
    with vs.running_server() as s:
        yield s


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.url, timeout=5) as c:
        yield c


def test_openai_success(client):
    """A chat completion returns the OpenAI success shape with echo text and computed usage."""
    r = client.post("/v1/chat/completions", json=CHAT)
    assert r.status_code == 200
    assert r.headers["x-request-id"].startswith("req_")
    body = r.json()
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    assert body["model"] == "gpt-4o"
    choice = body["choices"][0]
    assert choice["message"] == {
        "role": "assistant",
        "content": "echo: hello world",
        "refusal": None,
        "annotations": [],
    }
    assert choice["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 2, "completion_tokens": 4, "total_tokens": 6}


def test_anthropic_success(client):
    """A Messages call returns the Anthropic success shape; system text counts toward input."""
    r = client.post("/v1/messages", json=CLAUDE, headers={"x-api-key": "k"})
    assert r.status_code == 200
    assert r.headers["request-id"].startswith("req_")
    body = r.json()
    assert body["type"] == "message" and body["id"].startswith("msg_")
    assert body["content"] == [{"type": "text", "text": "echo: hi claude"}]
    assert body["stop_reason"] == "end_turn"
    # prompt text is "be brief\nhi claude" (18 chars) -> 4 tokens; reply 15 chars -> 3
    assert body["usage"] == {"input_tokens": 4, "output_tokens": 3}


def test_gemini_success(server, client):
    """generateContent returns the Gemini success shape and the model comes from the URL."""
    r = client.post(GEMINI_PATH, json=GEMINI, headers={"x-goog-api-key": "g"})
    assert r.status_code == 200
    body = r.json()
    cand = body["candidates"][0]
    assert cand["content"] == {"parts": [{"text": "echo: hi gemini"}], "role": "model"}
    assert cand["finishReason"] == "STOP" and cand["index"] == 0
    assert body["usageMetadata"] == {
        "promptTokenCount": 2,
        "candidatesTokenCount": 3,
        "totalTokenCount": 5,
    }
    assert body["modelVersion"] == "gemini-2.0-flash" and body["responseId"]
    assert server.requests[-1].model == "gemini-2.0-flash"


def test_fixed_reply_and_usage_overrides(server, client):
    """A fixed reply text, explicit usage and omitted usage are all honoured."""
    server.reply_text = "fixed"
    server.usage = (7, 3)
    assert client.post("/v1/chat/completions", json=CHAT).json()["usage"]["total_tokens"] == 10
    server.usage = None
    body = client.post("/v1/messages", json=CLAUDE).json()
    assert "usage" not in body and body["content"][0]["text"] == "fixed"
    server.script(vs.ok(text="once", usage=(1, 1)))
    body = client.post(GEMINI_PATH, json=GEMINI).json()
    assert body["candidates"][0]["content"]["parts"][0]["text"] == "once"
    assert body["usageMetadata"]["totalTokenCount"] == 2


def test_scripted_fault_then_success(server, client):
    """Scripted faults are consumed FIFO, one per request, then requests succeed again."""
    server.script(vs.openai_rate_limit(retry_after_ms=250, retry_after="soon"), vs.html_502())
    r = client.post("/v1/chat/completions", json=CHAT)
    assert r.status_code == 429
    assert r.headers["retry-after-ms"] == "250" and r.headers["retry-after"] == "soon"
    err = r.json()["error"]
    assert err["code"] == "rate_limit_exceeded" and err["type"] == "tokens"
    assert "gpt-4o" in err["message"]
    r = client.post("/v1/chat/completions", json=CHAT)
    assert r.status_code == 502 and r.headers["content-type"] == "text/html"
    assert r.text == "<html><body><h1>502 Bad Gateway</h1></body></html>"
    assert client.post("/v1/chat/completions", json=CHAT).status_code == 200


def test_error_shapes_match_vendors(client, server):
    """Anthropic, Gemini and OpenAI error bodies carry the fields clients parse."""
    server.script(
        vs.anthropic_overloaded(),
        vs.gemini_quota(per_day=True, retry_delay="17s"),
        vs.openai_insufficient_quota(),
    )
    r = client.post("/v1/messages", json=CLAUDE)
    assert r.status_code == 529
    assert r.json() == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
        "request_id": r.headers["request-id"],
    }
    r = client.post(GEMINI_PATH, json=GEMINI)
    err = r.json()["error"]
    assert (r.status_code, err["code"], err["status"]) == (429, 429, "RESOURCE_EXHAUSTED")
    by_type = {d["@type"].rsplit(".", 1)[-1]: d for d in err["details"]}
    assert by_type["RetryInfo"]["retryDelay"] == "17s"
    quota_id = by_type["QuotaFailure"]["violations"][0]["quotaId"]
    assert quota_id == "GenerateRequestsPerDayPerProjectPerModel-FreeTier"
    err = client.post("/v1/chat/completions", json=CHAT).json()["error"]
    assert err["type"] == err["code"] == "insufficient_quota" and err["param"] is None


def test_script_for_model(server, client):
    """Per-model and per-path scripts are consumed only by matching requests."""
    server.script_for("gemini-2.0-flash", vs.gemini_overloaded())
    assert client.post("/v1/chat/completions", json=CHAT).status_code == 200
    r = client.post(GEMINI_PATH, json=GEMINI)
    assert r.status_code == 503 and r.json()["error"]["status"] == "UNAVAILABLE"
    assert client.post(GEMINI_PATH, json=GEMINI).status_code == 200
    server.script_for("/v1/messages", vs.anthropic_api_error())
    assert client.post("/v1/chat/completions", json=CHAT).status_code == 200
    assert client.post("/v1/messages", json=CLAUDE).json()["error"]["type"] == "api_error"


def test_fail_always(server, client):
    """fail_always answers every request for one model with the fault until removed."""
    server.fail_always("claude-sonnet-4-5", vs.anthropic_rate_limit(retry_after="3"))
    for _ in range(3):
        r = client.post("/v1/messages", json=CLAUDE)
        assert r.status_code == 429 and r.headers["retry-after"] == "3"
        assert r.json()["error"]["type"] == "rate_limit_error"
    assert client.post("/v1/chat/completions", json=CHAT).status_code == 200
    server.fail_always("claude-sonnet-4-5", None)
    assert client.post("/v1/messages", json=CLAUDE).status_code == 200


def test_recorded_requests(server, client):
    """Each request is recorded with method, paths, lower-case headers, JSON body and time."""
    before = time.time()
    client.post(
        "/v1/messages",
        json=CLAUDE,
        headers={"X-Api-Key": "sk-ant-123", "Anthropic-Version": "2023-06-01"},
    )
    client.post(GEMINI_PATH + "?alt=json", json=GEMINI, headers={"x-goog-api-key": "AIza-1"})
    first, second = server.requests
    assert first.method == "POST" and first.path == "/v1/messages"
    assert first.headers["x-api-key"] == "sk-ant-123"
    assert first.headers["anthropic-version"] == "2023-06-01"
    assert first.json == CLAUDE and first.vendor == "anthropic"
    assert first.model == "claude-sonnet-4-5"
    assert before <= first.timestamp <= second.timestamp <= time.time()
    assert second.path == GEMINI_PATH and second.raw_path == GEMINI_PATH + "?alt=json"
    assert second.headers["x-goog-api-key"] == "AIza-1"


def test_openai_invalid_api_key_echoes_masked_key(client, server):
    """The 401 message masks the received key as first 8 chars + stars + last 4."""
    server.script(vs.openai_invalid_api_key())
    r = client.post(
        "/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {OPENAI_KEY}"}
    )
    assert r.status_code == 401
    err = r.json()["error"]
    assert err["message"] == (
        "Incorrect API key provided: sk-abc12******************wxyz. "
        "You can find your API key at https://platform.openai.com/account/api-keys."
    )
    assert (err["type"], err["code"], err["param"]) == (
        "invalid_request_error",
        "invalid_api_key",
        None,
    )


def test_delayed_answer(server):
    """hang(seconds) delays the answer: a shorter client timeout gives up, a longer one gets it."""
    server.script(vs.hang(0.5), vs.hang(0.5))
    impatient = httpx.Client(base_url=server.url, timeout=0.05)
    with impatient, pytest.raises(httpx.ReadTimeout):
        impatient.post("/v1/chat/completions", json=CHAT)
    with httpx.Client(base_url=server.url, timeout=10) as patient:
        assert patient.post("/v1/chat/completions", json=CHAT).status_code == 200


def test_hang_cut_by_client_timeout_and_stop_is_fast():
    """A never-answering request is cut by the client timeout and stop() still returns fast."""
    server = vs.VendorServer().start()
    server.script(vs.hang(), vs.hang())
    with httpx.Client(base_url=server.url, timeout=0.3) as c, pytest.raises(httpx.ReadTimeout):
        c.post("/v1/chat/completions", json=CHAT)
    errors: list[Exception] = []

    def blocked() -> None:  # a second hung request still waiting when stop() runs
        try:
            httpx.post(server.url + "/v1/messages", json=CLAUDE, timeout=30)
        except httpx.HTTPError as exc:
            errors.append(exc)

    t = threading.Thread(target=blocked)
    t.start()
    assert server.wait_for_requests(2)
    server.stop()  # returns at once: the hung request is dropped, not waited for
    t.join(timeout=5)
    assert not t.is_alive() and isinstance(errors[0], httpx.RemoteProtocolError)


def test_disconnect_and_reset(server, client):
    """Dropping the connection without a response surfaces as httpx transport errors."""
    server.script(vs.disconnect(), vs.connection_reset())
    with pytest.raises(httpx.RemoteProtocolError):
        client.post("/v1/chat/completions", json=CHAT)
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        client.post("/v1/chat/completions", json=CHAT)
    assert client.post("/v1/chat/completions", json=CHAT).status_code == 200


def test_reset(server, client):
    """reset() clears scripts, per-model rules, overrides and recorded requests."""
    server.script(vs.openai_server_error())
    server.script_for("gpt-4o", vs.openai_unavailable())
    server.fail_always("gpt-4o", vs.openai_model_not_found())
    server.reply_text = "x"
    client.post("/v1/chat/completions", json=CHAT)
    server.reset()
    assert server.requests == []
    r = client.post("/v1/chat/completions", json=CHAT)
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] != "x"
    assert len(server.requests) == 1


def test_unknown_path_is_404(client):
    """An unrouted path answers 404 in OpenAI's invalid-URL shape."""
    r = client.post("/v2/nothing", json={})
    assert r.status_code == 404
    assert r.json()["error"]["message"] == "Invalid URL (POST /v2/nothing)"
