"""Budgets: a cap that holds across threads and processes, periods on an injected clock,
reservations freed on failure and on a killed process, unpriced never $0, the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from lab_setup import build_lab

import ims_kit
from ims_kit.budgets import RESERVATION_TTL_S, period_bounds
from ims_kit.cli import cli
from ims_kit.errors import BudgetExceeded, InvalidInputError, NoModelAvailable
from ims_kit.records import ModelSpec

# 2026-12-02 12:00 UTC, a Wednesday
NOON = datetime(2026, 12, 2, 12, tzinfo=UTC).timestamp()
PRICED = dict(context_window=100_000, max_output_tokens=1_000, cost_per_mil_in=1.0,
              cost_per_mil_out=2.0)  # fmt: skip


@pytest.fixture
def sim(kit, clock):
    """A kit with two simulated models (worst case of a short prompt ~ $0.002) on the clock."""
    clock.now = NOON
    kit.clock.source = clock
    for model_id in ("small", "other"):
        kit.registry.register(
            ModelSpec(model_id=model_id, vendor="Acme", provider="simulated", **PRICED)
        )
    return kit


def reserved(kit) -> float:
    return kit.db.execute(
        "SELECT coalesce(sum(amount_usd), 0) FROM budget_reservations"
    ).fetchone()[0]


def spent(kit) -> float:
    return kit.db.execute("SELECT coalesce(sum(cost_usd), 0) FROM usage").fetchone()[0]


# -- setting and reading ---------------------------------------------------------------------
def test_set_updates_a_budget_of_the_same_scope_and_period(sim):
    """set() twice for one scope and period changes the limit; other scopes are new budgets."""
    a = sim.budgets.set(5.0, period="day", simulated=True)
    b = sim.budgets.set(7.0, period="day", simulated=True)
    c = sim.budgets.set(1.0, period="month", model="small", warn_at=0.8, simulated=True)
    assert a.id == b.id != c.id and sim.budgets.get(a.id).limit_usd == 7.0
    [day, month] = sim.budgets.status()
    assert (day.scope, day.left_usd, day.resets_at) == (
        "all (simulated)",
        7.0,
        "2026-12-03T00:00:00.000000+00:00",
    )
    assert month.scope == "model small (simulated)" and month.resets_at.startswith("2027-01-01")
    assert set(sim.budgets.status().to_frame().columns) >= {
        "limit_usd",
        "spent_usd",
        "reserved_usd",
        "left_usd",
        "resets_at",
    }
    sim.budgets.remove(c.id)
    assert [x.id for x in sim.budgets.all()] == [a.id]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"limit_usd": 0}, "positive amount"),
        ({"limit_usd": -1}, "positive amount"),
        ({"limit_usd": float("inf")}, "finite"),
        ({"limit_usd": 1, "period": "year"}, "unknown period 'year'"),
        ({"limit_usd": 1, "vendor": "A", "model": "m"}, "not both"),
        ({"limit_usd": 1, "warn_at": 1.5}, "warn_at"),
    ],
)
def test_bad_budgets_are_refused(sim, kwargs, message):
    """Each bad value is an InvalidInputError naming it; nothing is stored."""
    limit = kwargs.pop("limit_usd")
    with pytest.raises(InvalidInputError, match=message):
        sim.budgets.set(limit, **kwargs)
    assert len(sim.budgets) == 0


def test_period_bounds_are_calendar_utc():
    """day, week (from Monday), month and total, in UTC."""
    assert period_bounds("day", NOON)[0].startswith("2026-12-02T00:00")
    assert period_bounds("week", NOON) == (
        "2026-11-30T00:00:00.000000+00:00",
        "2026-12-07T00:00:00.000000+00:00",
    )
    assert period_bounds("month", NOON)[1].startswith("2027-01-01")
    assert period_bounds("total", NOON)[1] is None


# -- refusing and settling ------------------------------------------------------------------
def test_a_call_that_does_not_fit_is_refused_and_never_sent(sim):
    """The worst case (prompt + max_tokens) must fit what is left: else BudgetExceeded naming
    the budget, its limit and what is left, no usage row, no call to the provider."""
    sim.budgets.set(0.001, period="day", simulated=True)
    provider = sim.provider("simulated")
    with pytest.raises(BudgetExceeded) as info:
        sim.ask("hello", model="small", provider="simulated")  # 1,000 tokens out: $0.002
    err = info.value
    assert err.limit_usd == 0.001 and err.left_usd == pytest.approx(0.001)
    assert "budget #1" in str(err) and "a smaller max_tokens reserves less" in str(err)
    assert provider.calls == 0 and spent(sim) == 0 and reserved(sim) == 0
    answer = sim.ask("hello", model="small", provider="simulated", max_tokens=100)
    assert answer.cost_usd > 0 and reserved(sim) == 0  # settled by its row
    [status] = sim.budgets.status()
    assert status.spent_usd == pytest.approx(answer.cost_usd)
    assert sim.events.count("budget.exceeded") == 1


def test_spending_stops_at_the_cap_and_never_passes_it(sim):
    """Calls until the budget refuses: recorded spend stays under the limit."""
    sim.budgets.set(0.005, period="day", simulated=True)
    answered = 0
    with pytest.raises(BudgetExceeded):
        for _ in range(100):
            sim.ask("Write an essay", model="small", provider="simulated", max_tokens=400)
            answered += 1
    assert answered >= 2 and spent(sim) <= 0.005
    assert sim.budgets.status()[0].left_usd == pytest.approx(0.005 - spent(sim))


def test_a_failed_attempt_frees_its_reservation(sim):
    """A provider failure: the reservation is released (the row costs nothing)."""
    sim.budgets.set(1.0, period="day", simulated=True)
    sim.provider("simulated").fail_always("small", "overload")
    sim.provider("simulated").fail_always("other", "overload")
    with pytest.raises(ims_kit.AllModelsFailed):
        sim.ask("hi", model="small", fallbacks=["other"], provider="simulated")
    assert reserved(sim) == 0 and sim.budgets.status()[0].spent_usd == 0


def test_a_budget_falls_back_to_a_model_it_does_not_cover(sim):
    """A model's own budget refuses it: the next candidate, under no budget, answers."""
    sim.budgets.set(0.0001, period="day", model="small", simulated=True)
    answer = sim.ask("hi", model="small", fallbacks=["other"], provider="simulated")
    assert answer.model_id == "other"
    assert [a.error_kind for a in answer.attempts] == ["BUDGET", None]


