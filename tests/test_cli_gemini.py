"""`ims gemini` end to end, against a fake `gemini` that reproduces the real CLI: selection,
the same recovery as every call, announced switches, the CLI's exit code, health first."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from gemini_fake import FakeGemini

from ims_kit.circuits import Permit
from ims_kit.cli import cli
from ims_kit.errors import ErrorKind

CHEAPEST, NEXT, DEAREST = "gemini-2.5-flash-lite", "gemini-2.5-flash", "gemini-2.5-pro"


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """The fake `gemini` named by IMS_GEMINI_BIN, answering every model by default."""
    gemini = FakeGemini(tmp_path, monkeypatch)
    gemini.scenario("success")
    return gemini


def ims(*args: str, input: str | None = None):
    return CliRunner().invoke(cli, ["gemini", *args], input=input)


def test_the_cheapest_gemini_model_answers_and_the_run_is_logged(seeded, fake):
    """The cheapest active Gemini model is run with -m, --prompt= and -o json; the run is one
    usage row with the tokens of the CLI's stats (thoughts count as output)."""
    result = ims("What is 2+2?")
    assert result.exit_code == 0, result.output
    assert result.stdout == "Hello from the fake gemini.\n"
    argv = fake.runs()[0]["argv"]
    assert argv == ["-m", CHEAPEST, "--prompt=What is 2+2?", "-o", "json"]
    [row] = seeded.usage.records()
    assert (row.model_id, row.provider, row.success, row.token_source) == (
        CHEAPEST,
        "gemini_cli",
        True,
        "provider",
    )
    assert row.tokens_in > 7_000 and row.cost_usd > 0


def test_strategy_from_the_environment(seeded, fake, monkeypatch):
    """IMS_STRATEGY chooses among the Gemini models (performance picks the strongest)."""
    monkeypatch.setenv("IMS_STRATEGY", "performance")
    assert ims("Analyze this code").exit_code == 0
    assert fake.models() == [DEAREST]


def test_passthrough_arguments_follow_unchanged(seeded, fake):
    """Everything after -- reaches gemini unchanged, after ims's own flags."""
    result = ims("Generate code", "--", "--yolo", "--include-directories", "../lib")
    assert result.exit_code == 0, result.output
    assert fake.runs()[0]["argv"][-3:] == ["--yolo", "--include-directories", "../lib"]


def test_piped_input_reaches_every_attempt(seeded, fake):
    """Piped input is read once and given to gemini on the first run and after a switch."""
    fake.scenario(f"{CHEAPEST}=quota_day,*=success")
    result = ims("Explain this log", input="ERROR at line 3\n")
    assert result.exit_code == 0, result.output
    assert [r["stdin"] for r in fake.runs()] == ["ERROR at line 3\n"] * 2


def test_a_flag_ims_sets_is_refused_in_passthrough(seeded, fake):
    """Passing -m after -- is refused in one line: the model is ims's choice."""
    result = ims("hi", "--", "-m", "gemini-2.5-pro")
    assert result.exit_code == 1 and "-m is set by ims" in result.stderr
    assert fake.runs() == []


@pytest.mark.parametrize("scenario", ["quota_day", "quota_minute", "overload", "not_found"])
def test_a_failure_another_model_may_not_have_switches_and_says_so(seeded, fake, scenario):
    """Daily or per-minute quota, overload, unknown model: the next Gemini model answers, the
    switch is said on stderr, both runs are logged, and the failed model is not rerun (the CLI
    retried it already)."""
    fake.scenario(f"{CHEAPEST}={scenario},*=success")
    result = ims("What is 2+2?")
    assert result.exit_code == 0, result.output
    assert fake.models() == [CHEAPEST, NEXT]
    assert f"ims: {CHEAPEST}:" in result.stderr and "fallback" in result.stderr
    failed, ok = seeded.usage.records()
    assert (failed.model_id, failed.success) == (CHEAPEST, False)
    assert (ok.model_id, ok.success, ok.fallback_from, ok.attempt) == (NEXT, True, CHEAPEST, 2)


def test_a_per_minute_quota_is_not_an_exhausted_account(seeded, fake):
    """The CLI's per-minute 429 says "exceeded your current quota" but is per model: the other
    Gemini models are still tried."""
    fake.scenario("quota_minute")
    result = ims("What is 2+2?")
    assert result.exit_code == 173
    assert fake.models() == [CHEAPEST, NEXT, DEAREST]


