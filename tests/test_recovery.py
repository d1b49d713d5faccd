"""Error recovery against the loopback vendor server: one test per fault case, each run through
``kit.ask`` and ``kit.ask_async`` (the ``ask`` fixture is parametrized over both).

stamina runs in testing mode (no real waits); the waits recovery chose are asserted through
its recovery.retry events. Breaker timing uses the fake clock.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import vendor_server as vs
from lab_setup import KEYS, build_lab, events, hits, register

from ims_kit.errors import AllModelsFailed, InvalidInputError, MissingKeyError, ProviderError


@pytest.fixture
def lab(kit, vendor, monkeypatch, clock):
    """A kit whose models all live on the loopback server, with fake keys and a fake clock."""
    return build_lab(kit, vendor, monkeypatch, clock)


@pytest.fixture(params=["sync", "async"])
def ask(request, lab):
    """``ask(model=..., fallbacks=..., prompt=..., **kw)`` through kit.ask or kit.ask_async."""

    def run(model="primary", fallbacks=("backup",), prompt="hello there", **kw):
        kw = {"model": model, "fallbacks": None if fallbacks is None else list(fallbacks), **kw}
        if request.param == "sync":
            return lab.ask(prompt, **kw)
        return asyncio.run(lab.ask_async(prompt, **kw))

    run.mode = request.param
    return run


# -- rate limits and what the vendor says about waiting ----------------------------------------
def test_429_with_retry_after_ms_then_success_retries_the_same_model(lab, vendor, ask):
    """A short Retry-After is honoured (capped) and the same model answers."""
    vendor.script_for("primary", vs.openai_rate_limit(retry_after_ms="1500"))
    answer = ask()
    assert answer.model_id == "primary" and hits(vendor, "primary") == 2
    assert [a.error_kind for a in answer.attempts] == ["RATE_LIMIT", None]
    assert events(lab, "recovery.retry")[0].payload["wait_s"] == 1.5


@pytest.mark.parametrize(("hint", "wait"), [("644ms", 0.644), ("3.89s", 3.89), ("1m2.5s", None)])
def test_a_try_again_in_hint_counts_as_a_retry_after(lab, vendor, ask, hint, wait):
    """OpenAI's "Please try again in 644ms" is a wait hint; beyond the cap it is not waited."""
    vendor.script_for("primary", vs.openai_rate_limit(hint=hint))
    answer = ask()
    if wait is None:  # 62.5 s > the 10 s cap: the next candidate now
        assert answer.model_id == "backup" and "62.5s > cap" in answer.attempts[0].detail
    else:
        assert answer.model_id == "primary"
        assert events(lab, "recovery.retry")[0].payload["wait_s"] == pytest.approx(wait)


def test_insufficient_quota_falls_back_at_once(lab, vendor, ask):
    """Exhausted quota is never retried: the next model is called straight away."""
    vendor.script_for("primary", vs.openai_insufficient_quota())
    answer = ask(fallbacks=["claude"])
    assert answer.model_id == "claude" and hits(vendor, "primary") == 1
    assert answer.attempts[0].action == "fallback"
    assert events(lab, "recovery.fallback")[0].subject == "primary"


def test_quota_skips_the_other_models_of_the_same_account(lab, vendor, ask):
    """After insufficient_quota on one OpenAI model the other OpenAI model is not tried."""
    vendor.script_for("primary", vs.openai_insufficient_quota())
    answer = ask(fallbacks=["backup", "claude"])
    assert answer.model_id == "claude" and hits(vendor, "backup") == 0


@pytest.mark.parametrize("header", [{"retry_after": "3600"}, {"retry_after_ms": "3600000"}])
def test_retry_after_of_an_hour_is_not_waited(lab, vendor, ask, header):
    """A Retry-After above the cap means fall back now, not sleep (the header beats the
    message's hint)."""
    vendor.script_for("primary", vs.openai_rate_limit(**header))
    answer = ask()
    assert answer.model_id == "backup" and hits(vendor, "primary") == 1
    assert "rate limited for 3600s > cap" in answer.attempts[0].detail


