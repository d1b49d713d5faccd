"""`ims gemini` against a fake `gemini` executable scripted per model."""

from __future__ import annotations

import json
import sys

import pytest
from click.testing import CliRunner

from ims_kit.circuits import Permit
from ims_kit.cli import cli
from ims_kit.errors import ErrorKind
from ims_kit.providers import gemini_cli as adapter
from ims_kit.recovery import classify

CHEAPEST, NEXT, DEAREST = "gemini-2.5-flash-lite", "gemini-2.5-flash", "gemini-2.5-pro"

# The fake prints the real `-o json` shape, or a JSON error on stderr with an exit code,
# as the behaviours file (model -> behaviour) says; it records argv and stdin of every run.
FAKE = """#!{python}
import json, os, sys
args = sys.argv[1:]
model = args[args.index("-m") + 1]
with open(os.environ["FAKE_GEMINI_LOG"], "a") as log:
    log.write(json.dumps({{"argv": args, "stdin": sys.stdin.read()}}) + "\\n")
with open(os.environ["FAKE_GEMINI_SCRIPT"]) as f:
    b = json.load(f).get(model, {{}})
if b.get("exit", 0):
    sys.stderr.write("Loaded cached credentials.\\n")
    if "type" in b:
        error = {{"type": b["type"], "message": b["message"], "code": b.get("code", b["exit"])}}
        sys.stderr.write(json.dumps({{"error": error}}, indent=2) + "\\n")
    else:
        sys.stderr.write(b.get("stderr", "") + "\\n")
    sys.exit(b["exit"])
out = {{"session_id": "s-1", "response": b.get("response", "answer from " + model)}}
if b.get("stats", True):
    tokens = {{"input": 10, "prompt": 12, "candidates": 5, "total": 20, "cached": 2,
              "thoughts": 3, "tool": 0}}
    out["stats"] = {{"models": {{b.get("stats_model", model): {{"tokens": tokens}}}},
                    "tools": {{"totalCalls": 0}}, "files": {{}}}}
print(json.dumps(out, indent=2))
"""

QUOTA = {"exit": 1, "type": "TerminalQuotaError", "message": "You have exhausted your daily quota."}
AUTH = {"exit": 41, "type": "FatalAuthenticationError", "message": "Please set an Auth method."}
INPUT = {"exit": 42, "type": "FatalInputError", "message": "No input provided via stdin."}
TURNS = {"exit": 53, "type": "FatalTurnLimitedError", "message": "Reached max session turns."}
CRASH = {"exit": 1, "stderr": "An unexpected critical error occurred:\nError: boom\n    at x.js"}


