"""ims_kit.charts: plotly figures from the library's frames, for the dashboard and notebooks."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from ims_kit import charts
from ims_kit import usage_frames as v
from ims_kit.events import Event
from ims_kit.simulate import simulate


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    """Every input the charts take, from one small simulated run with a circuit opening."""
    import ims_kit

    with ims_kit.open(tmp_path_factory.mktemp("charts") / "ims.db") as kit:
        kit.registry.seed()
        simulate(kit, requests=240, faults="gemini-2.5-pro:overload@40-70", seed=7)
        timeline = kit.usage.cost_over_time()
        hist = kit.usage.latency_histogram()
        yield {
            "timeline": timeline,
            "by_model": v.cost_by_model(timeline),
            "cumulative": v.cumulative_cost(timeline),
            "hist": hist,
            "pct": v.percentiles(hist, "model"),
            "pct_time": v.percentiles(hist, "bucket"),
            "errors": kit.usage.errors_by_kind(),
            "transitions": kit.events.find(kind_prefix="circuit.", oldest_first=True),
            "models": kit.registry.to_frame(),
            "workflows": kit.workflows(limit=100),
            "counts": kit.events.kind_counts(),
        }


BUILDERS = [
    ("cost_over_time", lambda f: charts.cost_over_time(f["timeline"], by="model")),
    ("cost_over_time by vendor", lambda f: charts.cost_over_time(f["timeline"], by="vendor")),
    ("cumulative_cost", lambda f: charts.cumulative_cost(f["cumulative"])),
    ("cost_per_attempt", lambda f: charts.cost_per_attempt(f["by_model"])),
    ("requests_over_time", lambda f: charts.requests_over_time(f["timeline"])),
    ("latency_percentiles", lambda f: charts.latency_percentiles(f["pct"])),
    ("latency_distribution", lambda f: charts.latency_distribution(f["hist"])),
    ("latency_over_time", lambda f: charts.latency_over_time(f["pct_time"])),
    ("circuit_timeline", lambda f: charts.circuit_timeline(f["transitions"])),
    ("failures_by_kind", lambda f: charts.failures_by_kind(f["errors"])),
    ("price_vs_quality", lambda f: charts.price_vs_quality(f["models"])),
    ("workflow_states", lambda f: charts.workflow_states(f["workflows"])),
    ("event_counts", lambda f: charts.event_counts(f["counts"])),
]


@pytest.mark.parametrize(("name", "build"), BUILDERS, ids=[b[0] for b in BUILDERS])
def test_every_builder_draws_its_data(frames, name, build):
    """Each builder returns a titled plotly Figure with data, serialisable to JSON."""
    fig = build(frames)
    assert fig.data, name
    assert fig.layout.title.text
    json.loads(fig.to_json())


@pytest.mark.parametrize(("name", "build"), BUILDERS, ids=[b[0] for b in BUILDERS])
def test_every_builder_says_so_when_there_is_no_data(frames, name, build):
    """An empty input gives a figure with no trace and a message, never an exception."""
    empty = {
        k: (x.iloc[0:0] if hasattr(x, "iloc") else {} if isinstance(x, dict) else [])
        for k, x in frames.items()
    }
    fig = build(empty)
    assert not fig.data
    assert fig.layout.annotations[0].text.startswith("no ")


def test_cost_charts_keep_unpriced_and_simulated_apart(frames):
    """The unpriced local model is named apart from the cost bars; mixed traffic is labelled."""
    fig = charts.cost_per_attempt(frames["by_model"])
    assert "llama-3.1-8b" not in list(fig.data[0].y)
    assert "llama-3.1-8b" in fig.layout.annotations[0].text
    mixed = frames["timeline"].copy()
    mixed.loc[mixed.index[:5], "simulated"] = False
    names = {t.name for t in charts.cost_over_time(mixed).data}
    assert any(n.endswith("(simulated)") for n in names)
    assert any(not n.endswith("(simulated)") for n in names)


def test_circuit_segments_follow_the_transitions():
    """closed before the first event; each transition starts a span that ends at the next."""
    t0 = datetime(2025, 1, 1, tzinfo=UTC)

    def ev(kind, seconds, subject="m"):
        return Event(kind, subject, {}, (t0 + timedelta(seconds=seconds)).isoformat())

    segments = charts.circuit_segments(
        [ev("circuit.opened", 10), ev("circuit.half_open", 70), ev("circuit.closed", 71)],
        start=t0,
        end=t0 + timedelta(seconds=100),
    )
    assert [(s["state"], (s["end"] - s["start"]).seconds) for s in segments] == [
        ("closed", 10),
        ("open", 60),
        ("half_open", 1),
        ("closed", 29),
    ]


def test_importing_charts_loads_no_plotly():
    """plotly and pandas load when a figure is drawn, not when ims_kit.charts is imported."""
    code = (
        "import sys, ims_kit.charts, ims_kit.usage_frames;"
        "print(any(m.split('.')[0] in ('plotly', 'pandas') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_price_vs_quality_labels_alternate_and_the_note_clears_the_axis(frames):
    """Neighbouring frontier labels sit on opposite sides of their points; the note sits below
    the tick labels and the axis title."""
    fig = charts.price_vs_quality(frames["models"])
    placed = []
    for trace in fig.data:
        for x, label, where in zip(trace.x, trace.text, trace.textposition, strict=True):
            if label:
                placed.append((x, where))
    sides = [where for _, where in sorted(placed)]
    assert len(sides) >= 3
    assert all(a != b for a, b in itertools.pairwise(sides))
    note = fig.layout.annotations[-1]
    assert note.yshift <= -60 and fig.layout.margin.b >= 100