def test_the_selector_leaves_out_what_a_budget_cannot_take(sim):
    """recommend() says "budget" for the excluded model; when the budgets leave nothing,
    recommending and asking are BudgetExceeded (not a bare NoModelAvailable)."""
    sim.budgets.set(0.0001, period="day", model="small", simulated=True)
    rec = sim.recommend("hi", provider="simulated")
    assert rec.model.model_id == "other"
    [(model, reason)] = [
        (c.model_id, c.reasons[0]) for c in rec.excluded if c.excluded_by == "budget"
    ]
    assert model == "small" and "worst case" in reason
    sim.budgets.set(0.0001, period="day", simulated=True)
    with pytest.raises(BudgetExceeded):
        sim.ask("hi", provider="simulated")
    with pytest.raises(BudgetExceeded):
        sim.recommend("hi", provider="simulated")
    with pytest.raises(NoModelAvailable, match="2 by context window"):  # not the budget
        sim.recommend("hi", provider="simulated", min_context_window=100_001)


def test_unpriced_models_are_refused_unless_the_budget_allows_them(sim):
    """Unknown cost is never $0 under a budget: refused, unless allow_unpriced."""
    sim.registry.register(
        ModelSpec(model_id="free?", vendor="Acme", provider="simulated", context_window=100_000)
    )
    sim.budgets.set(1.0, period="day", simulated=True)
    with pytest.raises(BudgetExceeded, match="unpriced"):
        sim.ask("hi", model="free?", provider="simulated")
    sim.budgets.set(1.0, period="day", simulated=True, allow_unpriced=True)
    assert sim.ask("hi", model="free?", provider="simulated").cost_usd is None