def test_retry_after_as_an_http_date(lab, vendor, ask):
    """An HTTP-date Retry-After a few seconds ahead is waited for, then the model retried."""
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=4), usegmt=True)
    vendor.script_for("primary", vs.openai_rate_limit(retry_after=when))
    answer = ask()
    assert answer.model_id == "primary"
    assert 0 < events(lab, "recovery.retry")[0].payload["wait_s"] <= 4


@pytest.mark.parametrize("garbage", [None, "soon", "-5", "nan", ""])
def test_a_429_without_a_usable_hint_falls_back_when_another_candidate_exists(
    lab, vendor, ask, garbage
):
    """No usable Retry-After and no hint in words: the next candidate is called at once."""
    vendor.script_for("primary", vs.openai_rate_limit(retry_after=garbage, hint=None))
    answer = ask()
    assert answer.model_id == "backup" and hits(vendor, "primary") == 1
    assert "no wait hint: next candidate" in answer.attempts[0].detail


@pytest.mark.parametrize("garbage", [None, "soon", "-5", ""])
def test_a_429_without_a_usable_hint_and_no_other_candidate_is_retried(lab, vendor, ask, garbage):
    """A pinned model alone: a 429 with nothing usable is retried with backoff, not given up."""
    vendor.script_for(
        "primary",
        vs.openai_rate_limit(retry_after=garbage, hint=None),
        vs.openai_rate_limit(hint=None),
    )
    answer = ask(fallbacks=[])
    assert answer.model_id == "primary" and hits(vendor, "primary") == 3
    retries = events(lab, "recovery.retry")
    assert [e.payload["wait_s"] for e in retries] == [-1.0, -1.0]  # stamina's backoff
    assert "no other candidate: backoff" in retries[0].payload["detail"]


def test_gemini_429_with_retry_info_beyond_the_cap_falls_back(lab, vendor, ask):
    """RetryInfo 17s exceeds the 10 s cap: fall back at once; 3s is waited for."""
    vendor.script_for("gem", vs.gemini_quota(retry_delay="17s"))
    assert ask(model="gem", fallbacks=["primary"]).model_id == "primary"
    vendor.script_for("gem", vs.gemini_quota(retry_delay="3s"))
    answer = ask(model="gem", fallbacks=["primary"])
    assert answer.model_id == "gem"
    assert events(lab, "recovery.retry")[-1].payload["wait_s"] == 3


def test_gemini_per_day_quota_is_not_retryable(lab, vendor, ask):
    """The per-day quota is exhausted for today: RATE_LIMIT, not retryable, fall back."""
    vendor.script_for("gem", vs.gemini_quota(per_day=True, retry_delay="3s"))
    answer = ask(model="gem", fallbacks=["primary"])
    assert answer.model_id == "primary" and hits(vendor, "gem") == 1
    assert answer.attempts[0].error_kind == "RATE_LIMIT"


def test_a_per_day_violation_listed_last_is_still_read(lab, vendor, ask):
    """QuotaFailure lists PerMinute, PerMinute, then PerDay: every violation is read, so the
    request is not retried on that model (and other Google models stay available)."""
    register(lab, "gem2", "Google", "gemini", None)
    quota = vs.gemini_quota(violations=("TokensPerMinute", "PerMinute", "PerDay"), retry_delay="3s")
    vendor.script_for("gem", quota)
    answer = ask(model="gem", fallbacks=["gem2"])
    assert answer.model_id == "gem2" and hits(vendor, "gem") == 1
    assert answer.attempts[0].detail == "daily quota exhausted"


def test_a_long_per_minute_message_is_a_per_minute_limit(lab, vendor, ask):
    """A per-minute 429 whose message runs past 300 characters is waited out (RetryInfo), not
    read as an exhausted account that would skip every Google model."""
    quota = vs.gemini_quota(
        violations=("TokensPerMinute", "PerMinute"), retry_delay="2s", long_message=True
    )
    vendor.script_for("gem", quota)
    answer = ask(model="gem", fallbacks=["primary"])
    assert answer.model_id == "gem" and hits(vendor, "gem") == 2
    assert len(answer.attempts[0].error) >= 150  # the message is long; its codes decide


