"""`ims simulate` and ims_kit.simulate: a seeded workload through the real call path."""

from __future__ import annotations

import json
import time

import pytest
from click.testing import CliRunner

import ims_kit
from ims_kit.cli import cli
from ims_kit.errors import ErrorKind, InvalidInputError, UnknownModelError
from ims_kit.simulate import Fault, parse_faults, simulate, workload

FAULT = "gemini-2.5-pro:overload@40-70"


def test_parse_faults_reads_windows_kinds_and_single_requests():
    """Comma-separated MODEL:KIND@FIRST-LAST windows; @N alone is one request; * is any model."""
    assert parse_faults("gemini-2.5-pro:overload@100-160, *:Rate_Limit@7") == [
        Fault("gemini-2.5-pro", ErrorKind.OVERLOAD, 100, 160),
        Fault("*", ErrorKind.RATE_LIMIT, 7, 7),
    ]
    assert parse_faults("") == [] == parse_faults(None)
    assert str(parse_faults("gpt-5:timeout@1-2")[0]) == "gpt-5:timeout@1-2"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("gemini-2.5-pro", "MODEL:KIND@FIRST-LAST"),
        ("gemini-2.5-pro:overload@9-3", "FIRST <= LAST"),
        ("gemini-2.5-pro:overload@0", "numbered from 1"),
        ("gemini-2.5-pro:melted@1-3", "unknown fault kind"),
    ],
)
def test_parse_faults_refuses_what_it_cannot_read(spec, message):
    """A malformed fault spec is an InvalidInputError that shows the expected shape."""
    with pytest.raises(InvalidInputError, match=message):
        parse_faults(spec)


def test_workload_is_a_seeded_mix_of_questions_documents_and_code():
    """The same seed gives the same requests; the mix holds every kind of request."""
    jobs = workload(400, seed=3)
    assert jobs == workload(400, seed=3)
    assert jobs != workload(400, seed=4)
    kinds = {j.kind for j in jobs}
    assert kinds == {"question", "document", "code", "design", "private"}
    assert max(len(j.prompt) for j in jobs if j.kind == "document") > 4_000
    assert all(j.model == "llama-3.1-8b" for j in jobs if j.kind == "private")


def test_simulate_fills_usage_events_workflows_and_opens_then_closes_a_circuit(seeded):
    """Through ask/run_task: simulated rows, workflows, and a fault window that opens a breaker
    which closes again once the window is over (on the simulated clock)."""
    report = simulate(seeded, requests=240, faults=FAULT, seed=7)
    assert report.requests == 240 == report.completed + report.failed
    assert report.completed > 230
    usage = seeded.usage.to_frame()
    assert len(usage) == report.attempts
    assert set(usage["provider"]) == {"simulated"}
    assert (usage["error_kind"] == "OVERLOAD").any()
    steps = report.circuits["gemini-2.5-pro"]
    assert steps[:2] == ["opened", "half_open"] and steps[-1] == "closed"
    assert seeded.events.count("circuit.opened") >= 1
    assert seeded.events.count("circuit.closed") >= 1
    tasks = report.by_kind["document"] + report.by_kind["code"] + report.by_kind["design"]
    assert len(seeded.workflows(limit=500)) == tasks
    assert usage.loc[usage["model_id"] == "llama-3.1-8b", "cost_usd"].isna().all()
    assert report.unpriced_attempts >= report.by_kind["private"]


def test_simulate_is_reproducible_for_a_seed(tmp_path):
    """Two fresh databases and the same seed: the same calls, models, outcomes and tokens."""

    def run(name: str, seed: int):
        with ims_kit.open(tmp_path / name) as kit:
            kit.registry.seed()
            simulate(kit, requests=80, faults=FAULT, seed=seed)
            frame = kit.usage.to_frame()
        return frame[["model_id", "success", "error_kind", "tokens_in", "tokens_out"]]

    first, again, other = run("a.db", 11), run("b.db", 11), run("c.db", 12)
    assert first.equals(again)
    assert not first.equals(other)