def test_real_and_simulated_budgets_are_apart(sim):
    """A budget for real calls never refuses a simulated one, and the other way round."""
    sim.budgets.set(0.0001, period="day")  # real calls only
    assert sim.ask("hi", model="small", provider="simulated").model_id == "small"
    assert sim.budgets.status()[0].spent_usd == 0  # the simulated cost is not real spend


def test_a_warning_once_per_period_at_warn_at(sim):
    """budget.warning when spent + reserved crosses warn_at, once in a period."""
    sim.budgets.set(0.01, period="day", simulated=True, warn_at=0.1)
    for _ in range(3):
        sim.ask("hello", model="small", provider="simulated", max_tokens=500)
    assert sim.events.count("budget.warning") == 1


def test_a_new_period_starts_from_nothing(sim, clock):
    """The clock passes midnight: today's spend no longer counts; a total budget keeps it."""
    day = sim.budgets.set(0.01, period="day", simulated=True)
    total = sim.budgets.set(1.0, period="total", simulated=True)
    sim.ask("hello", model="small", provider="simulated", max_tokens=100)
    before = {s.id: s.spent_usd for s in sim.budgets.status()}
    assert before[day.id] > 0 and before[total.id] == before[day.id]
    clock.advance(13 * 3600)  # 01:00 the next day
    after = {s.id: s.spent_usd for s in sim.budgets.status()}
    assert after[day.id] == 0 and after[total.id] == before[total.id]


def test_a_budget_set_mid_period_counts_what_was_already_spent(sim):
    """Spending earlier today counts against a day budget set now."""
    sim.ask("hello", model="small", provider="simulated", max_tokens=100)
    sim.budgets.set(1.0, period="day", simulated=True)
    assert sim.budgets.status()[0].spent_usd == pytest.approx(spent(sim))


def test_a_stale_reservation_expires(sim, clock):
    """A reservation older than its time no longer holds the money."""
    sim.budgets.set(0.01, period="day", simulated=True)
    spec = sim.registry.lookup("small")
    sim.budgets.reserve(spec, 0.009, simulated=True)
    assert sim.budgets.status()[0].left_usd == pytest.approx(0.001)
    clock.advance(RESERVATION_TTL_S + 1)
    assert sim.budgets.status()[0].reserved_usd == 0


# -- across processes ------------------------------------------------------------------------
WORKER = textwrap.dedent(
    """
    import sys, ims_kit
    from ims_kit.errors import BudgetExceeded
    kit = ims_kit.open(sys.argv[1])
    done = refused = 0
    for _ in range(int(sys.argv[2])):
        try:
            kit.ask("Write an essay", model="small", provider="simulated", max_tokens=300)
            done += 1
        except BudgetExceeded:
            refused += 1
    print(done, refused)
    """
)


def test_processes_racing_never_pass_the_cap(sim, db_path, tmp_path):
    """Four processes spend against one budget at once: some calls are refused, every
    answered call is a row, and the recorded spend never passes the limit."""
    sim.budgets.set(0.004, period="total", simulated=True)
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(db_path), "15"], stdout=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    counts = [tuple(map(int, p.communicate(timeout=120)[0].split())) for p in procs]
    answered = sum(d for d, _ in counts)
    assert all(p.returncode == 0 for p in procs)
    assert sum(r for _, r in counts) > 0 and answered > 0
    assert sim.db.execute("SELECT count(*) FROM usage WHERE success = 1").fetchone()[0] == answered
    assert 0 < spent(sim) <= 0.004 and reserved(sim) == 0


