"""`ims route train` and `ims route eval` through click's runner, on committed sample data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ims_kit.cli import cli
from ims_kit.routing import read_jsonl

DATA = Path(__file__).parent.parent / "data" / "routing"


@pytest.fixture
def run():
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)

    return invoke


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    """Every 5th GSM8K prompt (181 rows) as a JSONL file."""
    path = tmp_path_factory.mktemp("route") / "sample.jsonl"
    rows = read_jsonl(DATA / "gsm8k_dev.jsonl")[::5]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_train_writes_a_router_and_reports_its_figures(run, sample, tmp_path):
    """`ims route train DATA --out PATH --json` saves the file and prints out-of-fold figures."""
    out = tmp_path / "mine.json"
    result = run("route", "train", sample, "--out", out, "--folds", "3", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert out.exists() and summary["bytes"] == out.stat().st_size
    assert summary["rows"] == 181 and 0 < summary["out_of_fold"]["apgr"] < 2


def test_eval_prints_the_table_and_writes_a_plot(run, sample, tmp_path):
    """`ims route eval default DATA --plot F.html` prints router, random, oracle and saves HTML."""
    plot = tmp_path / "curve.html"
    result = run("route", "eval", "default", sample, "--plot", plot)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("181 prompts") and "APGR" in lines[1]
    assert [line.split()[0] for line in lines[2:5]] == ["router", "random", "oracle"]
    assert plot.stat().st_size > 100_000  # plotly.js is inlined: the file opens offline


def test_eval_json_gives_figures_curves_and_spread(run, sample, tmp_path):
    """A router trained by the CLI evaluates with --json: figures, curve and bootstrap."""
    router = tmp_path / "r.json"
    text = run("route", "train", sample, "--out", router, "--folds", "2").output
    assert "out of fold: CPT(50%)" in text and "threshold for 95% quality" in text
    result = run("route", "eval", router, sample, "--json", "--bootstrap", "20")
    data = json.loads(result.stdout)
    assert set(data) >= {"router", "random", "oracle", "curve", "spread", "n"}
    assert data["n"] == 181 and len(data["curve"]) == 11 and "apgr" in data["spread"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["route", "eval", "missing.json", "{sample}"], "no router file at missing.json"),
        (["route", "train", "--out", "x.json"], "needs DATA.jsonl"),
        (["route", "train", "{bad}", "--out", "x.json"], "one class only"),
        (["route", "eval", "default", "{sample}", "--plot", "x.txt"], "--plot writes .html"),
    ],
)
def test_errors_are_one_line(run, sample, tmp_path, args, message):
    """A missing router, no data, unlearnable data or an unwritable plot: one line, exit 1."""
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "a", "strong_correct": True, "weak_correct": True}))
    args = [a.format(sample=sample, bad=bad) for a in args]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    assert message in result.output and len(result.output.strip().splitlines()) == 1


def test_a_plot_that_cannot_be_written_keeps_the_figures(sample, tmp_path):
    """Without kaleido a .png fails after the figures are printed: one error line, exit 1."""
    pytest.importorskip("plotly")
    if __import__("importlib.util").util.find_spec("kaleido") is not None:
        pytest.skip("kaleido is installed: the .png is written")
    result = CliRunner().invoke(cli, ["route", "eval", "default", str(sample), "--plot",
                                      str(tmp_path / "x.png")])  # fmt: skip
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("181 prompts") and "write an .html file" in lines[-1]


def test_train_from_history_learns_from_your_judged_calls(run, seeded, tmp_path):
    """`ims route train --from-history --strong S --weak W` trains on the prompts both models
    answered and you judged (kept with store_text); the router file says where it came from."""
    seeded.usage.store_text = True
    rows = read_jsonl(DATA / "gsm8k_dev.jsonl")[:40]
    for row in rows:
        for model, good in (
            ("gpt-4o", row["strong_correct"]),
            ("gpt-4o-mini", row["weak_correct"]),
        ):
            answer = seeded.ask(row["prompt"], model=model, provider="simulated")
            seeded.feedback(answer.call_id, good=good)
    out = tmp_path / "mine.json"
    result = run(
        "route",
        "train",
        "--from-history",
        "--strong",
        "gpt-4o",
        "--weak",
        "gpt-4o-mini",
        "--out",
        out,
        "--folds",
        "2",
        "--json",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows"] == len({r["prompt"] for r in rows})
    metadata = json.loads(out.read_text())["metadata"]
    assert metadata["strong_model"] == "gpt-4o" and "your history" in metadata["trained_on"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--from-history", "--strong", "gpt-4o"], "needs --strong and --weak"),
        (["--from-history", "--strong", "gpt-4o", "--weak", "gpt-4o-mini"], "judge answers"),
        (["{sample}", "--strong", "gpt-4o"], "go with --from-history"),
        (["{sample}", "--from-history", "--strong", "a", "--weak", "b"], "not both"),
    ],
)
def test_from_history_errors_are_one_line(seeded, sample, tmp_path, args, message):
    """Missing models, no judged history, or mixed sources: one line, exit 1, nothing written."""
    out = tmp_path / "x.json"
    args = ["route", "train", *(a.format(sample=sample) for a in args), "--out", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert not out.exists()
