"""Error recovery against the loopback vendor server: one test per fault case.

stamina runs in testing mode (no real waits); the waits recovery chose are asserted through
its recovery.retry events. Breaker timing uses the fake clock.
"""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import vendor_server as vs

from ims_kit.errors import AllModelsFailed, MissingKeyError, ProviderError
from ims_kit.records import ModelSpec

KEYS = {
    "OPENAI_API_KEY": "sk-canary-1234567890abcdefWXYZ",
    "ANTHROPIC_API_KEY": "sk-ant-canary-abcdef123456",
    "GEMINI_API_KEY": "AIzaCanaryKey0123456789abcdef",
}


@pytest.fixture
def lab(kit, vendor, monkeypatch, clock):
    """A kit whose models all live on the loopback server, with fake keys and a fake clock."""
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", vendor.url)
    monkeypatch.setenv("GEMINI_BASE_URL", vendor.url)
    common = dict(
        context_window=100_000,
        max_output_tokens=1_000,
        cost_per_mil_in=1.0,
        cost_per_mil_out=2.0,
        quality=80,
    )
    for model_id, vendor_name, provider in [
        ("primary", "OpenAI", "openai"),
        ("backup", "OpenAI", "openai"),
        ("claude", "Anthropic", "anthropic"),
        ("gem", "Google", "gemini"),
    ]:
        base = f"{vendor.url}/v1" if provider == "openai" else None
        kit.registry.register(
            ModelSpec(
                model_id=model_id, vendor=vendor_name, provider=provider, base_url=base, **common
            )
        )
    kit.circuits.clock = clock
    return kit


def hits(server, model):
    return sum(1 for r in server.requests if r.model == model)


def events(kit, kind):
    return [e for e in reversed(kit.events.recent(limit=500)) if e.kind == kind]


def ask(kit, model="primary", fallbacks=("backup",), prompt="hello there"):
    return kit.ask(prompt, model=model, fallbacks=list(fallbacks))


def test_429_with_retry_after_ms_then_success_retries_the_same_model(lab, vendor):
    """A short Retry-After is honoured (capped) and the same model answers."""
    vendor.script_for("primary", vs.openai_rate_limit(retry_after_ms="1500"))
    answer = ask(lab)
    assert answer.model_id == "primary" and hits(vendor, "primary") == 2
    assert [a.error_kind for a in answer.attempts] == ["RATE_LIMIT", None]
    assert events(lab, "recovery.retry")[0].payload["wait_s"] == 1.5


def test_insufficient_quota_falls_back_at_once(lab, vendor):
    """Exhausted quota is never retried: the next model is called straight away."""
    vendor.script_for("primary", vs.openai_insufficient_quota())
    answer = ask(lab, fallbacks=["claude"])
    assert answer.model_id == "claude" and hits(vendor, "primary") == 1
    assert answer.attempts[0].action == "fallback"
    assert events(lab, "recovery.fallback")[0].subject == "primary"


def test_quota_skips_the_other_models_of_the_same_account(lab, vendor):
    """After insufficient_quota on one OpenAI model the other OpenAI model is not tried."""
    vendor.script_for("primary", vs.openai_insufficient_quota())
    answer = ask(lab, fallbacks=["backup", "claude"])
    assert answer.model_id == "claude" and hits(vendor, "backup") == 0


@pytest.mark.parametrize("header", [{"retry_after": "3600"}, {"retry_after_ms": "3600000"}])
def test_retry_after_of_an_hour_is_not_waited(lab, vendor, header):
    """A Retry-After above the cap means fall back now, not sleep."""
    vendor.script_for("primary", vs.openai_rate_limit(**header))
    answer = ask(lab)
    assert answer.model_id == "backup" and hits(vendor, "primary") == 1
    assert "Retry-After 3600s > cap" in answer.attempts[0].detail


def test_retry_after_as_an_http_date(lab, vendor):
    """An HTTP-date Retry-After a few seconds ahead is waited for, then the model retried."""
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=4), usegmt=True)
    vendor.script_for("primary", vs.openai_rate_limit(retry_after=when))
    answer = ask(lab)
    assert answer.model_id == "primary"
    assert 0 < events(lab, "recovery.retry")[0].payload["wait_s"] <= 4