# -- server errors, overload, timeouts ----------------------------------------------------------
def test_anthropic_529_repeated_retries_then_falls_back_and_opens_the_breaker(lab, vendor, ask):
    """Overload is retried with backoff (2 retries), then the next model; 3 failures open."""
    vendor.fail_always("claude", vs.anthropic_overloaded())
    answer = ask(model="claude", fallbacks=["primary"])
    assert answer.model_id == "primary" and hits(vendor, "claude") == 3
    assert [a.error_kind for a in answer.attempts] == ["OVERLOAD"] * 3 + [None]
    assert len(events(lab, "recovery.retry")) == 2
    assert lab.recovery.get_circuit_status()["claude"]["state"] == "open"


def test_three_failures_open_the_breaker_and_the_fourth_request_makes_no_call(lab, vendor, ask):
    """Once open, a request goes straight to the fallback without touching the model."""
    vendor.fail_always("primary", vs.openai_server_error())
    ask()
    assert hits(vendor, "primary") == 3
    answer = ask()
    assert hits(vendor, "primary") == 3 and answer.model_id == "backup"
    assert answer.attempts[0].error_kind == "CIRCUIT_OPEN"


def test_after_the_open_period_one_probe_goes_through(lab, vendor, clock, ask):
    """At +60.001 s a single probe reaches the model; its success closes the circuit, and a
    closed circuit shows no retry time."""
    vendor.fail_always("primary", vs.openai_server_error())
    ask()
    status = lab.recovery.get_circuit_status()["primary"]
    assert status["state"] == "open" and status["retry_at"] > status["opened_at"]
    vendor.fail_always("primary", None)
    clock.advance(59.999)
    assert ask().model_id == "backup"
    clock.advance(0.002)
    assert ask().model_id == "primary" and hits(vendor, "primary") == 4
    status = lab.recovery.get_circuit_status()["primary"]
    assert status["state"] == "closed" and status["retry_at"] is None


@pytest.mark.parametrize(
    "fault, kind",
    [
        (vs.openai_server_error, "OVERLOAD"),
        (vs.openai_unavailable, "OVERLOAD"),
        (vs.gemini_deadline, "TIMEOUT"),
        (vs.html_502, "OVERLOAD"),
    ],
)
def test_server_errors_are_retried_then_succeed(lab, vendor, ask, fault, kind):
    """500, 503, 504 and an HTML 502 are transient: one retry, then the same model answers."""
    vendor.script_for("primary", fault())
    answer = ask()
    assert answer.model_id == "primary" and hits(vendor, "primary") == 2
    assert answer.attempts[0].error_kind == kind


def test_read_timeout_is_retried(lab, vendor, ask):
    """A hanging server is cut by the client timeout, classified TIMEOUT and retried."""
    from ims_kit.providers import get_provider

    lab.set_provider("openai", get_provider("openai", timeout_s=0.3))
    vendor.script_for("primary", vs.hang(5))
    answer = ask()
    assert answer.model_id == "primary" and answer.attempts[0].error_kind == "TIMEOUT"


# -- context overflow -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "model, fault",
    [
        ("primary", vs.openai_context_length),
        ("claude", vs.anthropic_prompt_too_long),
        ("gem", vs.gemini_too_many_tokens),
    ],
)
def test_each_context_overflow_shape_truncates_and_resends(lab, vendor, ask, model, fault):
    """The prompt is cut to fit and sent again to the same model; the answer says so."""
    vendor.script_for(model, fault())
    prompt = "Start of the instructions. " + "filler text " * 3_000 + " The question?"
    answer = ask(model=model, fallbacks=[], prompt=prompt)
    sent = [r for r in vendor.requests if r.model == model]
    texts = [vs.extract_texts(r.vendor, r.json)[0] for r in sent]
    assert len(sent) == 2 and len(texts[1]) < len(texts[0])
    assert texts[1].startswith("Start of the instructions.") and texts[1].endswith("question?")
    assert answer.truncated and events(lab, "recovery.truncated")


def test_input_plus_max_tokens_over_the_window_asks_for_a_shorter_answer(lab, vendor, ask):
    """Anthropic's "input length and max_tokens exceed context limit: 199759 + 8192 > 200000":
    the resend asks for max_tokens that fit (the limit minus the input), the prompt unchanged."""
    vendor.script_for("claude", vs.anthropic_context_limit(199_000, 8_192))
    answer = ask(model="claude", fallbacks=[], prompt="a long document", max_tokens=8_192)
    first, second = [r.json for r in vendor.requests if r.model == "claude"]
    assert (first["max_tokens"], second["max_tokens"]) == (8_192, 980)  # 98% of the 1,000 left
    assert first["messages"] == second["messages"] and not answer.truncated
    assert events(lab, "recovery.shrunk")[0].payload["detail"] == (
        "max_tokens 8,192 -> 980 to fit the window"
    )