def test_a_fast_run_is_spread_over_a_working_day_that_ends_now(seeded):
    """Every row, event and breaker change of a fast run lies in the last eight hours, none in
    the future, so the dashboard's time charts look like a real day's."""
    from datetime import datetime

    before = time.time()
    simulate(seeded, requests=120, faults=FAULT, seed=3)
    after = time.time()
    first, last = (datetime.fromisoformat(t).timestamp() for t in seeded.usage.span())
    assert before - 8 * 3600 <= first < before - 6 * 3600  # the day starts eight hours back
    assert before - 3600 < last <= after
    stamps = [e.ts for e in seeded.events.find(limit=10_000)]
    stamps += [s["updated"] for s in seeded.circuits.status().values()]
    stamps += [s["opened_at"] for s in seeded.circuits.status().values() if s["opened_at"]]
    assert max(datetime.fromisoformat(t).timestamp() for t in stamps) <= after


def test_a_second_run_starts_after_the_first(seeded):
    """A second fast run fills the time since the first: one time line, never overlapping."""
    simulate(seeded, requests=30, seed=1)
    _, end_of_first = seeded.usage.span()
    count = len(seeded.usage.records(limit=10_000))
    simulate(seeded, requests=30, seed=2)
    later = seeded.usage.records(limit=10_000)[count:]
    assert later and min(r.ts for r in later) >= end_of_first


def test_simulate_restores_the_kit_and_checks_its_input(seeded):
    """The kit's clock and the retry policy are given back; bad input fails up front."""

    source, policy = seeded.clock.source, seeded.recovery.policy
    simulate(seeded, requests=5, seed=1)
    assert seeded.clock.source is source and seeded.clock() == pytest.approx(time.time(), abs=5)
    assert seeded.recovery.policy is policy
    with pytest.raises(UnknownModelError):
        simulate(seeded, requests=5, faults="no-such-model:overload@1-2")
    with pytest.raises(InvalidInputError, match="positive"):
        simulate(seeded, requests=0)
    with pytest.raises(InvalidInputError, match="rate"):
        simulate(seeded, requests=5, rate=0)


def test_simulate_refuses_an_empty_registry(kit):
    """Without models there is nothing to simulate: the message says to run `ims init`."""
    with pytest.raises(InvalidInputError, match="ims init"):
        simulate(kit, requests=3)


def test_rate_spreads_the_calls_over_real_time(seeded, monkeypatch):
    """--rate N waits before each call until 1/N s after the previous one was due."""
    waits: list[float] = []
    monkeypatch.setattr("ims_kit.simulate.time.sleep", waits.append)
    report = simulate(seeded, requests=6, rate=4.0, seed=2)
    assert len(waits) == 5  # the first call is not delayed
    assert waits[-1] == pytest.approx(5 / 4, abs=0.5)  # due 1.25 s after the start
    assert report.simulated_seconds is None
    assert report.requests == 6


def test_cli_simulate_prints_a_summary_and_json():
    """`ims simulate` reports requests, cost and circuits; --json gives the same as JSON."""
    runner = CliRunner()
    assert runner.invoke(cli, ["init"]).exit_code == 0
    text = runner.invoke(cli, ["simulate", "--requests", "240", "--faults", FAULT, "--seed", "7"])
    assert text.exit_code == 0, text.output
    assert "240 requests" in text.stdout
    assert "circuit gemini-2.5-pro: opened" in text.stdout
    assert "simulated cost: $" in text.stdout
    result = runner.invoke(cli, ["simulate", "--requests", "20", "--seed", "1", "--json"])
    data = json.loads(result.stdout)
    assert data["requests"] == 20
    assert data["completed"] + data["failed"] == 20


def test_cli_simulate_bad_faults_is_one_line():
    """A bad --faults value is one line on stderr and exit status 1."""
    runner = CliRunner()
    runner.invoke(cli, ["init"])
    result = runner.invoke(cli, ["simulate", "--requests", "5", "--faults", "oops"])
    assert result.exit_code == 1
    assert "MODEL:KIND@FIRST-LAST" in result.output
    assert "Traceback" not in result.output