@pytest.mark.parametrize("garbage", ["soon", "-5", "nan", ""])
def test_malformed_retry_after_falls_back_at_once(lab, vendor, garbage):
    """Values that are not a delay are ignored: without a usable Retry-After, fall back."""
    vendor.script_for("primary", vs.openai_rate_limit(retry_after=garbage))
    answer = ask(lab)
    assert answer.model_id == "backup" and hits(vendor, "primary") == 1
    assert "no Retry-After" in answer.attempts[0].detail


def test_anthropic_529_repeated_retries_then_falls_back_and_opens_the_breaker(lab, vendor):
    """Overload is retried with backoff (2 retries), then the next model; 3 failures open."""
    vendor.fail_always("claude-api", None)
    vendor.fail_always("claude", vs.anthropic_overloaded())
    answer = ask(lab, model="claude", fallbacks=["primary"])
    assert answer.model_id == "primary" and hits(vendor, "claude") == 3
    assert [a.error_kind for a in answer.attempts] == ["OVERLOAD"] * 3 + [None]
    assert len(events(lab, "recovery.retry")) == 2
    assert lab.recovery.get_circuit_status()["claude"]["state"] == "open"


def test_three_failures_open_the_breaker_and_the_fourth_request_makes_no_call(lab, vendor):
    """Once open, a request goes straight to the fallback without touching the model."""
    vendor.fail_always("primary", vs.openai_server_error())
    ask(lab)
    assert hits(vendor, "primary") == 3
    answer = ask(lab)
    assert hits(vendor, "primary") == 3 and answer.model_id == "backup"
    assert answer.attempts[0].error_kind == "CIRCUIT_OPEN"


def test_after_the_open_period_one_probe_goes_through(lab, vendor, clock):
    """At +60.001 s a single probe reaches the model; its success closes the circuit."""
    vendor.fail_always("primary", vs.openai_server_error())
    ask(lab)
    vendor.fail_always("primary", None)
    clock.advance(59.999)
    assert ask(lab).model_id == "backup"
    clock.advance(0.002)
    assert ask(lab).model_id == "primary" and hits(vendor, "primary") == 4
    assert lab.recovery.get_circuit_status()["primary"]["state"] == "closed"


def test_gemini_429_with_retry_info_beyond_the_cap_falls_back(lab, vendor):
    """RetryInfo 17s exceeds the 10 s cap: fall back at once; 3s is waited for."""
    vendor.script_for("gem", vs.gemini_quota(retry_delay="17s"))
    assert ask(lab, model="gem", fallbacks=["primary"]).model_id == "primary"
    vendor.script_for("gem", vs.gemini_quota(retry_delay="3s"))
    answer = ask(lab, model="gem", fallbacks=["primary"])
    assert answer.model_id == "gem"
    assert events(lab, "recovery.retry")[-1].payload["wait_s"] == 3


def test_gemini_per_day_quota_is_not_retryable(lab, vendor):
    """The per-day quota is exhausted for today: RATE_LIMIT, not retryable, fall back."""
    vendor.script_for("gem", vs.gemini_quota(per_day=True, retry_delay="3s"))
    answer = ask(lab, model="gem", fallbacks=["primary"])
    assert answer.model_id == "primary" and hits(vendor, "gem") == 1
    assert answer.attempts[0].error_kind == "RATE_LIMIT"


@pytest.mark.parametrize(
    "fault, kind",
    [
        (vs.openai_server_error, "OVERLOAD"),
        (vs.openai_unavailable, "OVERLOAD"),
        (vs.gemini_deadline, "TIMEOUT"),
        (vs.html_502, "OVERLOAD"),
    ],
)
def test_server_errors_are_retried_then_succeed(lab, vendor, fault, kind):
    """500, 503, 504 and an HTML 502 are transient: one retry, then the same model answers."""
    vendor.script_for("primary", fault())
    answer = ask(lab)
    assert answer.model_id == "primary" and hits(vendor, "primary") == 2
    assert answer.attempts[0].error_kind == kind


