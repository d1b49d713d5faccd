"""The gemini CLI provider against a fake executable that reproduces the real CLI (0.61.0):
its exit codes and outputs read into what recovery needs, a timeout that kills the whole
process group, no prompt left in TMPDIR."""

from __future__ import annotations

import asyncio
import os
import time

import pytest
from gemini_fake import FakeGemini

from ims_kit.classify import classify
from ims_kit.errors import InvalidInputError
from ims_kit.prompts import build_prompt
from ims_kit.providers import get_provider
from ims_kit.providers.gemini_cli import (
    GeminiCliError,
    GeminiCliNotFound,
    GeminiCliProvider,
    as_text,
    find_executable,
)
from ims_kit.records import ModelSpec

SPEC = ModelSpec(
    model_id="gemini-2.5-flash",
    vendor="Google",
    provider="gemini_cli",
    context_window=1_048_576,
    cost_per_mil_in=0.3,
    cost_per_mil_out=2.5,
)


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """The fake `gemini` named by IMS_GEMINI_BIN, with a private HOME."""
    return FakeGemini(tmp_path, monkeypatch)


@pytest.fixture(params=["sync", "async"])
def complete(request):
    """One call through complete() or acomplete()."""

    def run(provider, prompt="say hi"):
        if request.param == "sync":
            return provider.complete(SPEC, prompt)
        return asyncio.run(provider.acomplete(SPEC, prompt))

    return run


def failure(provider, complete, prompt="say hi") -> GeminiCliError:
    with pytest.raises(GeminiCliError) as err:
        complete(provider, prompt)
    return err.value


def test_it_is_a_provider_like_the_others(fake):
    """get_provider("gemini_cli") gives the adapter; its endpoint is the API it talks to."""
    provider = get_provider("gemini_cli")
    assert isinstance(provider, GeminiCliProvider)
    assert provider.endpoint(SPEC) == "https://generativelanguage.googleapis.com"


def test_success_reads_the_answer_and_the_tokens_of_its_stats(fake, complete):
    """Exit 0 with JSON: the response, prompt tokens, output = candidates + thoughts."""
    fake.scenario("success")
    c = complete(GeminiCliProvider())
    assert c.text == "Hello from the fake gemini." and c.model == "gemini-2.5-flash"
    run = fake.runs()[0]
    assert run["argv"][:2] == ["-m", "gemini-2.5-flash"] and "--prompt=say hi" in run["argv"]
    assert c.tokens_in > 7_000 and c.tokens_out > 0  # the CLI's own 23 KB system prompt


def test_a_prompt_starting_with_a_dash_is_not_read_as_a_flag(fake, complete):
    """--prompt=TEXT carries prompts such as '- list the steps' safely."""
    fake.scenario("success")
    assert complete(GeminiCliProvider(), "- list the steps").text
    assert "--prompt=- list the steps" in fake.runs()[0]["argv"]


def test_a_conversation_is_sent_as_a_labelled_transcript():
    """The CLI takes one text: a system prompt and several turns become a transcript."""
    prompt = build_prompt(
        messages=[
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "What did I say?"},
        ],
        system="Be terse.",
    )
    assert as_text(prompt) == (
        "System: Be terse.\n\nUser: Hi\n\nAssistant: Hello!\n\nUser: What did I say?"
    )
    assert as_text(build_prompt("plain")) == "plain"


@pytest.mark.parametrize(
    ("scenario", "exit_code", "kind", "retryable", "scope", "status"),
    [
        ("quota_minute", 173, "RATE_LIMIT", True, "model", 429),
        ("quota_day", 173, "RATE_LIMIT", False, "model", 429),
        ("quota_mixed", 173, "RATE_LIMIT", False, "model", 429),
        ("overload", 247, "OVERLOAD", True, "model", 503),
        ("internal", 244, "OVERLOAD", True, "model", 500),
        ("not_found", 1, "INVALID_REQUEST", False, "model", 404),
        ("bad_key", 144, "AUTHENTICATION", False, "vendor", 400),
        ("denied", 147, "AUTHENTICATION", False, "vendor", 403),
        ("unauthenticated", 145, "AUTHENTICATION", False, "vendor", 401),
        ("no_key", 41, "AUTHENTICATION", False, "vendor", 401),
        ("overflow", 144, "CONTEXT_OVERFLOW", False, "model", 400),
        ("conn_refused", 1, "OVERLOAD", True, "endpoint", None),
        ("untrusted", 55, "CONFIGURATION", False, "request", None),
        ("bad_settings", 52, "CONFIGURATION", False, "request", None),
    ],
)
def test_every_failure_of_the_real_cli_is_read_like_the_api(
    fake, complete, scenario, exit_code, kind, retryable, scope, status
):
    """The CLI's exit code (the HTTP status mod 256), its JSON error or its plain text become
    the kind, the retryable flag and the scope the same failure has on the API."""
    fake.scenario(scenario)
    err = failure(GeminiCliProvider(), complete)
    found = classify(err)
    assert (err.exit_code, err.status) == (exit_code, status)
    assert (found.kind.value, found.retryable, found.scope) == (kind, retryable, scope)
    assert "\x1b[" not in err.message and "Usage:" not in err.message


