"""kit.map / kit.map_async / ims batch: order, isolation, resume, budget stop, breakers per item."""

from __future__ import annotations

import asyncio
import json

import pytest
from click.testing import CliRunner

from ims_kit.batch import BatchResult
from ims_kit.cli import cli
from ims_kit.errors import AllModelsFailed, BudgetExceeded, InvalidInputError
from ims_kit.records import Answer

SUMS = [f"What is {i}+1?" for i in range(30)]


def run_map(kit, how, prompts, **kw):
    if how == "sync":
        return kit.map(prompts, progress=False, **kw)
    return asyncio.run(kit.map_async(prompts, progress=False, **kw))


@pytest.fixture(params=["sync", "async"])
def how(request):
    return request.param


def test_results_are_in_input_order_and_one_bad_prompt_is_its_own_error(seeded, how):
    """Each entry answers its own prompt; an empty prompt is that entry's InvalidInputError."""
    prompts = [*SUMS, "", {"messages": [{"role": "user", "content": "What is 7*6?"}], "id": "x"}]
    result = run_map(seeded, how, prompts, provider="simulated", concurrency=5)
    assert isinstance(result, BatchResult) and len(result) == 32
    assert [r.text for r in result[:30]] == [str(i + 1) for i in range(30)]
    assert isinstance(result[30], InvalidInputError) and result[31].text == "42"
    assert result.ids[31] == "x" and result.summary()["failed"] == 1
    frame = result.to_frame()
    assert list(frame["ok"]) == [True] * 30 + [False, True]
    assert seeded.db.execute("SELECT count(*) FROM usage").fetchone()[0] == 31


def test_bad_shared_arguments_are_refused_before_anything_is_sent(seeded, how):
    """An unknown keyword or a bad option is one InvalidInputError, and no call is made."""
    for kw, message in [
        ({"tempreture": 0.2}, "tempreture"),
        ({"temperature": 9}, "temperature must be from 0 to 2"),
        ({"concurrency": 0}, "concurrency must be at least 1"),
    ]:
        with pytest.raises(InvalidInputError, match=message):
            run_map(seeded, how, SUMS, provider="simulated", **kw)
    with pytest.raises(InvalidInputError, match="item 1 has unknown key"):
        run_map(seeded, how, ["hi", {"prompt": "x", "model": "m"}], provider="simulated")
    assert seeded.db.execute("SELECT count(*) FROM usage").fetchone()[0] == 0


def test_a_named_batch_resumes_with_what_has_no_answer(seeded, how):
    """A rerun of the same named batch sends only the failed and the new prompts; an edited
    prompt is asked again."""
    sim = seeded.provider("simulated")
    sim.inject("*", "invalid_request", count=1)  # the first call fails (not retried)
    first = run_map(seeded, how, SUMS[:10], provider="simulated", batch="b", concurrency=1)
    assert len(first.answers) == 9 and len(first.errors) == 1
    calls = sim.calls
    edited = [*SUMS[:9], "What is 100+1?", SUMS[10]]
    edited[3] = "What is 50+1?"
    second = run_map(seeded, how, edited, provider="simulated", batch="b")
    assert sim.calls - calls == 4  # the failed one, the two edited ones, the new one
    assert second.reused == 7 and [r.text for r in second] == [
        "1", "2", "3", "51", "5", "6", "7", "8", "9", "101", "11",
    ]  # fmt: skip
    assert all(isinstance(r, Answer) for r in second)


def test_a_budget_that_runs_out_stops_the_batch_cleanly(seeded, how):
    """Once a budget refuses, no new prompt starts: the answered part is returned."""
    seeded.budgets.set(0.00002, period="day", simulated=True)
    result = run_map(
        seeded, how, SUMS, provider="simulated", model="gpt-4o-mini", max_tokens=20, concurrency=1
    )
    assert result.stopped.startswith("budget") and result.not_run > 0
    assert 0 < len(result.answers) < 30
    assert any(isinstance(r, BudgetExceeded) for r in result)
    assert sum(a.cost_usd for a in result.answers) <= 0.00002


def test_a_tripped_breaker_reroutes_the_rest_of_the_batch(seeded):
    """A model that keeps failing opens its breaker; later prompts go to the fallback without
    calling it again."""
    sim = seeded.provider("simulated")
    sim.fail_always("gpt-4o-mini", "overload")
    result = seeded.map(
        SUMS[:12], model="gpt-4o-mini", fallbacks=["gpt-4o"], provider="simulated",
        concurrency=1, progress=False,
    )  # fmt: skip
    assert all(r.model_id == "gpt-4o" for r in result)
    kinds = [a.error_kind for a in result[-1].attempts]
    assert kinds == ["CIRCUIT_OPEN", None]  # no call to the failing model any more


def test_every_candidate_failing_is_that_items_error(seeded):
    """AllModelsFailed ends one item, not the batch."""
    seeded.provider("simulated").fail_always("gpt-4o-mini", "overload")
    result = seeded.map(["hi", "ho"], model="gpt-4o-mini", provider="simulated", progress=False)
    assert all(isinstance(r, AllModelsFailed) for r in result) and result.stopped is None


def test_ims_batch_writes_jsonl_in_order_and_resumes(run, tmp_path):
    """ims batch FILE --out: one line per prompt in order; a rerun says what came from before;
    a line that is not JSON is one error before anything is sent."""
    run("init")
    src = tmp_path / "prompts.jsonl"
    src.write_text(
        "\n".join(json.dumps(p) for p in [*SUMS[:5], {"prompt": "Say hello", "id": "g"}])
    )
    out = tmp_path / "answers.jsonl"
    first = CliRunner().invoke(
        cli, ["batch", str(src), "--provider", "simulated", "--out", str(out)]
    )
    assert first.exit_code == 0, first.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [x["text"] for x in lines] == ["1", "2", "3", "4", "5", "Hello!"] and lines[5][
        "id"
    ] == "g"
    again = CliRunner().invoke(cli, ["batch", str(src), "--provider", "simulated"])
    assert again.exit_code == 0 and "6 from earlier runs" in again.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text('"ok"\n{oops\n')
    failed = CliRunner().invoke(cli, ["batch", str(bad), "--provider", "simulated"])
    assert failed.exit_code == 1 and "bad.jsonl:2: not JSON" in failed.stderr


def test_ims_batch_exits_1_when_an_item_failed(run, tmp_path):
    """A failed item: its line says why, the exit status is 1."""
    run("init")
    src = tmp_path / "p.jsonl"
    src.write_text('"hi"\n""\n')
    result = CliRunner().invoke(cli, ["batch", str(src), "--provider", "simulated"])
    assert result.exit_code == 1
    second = json.loads(result.stdout.splitlines()[1])
    assert second["ok"] is False and "the prompt is empty" in second["error"]