def test_input_alone_too_long_for_an_answer_truncates_instead(lab, vendor, ask):
    """When the input leaves no room for an answer the prompt is cut, not max_tokens."""
    vendor.script_for("claude", vs.anthropic_context_limit(199_990, 8_192))
    prompt = "Start. " + "filler text " * 2_000 + " Question?"
    answer = ask(model="claude", fallbacks=[], prompt=prompt, max_tokens=8_192)
    first, second = [r.json for r in vendor.requests if r.model == "claude"]
    assert second["max_tokens"] == 8_192 and answer.truncated
    assert len(second["messages"][0]["content"]) < len(first["messages"][0]["content"])


def test_overflow_that_persists_falls_back_to_a_larger_window(lab, vendor, ask):
    """When truncation does not help, only a candidate with a larger window is tried."""
    register(lab, "big", "Google", "gemini", None, context_window=1_000_000)
    vendor.fail_always("primary", vs.openai_context_length())
    answer = ask(fallbacks=["backup", "big"], prompt="x " * 2_000)
    assert answer.model_id == "big" and hits(vendor, "backup") == 0
    assert hits(vendor, "primary") == 3  # the first try and two truncations


# -- requests that are wrong, models that are missing, keys ----------------------------------
def test_invalid_parameter_is_not_retried_nor_sent_elsewhere(lab, vendor, ask):
    """400 invalid parameter fails the request at once with the provider's details."""
    vendor.script_for("primary", vs.openai_invalid_param("temperature", "bad temperature"))
    with pytest.raises(AllModelsFailed) as err:
        ask()
    assert hits(vendor, "primary") == 1 and hits(vendor, "backup") == 0
    assert err.value.attempts[0].error_kind == "INVALID_REQUEST"
    assert err.value.attempts[0].status == 400


@pytest.mark.parametrize(
    "model, fault",
    [("primary", vs.openai_model_not_found), ("gem", vs.gemini_not_found)],
)
def test_a_model_the_vendor_does_not_know_falls_back(lab, vendor, ask, model, fault):
    """404 model not found: this model is unknown there, but the next candidate may answer."""
    vendor.script_for(model, fault())
    answer = ask(model=model, fallbacks=["claude"])
    assert answer.model_id == "claude" and hits(vendor, model) == 1
    assert answer.attempts[0].detail == "model not found"


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
def test_authentication_fails_fast_and_falls_back_to_another_vendor(lab, vendor, ask, model, fault):
    """401, 403 and API_KEY_INVALID are never retried; another vendor's model is tried."""
    vendor.fail_always(model, fault())
    other = "claude" if model != "claude" else "gem"
    answer = ask(model=model, fallbacks=["backup", other], prompt="hi")
    assert hits(vendor, model) == 1 and answer.attempts[0].error_kind == "AUTHENTICATION"
    assert answer.model_id == (other if model == "primary" else "backup")


def test_missing_key_names_the_variable_and_makes_no_request(lab, vendor, ask, monkeypatch):
    """Without OPENAI_API_KEY the call fails with the variable's name, nothing is sent."""
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(MissingKeyError, match="OPENAI_API_KEY"):
        ask()
    assert vendor.requests == []


def test_missing_key_skips_to_a_candidate_that_has_one(lab, vendor, ask, monkeypatch):
    """A chain with a keyless model moves on to the next model with a key."""
    monkeypatch.delenv("OPENAI_API_KEY")
    answer = ask(fallbacks=["claude"], prompt="hi")
    assert answer.model_id == "claude" and answer.attempts[0].error_kind == "MISSING_KEY"


# -- endpoints, not only models -----------------------------------------------------------------
@pytest.fixture
def refused(lab):
    """Five models behind a port nothing listens on (an OpenAI-compatible server that is down)."""
    for i in range(5):
        register(lab, f"down-{i}", "Local", "openai_compatible", "http://127.0.0.1:9/v1")
    return [f"down-{i}" for i in range(5)]