@pytest.mark.parametrize(
    ("scenario", "exit_code", "runs", "says"),
    [
        ("bad_key", 144, 1, "API key not valid"),  # the CLI's key serves every model
        ("no_auth", 41, 1, "Please set an Auth method"),
        ("untrusted", 55, 1, "--skip-trust"),  # the local set-up: fix it, then retry
        ("bad_settings", 52, 1, "settings.json"),
        ("quota_day", 173, 3, "daily quota"),  # quotas are per model: every model is tried
        ("overload", 247, 3, "overloaded"),
    ],
)
def test_when_no_model_answers_the_exit_code_is_the_clis(
    seeded, fake, scenario, exit_code, runs, says
):
    """ims exits with gemini's own exit code after the right number of runs, in one error
    line after the switches, with no traceback."""
    fake.scenario(scenario)
    result = ims("What is 2+2?")
    assert result.exit_code == exit_code
    assert len(fake.runs()) == runs
    assert says in result.stderr.splitlines()[-1]
    assert "Traceback" not in result.output


def test_no_fallback_stops_at_the_first_failure(seeded, fake):
    """--no-fallback runs one model only and exits with its exit code."""
    fake.scenario("quota_day")
    result = ims("--no-fallback", "What is 2+2?")
    assert result.exit_code == 173 and fake.models() == [CHEAPEST]


def test_a_run_past_the_timeout_is_a_timeout_and_the_next_model_answers(seeded, fake, monkeypatch):
    """--timeout bounds each run: the slow model's run is stopped and the next one answers."""
    fake.scenario("success")
    script = fake.path.read_text().replace(
        'run.sleep(float(os.environ.get("FAKE_GEMINI_SLEEP_S") or 0))',
        f'run.sleep(30 if requested == "{CHEAPEST}" else 0)',
    )
    fake.path.write_text(script)
    result = ims("--timeout", "1", "hi")
    assert result.exit_code == 0, result.output
    assert f"ims: {CHEAPEST}: TIMEOUT" in result.stderr
    assert seeded.usage.records()[0].error_kind == "TIMEOUT"


def test_a_different_model_in_stats_is_announced(seeded, fake, monkeypatch):
    """When the CLI's stats name another model than the one asked for, ims says so."""
    monkeypatch.setenv("IMS_STRATEGY", "cost")
    seeded.registry.update(CHEAPEST, api_model="flash-lite")  # the CLI calls another model
    result = ims("hi")
    assert result.exit_code == 0, result.output
    assert "reports gemini-3.5-flash-lite, not flash-lite" in result.stderr


def test_missing_binary_is_one_line_with_the_install_command(seeded, fake, monkeypatch, tmp_path):
    """No gemini on PATH and no IMS_GEMINI_BIN: one line saying how to install it."""
    monkeypatch.delenv("IMS_GEMINI_BIN")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    result = ims("hi")
    assert result.exit_code != 0 and result.stderr.count("\n") == 1
    assert "npm install -g @google/gemini-cli" in result.stderr
    assert seeded.usage.records() == []


def test_open_circuit_skips_its_model(seeded, fake):
    """A model whose circuit is open is not run; the skip is said on stderr."""
    for _ in range(seeded.circuits.failure_threshold):
        seeded.circuits.record_failure(Permit(CHEAPEST), ErrorKind.OVERLOAD)
    result = ims("What is 2+2?")
    assert result.exit_code == 0, result.output
    assert fake.models() == [NEXT]
    assert f"skipped {CHEAPEST}: circuit open" in result.stderr


def test_failures_open_the_circuit(seeded, fake):
    """Repeated failures of one model open its breaker, so later calls go elsewhere."""
    fake.scenario(f"{CHEAPEST}=overload,*=success")
    for _ in range(seeded.circuits.failure_threshold):
        assert ims("hi").exit_code == 0
    assert seeded.circuits.is_open(CHEAPEST)
    fake.log.unlink()
    assert ims("hi").exit_code == 0 and fake.models() == [NEXT]


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "no database at"),
        ("empty", "is empty: run `ims init`"),
        ("no gemini", "no active Google model"),
        ("all open", "every active Gemini model's circuit is open"),
    ],
)
def test_health_is_checked_first(db_path, fake, setup, message):
    """Each health problem stops ims gemini before any run, in one line."""
    import ims_kit

    if setup != "missing":
        with ims_kit.open(db_path) as kit:
            if setup != "empty":
                kit.registry.seed()
            gemini = [m for m in kit.registry.all(active=True) if m.vendor == "Google"]
            for m in gemini:
                if setup == "no gemini":
                    kit.registry.deactivate(m.model_id)
                for _ in range(kit.circuits.failure_threshold * (setup == "all open")):
                    kit.circuits.record_failure(Permit(m.model_id), ErrorKind.OVERLOAD)
    result = ims("hi")
    assert result.exit_code == 1
    assert message in result.stderr and result.stderr.count("\n") == 1
    assert fake.runs() == []
    assert db_path.exists() == (setup != "missing")  # a missing database is not created