@pytest.mark.parametrize(
    "model, fault",
    [
        ("primary", vs.openai_context_length),
        ("claude", vs.anthropic_prompt_too_long),
        ("gem", vs.gemini_too_many_tokens),
    ],
)
def test_each_context_overflow_shape_truncates_and_resends(lab, vendor, model, fault):
    """The prompt is cut to fit and sent again to the same model; the answer says so."""
    vendor.script_for(model, fault())
    prompt = "Start of the instructions. " + "filler text " * 3_000 + " The question?"
    answer = lab.ask(prompt, model=model)
    sent = [r for r in vendor.requests if r.model == model]
    texts = [vs.extract_texts(r.vendor, r.json)[0] for r in sent]
    assert len(sent) == 2 and len(texts[1]) < len(texts[0])
    assert texts[1].startswith("Start of the instructions.") and texts[1].endswith("question?")
    assert answer.truncated and events(lab, "recovery.truncated")


def test_overflow_that_persists_falls_back_to_a_larger_window(lab, vendor):
    """When truncation does not help, only a candidate with a larger window is tried."""
    lab.registry.register(
        ModelSpec(
            model_id="big", vendor="Google", provider="gemini", context_window=1_000_000, quality=80
        )
    )
    vendor.fail_always("primary", vs.openai_context_length())
    answer = lab.ask("x " * 2_000, model="primary", fallbacks=["backup", "big"])
    assert answer.model_id == "big" and hits(vendor, "backup") == 0
    assert hits(vendor, "primary") == 3  # the first try and two truncations


def test_invalid_parameter_is_not_retried_nor_sent_elsewhere(lab, vendor):
    """400 invalid parameter fails the request at once with the provider's details."""
    vendor.script_for("primary", vs.openai_invalid_param("temperature", "bad temperature"))
    with pytest.raises(AllModelsFailed) as err:
        ask(lab)
    assert hits(vendor, "primary") == 1 and hits(vendor, "backup") == 0
    assert err.value.attempts[0].error_kind == "INVALID_REQUEST"
    assert err.value.attempts[0].status == 400


@pytest.mark.parametrize(
    "model, fault",
    [
        ("primary", vs.openai_invalid_api_key),
        ("claude", vs.anthropic_auth_error),
        ("claude", vs.anthropic_permission_error),
        ("gem", vs.gemini_invalid_key),
        ("gem", vs.gemini_permission_denied),
    ],
)
def test_authentication_fails_fast_and_falls_back_to_another_vendor(lab, vendor, model, fault):
    """401, 403 and API_KEY_INVALID are never retried; another vendor's model is tried."""
    vendor.fail_always(model, fault())
    other = "claude" if model != "claude" else "gem"
    answer = lab.ask("hi", model=model, fallbacks=["backup", other])
    assert hits(vendor, model) == 1 and answer.attempts[0].error_kind == "AUTHENTICATION"
    assert answer.model_id == (other if model == "primary" else "backup")


def test_connection_refused_is_transient_then_falls_back(lab, vendor):
    """A closed port: retried as a transient failure, then the next model."""
    lab.registry.register(
        ModelSpec(
            model_id="down",
            vendor="Meta",
            provider="openai_compatible",
            base_url="http://127.0.0.1:9/v1",
            context_window=100_000,
        )
    )
    answer = lab.ask("hi", model="down", fallbacks=["primary"])
    assert answer.model_id == "primary"
    assert [a.error_kind for a in answer.attempts[:3]] == ["OVERLOAD"] * 3


def test_read_timeout_is_retried(lab, vendor):
    """A hanging server is cut by the client timeout, classified TIMEOUT and retried."""
    from ims_kit.providers import get_provider

    lab.set_provider("openai", get_provider("openai", timeout_s=0.3))
    vendor.script_for("primary", vs.hang(5))
    answer = ask(lab)
    assert answer.model_id == "primary" and answer.attempts[0].error_kind == "TIMEOUT"