def test_a_refused_endpoint_costs_one_models_retries_and_skips_its_other_models(lab, ask, refused):
    """Connection refused: the first model is retried, then every other model behind the same
    base URL is skipped and the next endpoint answers; no model's breaker counts it."""
    answer = ask(model=refused[0], fallbacks=[*refused[1:], "primary"], prompt="hi")
    assert answer.model_id == "primary"
    tried = [a.model_id for a in answer.attempts]
    assert tried == [refused[0]] * 3 + ["primary"]
    assert answer.attempts[0].error.startswith("connect: could not connect")
    status = lab.recovery.get_circuit_status()
    assert all(status.get(m, {}).get("consecutive_failures", 0) == 0 for m in refused)
    endpoint = status["http://127.0.0.1:9/v1"]
    assert (endpoint["scope"], endpoint["state"]) == ("endpoint", "open")


def test_an_open_endpoint_circuit_leaves_its_models_out_of_the_ranking(lab, ask, refused):
    """Once the endpoint's breaker is open, the selector leaves out every model behind it, and
    says why; the next request goes elsewhere without a connection attempt."""
    ask(model=refused[0], fallbacks=["primary"], prompt="hi")
    rec = lab.recommend("hi", vendors=["Local", "OpenAI"])
    excluded = {c.model_id: c.reasons[0] for c in rec.excluded if c.excluded_by == "circuit open"}
    assert set(excluded) == set(refused)
    assert "endpoint http://127.0.0.1:9/v1" in excluded[refused[2]]
    answer = ask(model=refused[3], fallbacks=["primary"], prompt="hi")
    assert answer.attempts[0].error_kind == "CIRCUIT_OPEN" and answer.model_id == "primary"


def test_real_outages_never_refuse_simulated_calls_and_the_reverse(lab, vendor, ask):
    """A real breaker that is open does not stop a simulated call to the same model, and a
    simulated fault never opens the real breaker."""
    from ims_kit.providers.simulated import SimulatedProvider

    vendor.fail_always("primary", vs.openai_server_error())
    ask(fallbacks=["claude"])
    assert lab.circuits.is_open("primary")
    answer = ask(fallbacks=[], provider="simulated", prompt="What is 2+2?")
    assert (answer.model_id, answer.text) == ("primary", "4")
    sim = SimulatedProvider()
    sim.fail_always("claude", "OVERLOAD")
    lab.set_provider("simulated", sim)
    ask(model="claude", fallbacks=["backup"], provider="simulated")
    assert lab.circuits.is_open("claude", simulated=True)
    assert not lab.circuits.is_open("claude")
    assert ask(model="claude", fallbacks=[]).model_id == "claude"  # the real call goes through


# -- accounting, privacy and logs ------------------------------------------------------------
def test_every_candidate_failing_lists_each_try_and_logs_every_attempt(lab, vendor, ask):
    """AllModelsFailed names each model, kind, status and request id; one usage row each,
    numbered within the one request."""
    vendor.fail_always("primary", vs.openai_unavailable())
    vendor.fail_always("claude", vs.anthropic_overloaded())
    with pytest.raises(AllModelsFailed) as err:
        ask(fallbacks=["claude"], prompt="hi")
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


def test_usage_rows_record_attempt_numbers_and_fallback_origin(lab, vendor, ask):
    """Rows of one request are numbered, and the fallback row says which model it replaced."""
    vendor.script_for("primary", vs.openai_insufficient_quota())
    answer = ask(fallbacks=["claude"])
    rows = lab.usage.records()
    assert [(r.model_id, r.attempt, r.success, r.fallback_from) for r in rows] == [
        ("primary", 1, False, None),
        ("claude", 2, True, "primary"),
    ]
    assert rows[0].error_kind == "RATE_LIMIT"
    assert {r.request_id for r in rows} == {answer.request_id}


def test_the_canary_key_is_nowhere_in_the_database_or_logs(lab, vendor, ask, caplog):
    """Keys never reach the database file (with its WAL), the events or the logs."""
    caplog.set_level("DEBUG")
    vendor.script_for("primary", vs.openai_invalid_api_key())
    ask(fallbacks=["claude"])
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