def test_a_killed_processs_reservation_is_released(sim, db_path, tmp_path):
    """A process holding a reservation is SIGKILLed: the money is free again at once."""
    sim.budgets.set(0.01, period="day", simulated=True)
    script = tmp_path / "holder.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys, time, ims_kit
            kit = ims_kit.open(sys.argv[1])
            kit.budgets.reserve(kit.registry.lookup("small"), 0.009, simulated=True)
            print("held", flush=True)
            time.sleep(60)
            """
        )
    )
    proc = subprocess.Popen(
        [sys.executable, str(script), str(db_path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "held"
    assert sim.budgets.status()[0].reserved_usd == pytest.approx(0.009)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert sim.budgets.status()[0].reserved_usd == 0


# -- real calls on the loopback server ---------------------------------------------------------
def test_a_refused_real_call_never_reaches_the_vendor(kit, vendor, monkeypatch, clock):
    """Against the loopback server: the refused call sends nothing; a fitting one is a row."""
    build_lab(kit, vendor, monkeypatch, clock)
    kit.budgets.set(0.0005, period="day", vendor="OpenAI")
    with pytest.raises(BudgetExceeded):
        kit.ask("hello there", model="primary")  # 1,000 tokens at $2/M: $0.002 worst case
    assert vendor.requests == []
    kit.ask("hello there", model="primary", max_tokens=100)
    assert len(vendor.requests) == 1 and kit.budgets.status()[0].spent_usd > 0


# -- the command line ----------------------------------------------------------------------------
def test_the_budget_commands(run):
    """ims budget set / list (--json) / rm; bad input is one line."""
    run("init")
    assert "budget #1 (all, $5.0000 per day) set" in run("budget", "set", "5").output
    run("budget", "set", "20", "--period", "month", "--vendor", "openai", "--warn-at", "0.8")
    listed = json.loads(run("budget", "list", "--json").output)
    assert [(b["scope"], b["period"], b["limit_usd"]) for b in listed] == [
        ("all", "day", 5.0),
        ("vendor OpenAI", "month", 20.0),
    ]
    assert "LEFT" in run("budget", "list").output
    assert run("budget", "rm", "1").output == "budget #1 removed\n"
    for args, message in [
        (["set", "0"], "positive amount"),
        (["set", "1", "--vendor", "Acme"], "unknown vendor 'Acme'"),
        (["set", "1", "--model", "nope"], "unknown model id 'nope'"),
        (["rm", "9"], "no budget #9"),
    ]:
        result = CliRunner().invoke(cli, ["budget", *args])
        assert result.exit_code == 1 and message in result.output and result.output.count("\n") == 1


def test_a_refused_ask_is_one_line_and_status_shows_the_spent_budget(run):
    """`ims ask` refused by a budget exits 1 in one line; `ims status` names the budget."""
    run("init")
    run("budget", "set", "0.0000001", "--simulated")
    result = CliRunner().invoke(cli, ["ask", "hi", "--provider", "simulated", "--model", "gpt-4o"])
    assert result.exit_code == 1 and "refused before sending" in result.output
    assert result.output.count("\n") == 1
    status = json.loads(CliRunner().invoke(cli, ["status", "--json"]).output)
    assert status["budgets"][0]["limit_usd"] == 0.0000001
    text = CliRunner().invoke(cli, ["status", "--once"]).output
    assert "BUDGETS" in text and "#1" in text


def test_a_spent_budget_is_a_problem_of_the_health(sim):
    """left 0: health says the budget's calls are refused, and when it resets."""
    from ims_kit import health

    found = health.problems(
        models=1, active=1, blocking={}, requests=0, success_rate=None, failures=0,
        budgets=[{"id": 3, "scope": "all", "left_usd": 0.0,
                  "resets_at": "2026-12-03T00:00:00+00:00"}],
    )  # fmt: skip
    assert found == ["budget #3 (all) is spent: its calls are refused, resets 2026-12-03 00:00 UTC"]