def test_every_candidate_failing_lists_each_try_and_logs_every_attempt(lab, vendor):
    """AllModelsFailed names each model, kind, status and request id; one usage row each."""
    vendor.fail_always("primary", vs.openai_unavailable())
    vendor.fail_always("claude", vs.anthropic_overloaded())
    with pytest.raises(AllModelsFailed) as err:
        lab.ask("hi", model="primary", fallbacks=["claude"])
    tried = err.value.attempts
    assert [a.model_id for a in tried] == ["primary"] * 3 + ["claude"] * 3
    assert all(a.status in (503, 529) for a in tried)
    assert any(a.vendor_request_id for a in tried)
    assert "primary: OVERLOAD x3 (HTTP 503)" in str(err.value)
    assert str(err.value).count("primary:") == 1
    totals = lab.usage.totals()
    assert (totals["requests"], totals["failures"]) == (1, 1)
    assert (totals["attempts"], totals["failed_attempts"]) == (6, 6)
    rows = lab.usage.records(request_id=err.value.request_id)
    assert [r.attempt for r in rows] == [1, 2, 3, 4, 5, 6]


def test_usage_rows_record_attempt_numbers_and_fallback_origin(lab, vendor):
    """Rows of one request are numbered, and the fallback row says which model it replaced."""
    vendor.script_for("primary", vs.openai_insufficient_quota())
    ask(lab, fallbacks=["claude"])
    rows = lab.usage.records()
    assert [(r.model_id, r.attempt, r.success, r.fallback_from) for r in rows] == [
        ("primary", 1, False, None),
        ("claude", 2, True, "primary"),
    ]
    assert rows[0].error_kind == "RATE_LIMIT"


def test_missing_key_names_the_variable_and_makes_no_request(lab, vendor, monkeypatch):
    """Without OPENAI_API_KEY the call fails with the variable's name, nothing is sent."""
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(MissingKeyError, match="OPENAI_API_KEY"):
        ask(lab)
    assert vendor.requests == []


def test_missing_key_skips_to_a_candidate_that_has_one(lab, vendor, monkeypatch):
    """A chain with a keyless model moves on to the next model with a key."""
    monkeypatch.delenv("OPENAI_API_KEY")
    answer = lab.ask("hi", model="primary", fallbacks=["claude"])
    assert answer.model_id == "claude" and answer.attempts[0].error_kind == "MISSING_KEY"


def test_the_canary_key_is_nowhere_in_the_database_or_logs(lab, vendor, caplog):
    """Keys never reach the database file (with its WAL), the events or the logs."""
    caplog.set_level("DEBUG")
    vendor.script_for("primary", vs.openai_invalid_api_key())
    ask(lab, fallbacks=["claude"])
    lab.db.conn.commit()
    blobs = b"".join(p.read_bytes() for p in _db_files(lab.path))
    for key in KEYS.values():
        assert key.encode() not in blobs
        assert key[-6:].encode() not in blobs
        assert key not in caplog.text
    dumped = " ".join(str(e.payload) for e in lab.events.recent(limit=100))
    assert "canary" not in dumped.lower()


def _db_files(path):
    from pathlib import Path

    return [p for p in (Path(path), Path(f"{path}-wal")) if p.exists()]


def test_ask_async_recovers_the_same_way(lab, vendor):
    """The async path retries, falls back and logs like the sync one."""
    vendor.script_for("primary", vs.openai_insufficient_quota())
    answer = asyncio.run(lab.ask_async("hi", model="primary", fallbacks=["claude"]))
    assert answer.model_id == "claude" and len(lab.usage.records()) == 2


def test_execute_with_recovery_protects_a_user_function(lab):
    """A user's own async call is retried and falls back with the same rules."""
    calls = []

    async def my_api_call(model_id, prompt):
        calls.append(model_id)
        if model_id == "primary":
            raise ProviderError("Overloaded", provider="mine", status=529)
        return {"text": f"ok from {model_id}", "usage": {"input_tokens": 7, "output_tokens": 3}}

    result = asyncio.run(
        lab.recovery.execute_with_recovery(
            execution_fn=my_api_call, model_id="primary", prompt="hi", fallbacks=["backup"]
        )
    )
    assert result["text"] == "ok from backup" and calls == ["primary"] * 3 + ["backup"]
    assert lab.events.count("model.queried") == 0  # named fallbacks: no ranking was run
    row = lab.usage.records()[-1]
    assert (row.model_id, row.tokens_in, row.tokens_out, row.token_source) == (
        "backup",
        7,
        3,
        "provider",
    )