class FakeGemini:
    """Writes the fake executable and its behaviours; reads back what each run received."""

    def __init__(self, tmp_path, monkeypatch):
        self.dir = tmp_path / "bin"
        self.dir.mkdir()
        self.path = self.dir / "gemini"
        self.path.write_text(FAKE.format(python=sys.executable))
        self.path.chmod(0o755)
        self.log = tmp_path / "gemini-runs.jsonl"
        self.behaviours = tmp_path / "gemini-script.json"
        self.script({})
        monkeypatch.setenv("FAKE_GEMINI_LOG", str(self.log))
        monkeypatch.setenv("FAKE_GEMINI_SCRIPT", str(self.behaviours))
        monkeypatch.setenv("IMS_GEMINI_BIN", str(self.path))

    def script(self, behaviours: dict) -> None:
        self.behaviours.write_text(json.dumps(behaviours))

    def runs(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def models(self) -> list[str]:
        return [r["argv"][r["argv"].index("-m") + 1] for r in self.runs()]


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """A scripted fake `gemini` named by IMS_GEMINI_BIN."""
    return FakeGemini(tmp_path, monkeypatch)


def ims(*args: str, input: str | None = None):
    return CliRunner().invoke(cli, ["gemini", *args], input=input)


def test_model_flag_prompt_and_json_output(seeded, fake):
    """The cheapest active Gemini model is passed with -m, the prompt with -p, and -o json."""
    result = ims("What is 2+2?")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"answer from {CHEAPEST}\n"
    assert fake.runs()[0]["argv"] == ["-m", CHEAPEST, "-p", "What is 2+2?", "-o", "json"]


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
    fake.script({CHEAPEST: QUOTA})
    result = ims("Explain this log", input="ERROR at line 3\n")
    assert result.exit_code == 0, result.output
    assert [r["stdin"] for r in fake.runs()] == ["ERROR at line 3\n"] * 2


def test_a_flag_ims_sets_is_refused_in_passthrough(seeded, fake):
    """Passing -m after -- is refused in one line: the model is ims's choice."""
    result = ims("hi", "--", "-m", "gemini-2.5-pro")
    assert result.exit_code == 1
    assert "-m is set by ims gemini" in result.stderr
    assert fake.runs() == []


def test_usage_row_with_tokens_from_stats(seeded, fake):
    """The run is one usage row: provider gemini_cli, tokens from stats (thoughts are output)."""
    assert ims("What is 2+2?").exit_code == 0
    [row] = seeded.usage.records()
    spec = seeded.registry.lookup(CHEAPEST)
    assert (row.model_id, row.provider, row.success) == (CHEAPEST, "gemini_cli", True)
    assert (row.tokens_in, row.tokens_out, row.token_source) == (12, 8, "provider")
    assert row.cost_usd == pytest.approx(spec.cost_usd(12, 8))
    assert row.latency_ms > 0


def test_tokens_are_estimated_without_stats(seeded, fake):
    """A result without stats is still logged, with estimated tokens marked as such."""
    fake.script({CHEAPEST: {"stats": False, "response": "four"}})
    assert ims("What is 2+2?").exit_code == 0
    [row] = seeded.usage.records()
    assert row.token_source == "estimate" and row.tokens_in > 0 and row.tokens_out > 0


def test_a_different_model_in_stats_is_announced(seeded, fake):
    """When the CLI's stats name another model than the one asked for, ims says so."""
    fake.script({CHEAPEST: {"stats_model": "gemini-2.0-flash"}})
    result = ims("hi")
    assert result.exit_code == 0
    assert f"reports gemini-2.0-flash, not {CHEAPEST}" in result.stderr


def test_quota_error_falls_back_and_announces_the_switch(seeded, fake):
    """A quota error switches to the next Gemini model, said on stderr; both runs are logged."""
    fake.script({CHEAPEST: QUOTA})
    result = ims("What is 2+2?")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"answer from {NEXT}\n"
    assert (
        f"ims: switched from {CHEAPEST} to {NEXT}: RATE_LIMIT "
        "(You have exhausted your daily quota.)" in result.stderr
    )
    failed, ok = seeded.usage.records()
    assert (failed.model_id, failed.success, failed.error_kind) == (CHEAPEST, False, "RATE_LIMIT")
    assert (ok.model_id, ok.success, ok.fallback_from, ok.attempt) == (NEXT, True, CHEAPEST, 2)
    assert seeded.events.count("recovery.fallback") == 1


def test_no_fallback_stops_at_the_first_failure(seeded, fake):
    """--no-fallback runs one model only and exits with its exit code, in one line."""
    fake.script({CHEAPEST: QUOTA})
    result = ims("--no-fallback", "What is 2+2?")
    assert result.exit_code == 1
    assert fake.models() == [CHEAPEST]
    assert "switched" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "--no-fallback" in result.stderr


@pytest.mark.parametrize(
    ("behaviour", "exit_code", "runs"),
    [
        (AUTH, 41, 1),  # the CLI's credentials serve every model: no switch
        (INPUT, 42, 1),  # the request itself is refused
        (TURNS, 53, 1),  # settings.json's turn limit applies to every model
        (QUOTA, 1, 3),  # quotas are per model: every model is tried
        (CRASH, 1, 3),  # unknown: every model is tried
    ],
)
def test_final_exit_code_is_the_clis(seeded, fake, behaviour, exit_code, runs):
    """When no model answers, ims exits with gemini's exit code after the right number of runs."""
    fake.script({m: behaviour for m in (CHEAPEST, NEXT, DEAREST)})
    result = ims("What is 2+2?")
    assert result.exit_code == exit_code
    assert len(fake.runs()) == runs
    assert len(result.stderr.strip().splitlines()) == runs  # the switches, then one error line
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("exit_code", "stderr", "kind"),
    [
        (41, json.dumps({"error": AUTH | {"code": 41}}), ErrorKind.AUTHENTICATION),
        (41, "no JSON at all", ErrorKind.AUTHENTICATION),
        (42, json.dumps({"error": INPUT}), ErrorKind.INVALID_REQUEST),
        (53, json.dumps({"error": TURNS}), ErrorKind.INVALID_REQUEST),
        (1, json.dumps({"error": QUOTA}), ErrorKind.RATE_LIMIT),
        (
            1,
            json.dumps({"error": {"type": "RetryableQuotaError", "message": "slow down"}}),
            ErrorKind.RATE_LIMIT,
        ),
        (
            1,
            json.dumps({"error": {"type": "ApiError", "message": "x", "code": 503}}),
            ErrorKind.OVERLOAD,
        ),
        (
            1,
            json.dumps({"error": {"type": "Error", "message": "x", "code": "ECONNREFUSED"}}),
            ErrorKind.OVERLOAD,
        ),
        (1, "Error: API key not valid. Please pass a valid API key.", ErrorKind.AUTHENTICATION),
        (1, CRASH["stderr"], ErrorKind.UNKNOWN),
    ],
)
def test_failures_classify_like_the_api(exit_code, stderr, kind):
    """Exit codes and the JSON error on stderr map to the kinds recovery uses."""
    run = adapter.Run(("gemini",), exit_code, "", f"Loaded cached credentials.\n{stderr}\n", 9.0)
    error = adapter.to_error(run, NEXT)
    assert classify(error).kind is kind
    assert (error.provider, error.exit_code) == ("gemini_cli", exit_code)


def test_missing_binary_is_one_line_with_the_install_command(seeded, fake, monkeypatch, tmp_path):
    """No gemini on PATH and no IMS_GEMINI_BIN: one line saying how to install it."""
    monkeypatch.delenv("IMS_GEMINI_BIN")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    result = ims("hi")
    assert result.exit_code != 0
    assert result.stderr.count("\n") == 1
    assert "npm install -g @google/gemini-cli" in result.stderr
    assert seeded.usage.records() == []


def test_found_on_path_without_override(seeded, fake, monkeypatch):
    """Without IMS_GEMINI_BIN the executable is `gemini` on PATH."""
    monkeypatch.delenv("IMS_GEMINI_BIN")
    monkeypatch.setenv("PATH", str(fake.dir))
    assert adapter.find_executable() == str(fake.path)
    assert ims("hi").exit_code == 0


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
    fake.script({CHEAPEST: CRASH})
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