def test_a_per_minute_quota_says_its_wait_and_that_the_cli_already_retried(fake, complete):
    """'Suggested retry after 7s.' is the wait; the CLI retried for minutes, so recovery will
    not rerun the same model."""
    fake.scenario("quota_minute")
    err = failure(GeminiCliProvider(), complete)
    assert err.retry_after_s == 7.0 and err.retried_by_provider
    assert classify(err).rule == "rate limit"  # not an exhausted account


def test_the_untrusted_folder_error_says_how_to_fix_it(fake, complete):
    """Exit 55 prints red text and no JSON: the error names the three fixes."""
    fake.scenario("untrusted")
    err = failure(GeminiCliProvider(), complete)
    assert "--skip-trust" in err.message and "GEMINI_CLI_TRUST_WORKSPACE=true" in err.message


def test_bad_passthrough_arguments_are_one_line(fake, complete):
    """An unknown flag prints the CLI's whole help: the error keeps its first line."""
    fake.scenario("success")
    err = failure(GeminiCliProvider(passthrough=["--bogus-flag"]), complete)
    assert err.message == "Unknown arguments: bogus-flag, bogusFlag" and err.status == 400
    assert classify(err).scope == "request"


def test_a_flag_ims_sets_is_refused_in_passthrough(fake):
    """-m, -p or -o after -- are ims's own: refused before anything runs."""
    with pytest.raises(InvalidInputError, match="-m is set by ims"):
        GeminiCliProvider(passthrough=["-m", "gemini-2.5-pro"])
    assert fake.runs() == []


def test_piped_input_is_given_to_every_run(fake, complete):
    """stdin goes to the CLI, which reads it as context before the prompt."""
    fake.scenario("success")
    complete(GeminiCliProvider(stdin="ERROR at line 3\n"))
    assert fake.runs()[0]["stdin"] == "ERROR at line 3\n"


def test_a_run_past_its_timeout_is_stopped_whole(fake, complete, monkeypatch):
    """The CLI (which re-launches itself as a child) is killed as a process group at the
    timeout: a TIMEOUT, and no process of the run is left behind."""
    fake.scenario("success")
    monkeypatch.setenv("FAKE_GEMINI_SLEEP_S", "30")
    monkeypatch.setenv("FAKE_GEMINI_LOG", str(fake.log))
    err = failure(GeminiCliProvider(timeout_s=1.0), complete)
    assert err.transport == "timeout" and classify(err).kind.value == "TIMEOUT"
    assert "IMS_GEMINI_TIMEOUT_S" in err.message
    deadline = time.monotonic() + 10
    while _fakes_running() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _fakes_running()


def _fakes_running() -> bool:
    """True while a process running the fake gemini exists."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                command = f.read()
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if b"/bin/gemini" in command and state != "Z":
            return True
    return False


def test_the_timeout_setting_is_checked(monkeypatch):
    """IMS_GEMINI_TIMEOUT_S sets the default; a bad value is a clear error."""
    monkeypatch.setenv("IMS_GEMINI_TIMEOUT_S", "42")
    assert GeminiCliProvider().timeout_s == 42.0
    monkeypatch.setenv("IMS_GEMINI_TIMEOUT_S", "soon")
    with pytest.raises(InvalidInputError, match="IMS_GEMINI_TIMEOUT_S"):
        GeminiCliProvider()


def test_no_prompt_is_left_in_tmpdir(fake, complete, monkeypatch, tmp_path):
    """The CLI writes every failure with the whole prompt to $TMPDIR: each run has its own,
    removed afterwards."""
    seen = tmp_path / "tmpdirs.txt"
    monkeypatch.setenv("FAKE_GEMINI_SCENARIO", "overload")
    script = fake.path.read_text().replace(
        "def main() -> int:\n",
        f"def main() -> int:\n    open({str(seen)!r}, 'a').write(os.environ['TMPDIR'] + '\\n')\n",
        1,
    )
    fake.path.write_text(script)
    failure(GeminiCliProvider(), complete)
    used = seen.read_text().split()
    assert used and all(not os.path.exists(d) for d in used)
    assert all(d != os.environ.get("TMPDIR") for d in used)


def test_a_missing_executable_says_how_to_install_it(monkeypatch, tmp_path):
    """No gemini on PATH and no IMS_GEMINI_BIN: the install command, not a traceback."""
    monkeypatch.delenv("IMS_GEMINI_BIN", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(GeminiCliNotFound, match="npm install -g @google/gemini-cli"):
        find_executable()
    monkeypatch.setenv("IMS_GEMINI_BIN", str(tmp_path / "nothing"))
    with pytest.raises(GeminiCliNotFound, match="IMS_GEMINI_BIN"):
        find_executable()