def test_prompts_are_not_stored_unless_asked(lab, vendor, db_path):
    """By default no prompt or answer text reaches the usage table."""
    ask(lab, prompt="very private words")
    with sqlite3.connect(db_path) as conn:
        assert (
            conn.execute("SELECT count(*) FROM usage WHERE prompt IS NOT NULL").fetchone()[0] == 0
        )
    lab.usage.store_text = True
    ask(lab, prompt="shareable words")
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT prompt FROM usage WHERE prompt IS NOT NULL").fetchone()[0] == (
            "shareable words"
        )


def test_a_bug_in_the_call_is_raised_not_treated_as_a_model_failure(lab, vendor):
    """A non-provider exception reaches the caller: no fallback, no usage row, no breaker."""

    async def buggy(model_id, prompt):
        return prompt.uper()  # AttributeError: a bug in the user's function

    with pytest.raises(AttributeError):
        asyncio.run(
            lab.recovery.execute_with_recovery(
                execution_fn=buggy, model_id="primary", prompt="hi", fallbacks=["backup"]
            )
        )
    assert lab.usage.totals()["requests"] == 0
    assert lab.recovery.get_circuit_status() == {}


def test_an_unknown_provider_name_is_a_clear_error_and_opens_nothing(lab):
    """`provider='bogus'` raises InvalidInputError at once and leaves no trace."""
    from ims_kit.errors import InvalidInputError

    for _ in range(3):
        with pytest.raises(InvalidInputError, match="unknown provider 'bogus'"):
            lab.ask("hi", model="primary", provider="bogus")
    assert lab.usage.totals()["requests"] == 0 and lab.recovery.get_circuit_status() == {}


def test_retry_after_is_what_stamina_actually_waits(lab, vendor, monkeypatch):
    """Outside testing mode the wait slept is the (capped) Retry-After, nothing more."""
    import time

    import stamina

    slept = []
    monkeypatch.setattr(time, "sleep", lambda s: slept.append(s))
    vendor.script_for("primary", vs.openai_rate_limit(retry_after_ms="1500"))
    with stamina.set_testing(False):
        assert ask(lab).model_id == "primary"
    assert slept == [1.5]


def test_overload_backoff_is_exponential_with_jitter(lab, vendor, monkeypatch):
    """Two overloads: waits of 0.5 s then 1 s, each plus up to 0.5 s of jitter."""
    import time

    import stamina

    slept = []
    monkeypatch.setattr(time, "sleep", lambda s: slept.append(s))
    vendor.script_for("primary", vs.openai_unavailable(), vs.openai_unavailable())
    with stamina.set_testing(False):
        assert ask(lab).model_id == "primary"
    assert len(slept) == 2
    assert 0.5 <= slept[0] <= 1.0 and 1.0 <= slept[1] <= 1.5


def test_a_cancelled_probe_through_ask_async_counts_and_frees_the_slot(lab, clock):
    """Cancelling the half-open probe call reopens the circuit; the next period probes again."""
    from ims_kit.errors import ErrorKind as EK

    for _ in range(3):
        lab.circuits.record_failure(lab.circuits.allow("primary"), EK.OVERLOAD)
    clock.advance(61)
    started = asyncio.Event()

    class Hanging:
        async def acomplete(self, spec, prompt, **kw):
            started.set()
            await asyncio.Event().wait()

        def close(self):
            pass

    lab.set_provider("openai", Hanging())

    async def scenario():
        task = asyncio.create_task(lab.ask_async("hi", model="primary"))
        await started.wait()
        assert lab.circuits.status()["primary"]["state"] == "half_open"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert lab.circuits.status()["primary"]["state"] == "open"
    clock.advance(61)
    assert lab.circuits.allow("primary").probe


def test_one_kit_shared_by_threads_keeps_every_row(kit):
    """Eight threads calling through one Kit: no transaction mix-ups, every attempt stored."""
    import threading

    kit.registry.seed()
    errors = []

    def work():
        try:
            for _ in range(15):
                kit.ask("What is 2+2?", provider="simulated")
        except Exception as exc:  # pragma: no cover - the assertion below shows it
            errors.append(repr(exc))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and kit.usage.totals()["requests"] == 120