def test_prompts_are_not_stored_unless_asked(lab, vendor, ask, db_path):
    """By default no prompt or answer text reaches the usage table."""
    ask(prompt="very private words")
    with sqlite3.connect(db_path) as conn:
        assert (
            conn.execute("SELECT count(*) FROM usage WHERE prompt IS NOT NULL").fetchone()[0] == 0
        )
    lab.usage.store_text = True
    ask(prompt="shareable words")
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT prompt FROM usage WHERE prompt IS NOT NULL").fetchone()[0] == (
            "shareable words"
        )


def test_retry_notices_are_log_lines_not_stamina_warnings(lab, vendor, ask, caplog):
    """A retry writes INFO on ims_kit.recovery and nothing on the stamina logger (which would
    print a bare 'stamina.retry_scheduled' on stderr)."""
    caplog.set_level(logging.DEBUG)
    vendor.script_for("primary", vs.openai_unavailable())
    ask()
    assert not [r for r in caplog.records if r.name == "stamina"]
    notices = [r.getMessage() for r in caplog.records if r.name == "ims_kit.recovery"]
    assert any("primary: OVERLOAD: retry" in n for n in notices)


# -- checked before sending -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_tokens": -3}, "max_tokens must be a whole number of tokens above 0"),
        ({"max_tokens": 0}, "max_tokens must be a whole number of tokens above 0"),
        ({"temperature": 3.5}, "temperature must be from 0 to 2"),
        ({"prompt": 42}, "prompt must be a string"),
        ({"prompt": ["hi"]}, "prompt must be a string"),
        ({"tempreature": 0.2}, "got an unknown argument 'tempreature'"),
        ({"strategy": "cost"}, "calls that model: strategy choose a model"),
    ],
)
def test_bad_arguments_are_refused_before_any_call_or_row(lab, vendor, ask, kwargs, message):
    """A bad argument is an InvalidInputError naming ask's own parameter; nothing is sent."""
    caller = "ask_async" if ask.mode == "async" else "ask"
    with pytest.raises(InvalidInputError) as err:
        ask(**({"prompt": "hi"} | kwargs))
    assert message in str(err.value) and str(err.value).startswith(f"{caller}(")
    assert vendor.requests == [] and lab.usage.totals()["attempts"] == 0


def test_an_unknown_provider_name_is_a_clear_error_and_opens_nothing(lab, ask):
    """`provider='bogus'` raises InvalidInputError at once and leaves no trace."""
    for _ in range(3):
        with pytest.raises(InvalidInputError, match="unknown provider 'bogus'"):
            ask(provider="bogus")
    assert lab.usage.totals()["requests"] == 0 and lab.recovery.get_circuit_status() == {}


# -- your own calls ------------------------------------------------------------------------
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


# -- waits actually slept, cancellation, threads --------------------------------------------
def test_retry_after_is_what_stamina_actually_waits(lab, vendor, monkeypatch):
    """Outside testing mode the wait slept is the (capped) Retry-After, nothing more."""
    import time

    import stamina

    slept = []
    monkeypatch.setattr(time, "sleep", lambda s: slept.append(s))
    vendor.script_for("primary", vs.openai_rate_limit(retry_after_ms="1500"))
    with stamina.set_testing(False):
        assert lab.ask("hello", model="primary").model_id == "primary"
    assert slept == [1.5]


def test_overload_backoff_is_exponential_with_jitter(lab, vendor, monkeypatch):
    """Two overloads: waits of 0.5 s then 1 s, each plus up to 0.5 s of jitter."""
    import time

    import stamina

    slept = []
    monkeypatch.setattr(time, "sleep", lambda s: slept.append(s))
    vendor.script_for("primary", vs.openai_unavailable(), vs.openai_unavailable())
    with stamina.set_testing(False):
        assert lab.ask("hello", model="primary").model_id == "primary"
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


def test_a_policy_can_take_the_waits_instead_of_sleeping(lab, vendor):
    """wait_for (a simulated clock's advance) gets the vendor's wait; the retry still runs."""
    from dataclasses import replace

    waited: list[float] = []
    lab.recovery.policy = replace(lab.recovery.policy, wait_for=waited.append)
    vendor.script_for("primary", vs.openai_rate_limit(retry_after_ms="1500"))
    answer = lab.ask("hello there", model="primary")
    assert answer.model_id == "primary" and waited == [1.5]
