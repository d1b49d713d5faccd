"""The Streamlit dashboard through streamlit.testing.v1.AppTest: every page, every state."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import ims_kit
from ims_kit.simulate import simulate

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 60  # AppTest's default of 3 s is too short for a cold page on a busy machine
PAGES = ["overview", "cost", "latency", "circuits", "registry", "workflows", "events"]
EXPECTED = {  # page: (metric labels, at least this many plotly charts)
    "overview": (["Requests", "Attempts", "Request success", "Cost (real)", "p95 latency"], 2),
    "cost": (["Cost (real)", "Simulated cost", "Requests", "Unpriced attempts"], 3),
    "latency": (["Successful attempts", "p50", "p95", "p99"], 3),
    "circuits": (["Open now", "Half-open now", "Openings in range"], 2),
    "registry": ([], 1),
    "workflows": ([], 1),
    "events": ([], 1),
}


@pytest.fixture(scope="module")
def simulated_db(tmp_path_factory) -> Path:
    """A seeded database with a simulated workload whose fault window opened a circuit."""
    path = tmp_path_factory.mktemp("app") / "ims.db"
    with ims_kit.open(path) as kit:
        kit.registry.seed()
        simulate(kit, requests=240, faults="gemini-2.5-pro:overload@40-70", seed=7)
    return path


@pytest.fixture(autouse=True)
def _fresh_streamlit_caches():
    """Each test sees its own database, not a Kit or figures cached by an earlier test."""
    import streamlit as st

    yield
    st.cache_data.clear()
    st.cache_resource.clear()


def app(monkeypatch, db: Path, page: str = "overview"):
    """An AppTest of app.py on ``db``, showing ``page`` (not run yet)."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("IMS_DB", str(db))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT_S)
    if page != "overview":
        at.switch_page(f"app_pages/{page}.py")
    return at


def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def specs(at) -> list[str]:
    """Each plotly chart's figure JSON, in page order."""
    return [el.proto.spec for el in at.get("plotly_chart")]


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_simulated_data(monkeypatch, simulated_db, page):
    """No exception; the page's metrics and charts are there; simulated data says so."""
    at = app(monkeypatch, simulated_db, page).run()
    assert not at.exception, at.exception
    labels, charts = EXPECTED[page]
    assert set(labels) <= set(metrics(at))
    assert len(at.get("plotly_chart")) >= charts
    for spec in specs(at):
        assert json.loads(spec)["data"], f"an empty chart on {page}"
    if page in ("overview", "cost"):
        assert any("Simulated data" in w.value for w in at.warning)


def test_overview_figures_match_the_library(monkeypatch, simulated_db):
    """The headline numbers are the library's: requests and attempts apart, simulated cost."""
    with ims_kit.open(simulated_db) as kit:
        figures = kit.usage.overview()
    shown = metrics(app(monkeypatch, simulated_db).run())
    assert shown["Requests"] == f"{figures['requests']:,}" == "240"
    assert shown["Attempts"] == f"{figures['attempts']:,}"
    assert figures["attempts"] > figures["requests"]  # retries and fallbacks are attempts
    assert shown["Cost (real)"] == "-"  # every call was simulated: no real spend to show
    assert shown["Simulated cost"].startswith("$")
    p95 = figures["p95_latency_ms"]
    assert shown["p95 latency"] == (f"{p95:,.0f} ms" if p95 < 1000 else f"{p95 / 1000:,.2f} s")


def test_unpriced_calls_are_counted_apart(monkeypatch, simulated_db):
    """The local model's calls are counted as unpriced and named, never added as $0."""
    at = app(monkeypatch, simulated_db, "cost").run()
    assert int(metrics(at)["Unpriced attempts"].replace(",", "")) > 0
    assert any("llama-3.1-8b" in i.value for i in at.info)
    table = at.dataframe[0].value.set_index("model")
    assert table.loc["llama-3.1-8b", "cost"] == "unpriced"  # said, not a raw None
    assert "None" not in table.astype(str).to_string()


@pytest.mark.parametrize("page", PAGES)
def test_missing_database_says_what_to_run_and_creates_nothing(monkeypatch, tmp_path, page):
    """No file: every page says `ims init` / `ims simulate`, and the file is not created."""
    missing = tmp_path / "nowhere" / "ims.db"
    at = app(monkeypatch, missing, page).run()
    assert not at.exception
    text = " ".join(i.value for i in at.info)
    assert "ims init" in text and "ims simulate" in text
    assert not missing.exists()
    assert not missing.parent.exists()


def test_a_file_that_is_not_a_database_is_named_not_sent_to_init(monkeypatch, db_path):
    """A garbage file: the dashboard says what is wrong and to move it, not to run ims init."""
    db_path.write_bytes(b"garbage" * 100)
    at = app(monkeypatch, db_path).run()
    assert not at.exception
    assert not at.info
    assert "not an SQLite database: move it aside" in at.error[0].value
    assert db_path.read_bytes() == b"garbage" * 100


def test_empty_registry_says_to_run_init(monkeypatch, kit, db_path):
    """A migrated database without models is not shown as an empty dashboard."""
    at = app(monkeypatch, db_path).run()
    assert not at.exception
    assert any("registry is empty" in i.value for i in at.info)


@pytest.mark.parametrize("page", PAGES)
def test_no_calls_yet_is_explained_not_failed(monkeypatch, seeded, db_path, page):
    """A seeded registry without any call: pages render and point at `ims simulate`."""
    at = app(monkeypatch, db_path, page).run()
    assert not at.exception, at.exception
    if page in ("overview", "cost", "latency"):
        assert any("ims simulate" in i.value for i in at.info)


def test_model_filter_changes_the_figures(monkeypatch, simulated_db):
    """Choosing a model in the sidebar changes the cost page's numbers and charts."""
    at = app(monkeypatch, simulated_db, "cost").run()
    before, figures = metrics(at), specs(at)
    at.sidebar.multiselect(key="models").set_value(["gpt-5-nano"]).run()
    assert not at.exception
    assert metrics(at)["Simulated cost"] != before["Simulated cost"]
    assert specs(at)[0] != figures[0]
    assert "gpt-5-mini" not in specs(at)[0]


def test_vendor_filter_narrows_the_model_choices_and_the_overview(monkeypatch, simulated_db):
    """A vendor in the sidebar limits the model list and the overview's requests."""
    at = app(monkeypatch, simulated_db).run()
    total = int(metrics(at)["Requests"].replace(",", ""))
    at.sidebar.multiselect(key="vendors").set_value(["Google"]).run()
    assert not at.exception
    assert 0 < int(metrics(at)["Requests"].replace(",", "")) < total
    assert all(m.startswith("gemini") for m in at.sidebar.multiselect(key="models").options)


def test_time_range_filter_applies(monkeypatch, simulated_db):
    """The simulated day ends now: the last 24 hours hold all of it, the last hour a part."""
    at = app(monkeypatch, simulated_db, "latency").run()
    everything = metrics(at)
    at.sidebar.selectbox(key="range").set_value("Last 24 hours").run()
    assert not at.exception
    assert metrics(at) == everything
    at.sidebar.selectbox(key="range").set_value("Last hour").run()
    successes = int(metrics(at)["Successful attempts"].replace(",", ""))
    assert 0 < successes < int(everything["Successful attempts"].replace(",", ""))


def test_recommendation_panel_shows_the_choice_and_its_reasons(monkeypatch, simulated_db):
    """Typing a prompt and pressing Recommend shows kit.recommend's model and reasons."""
    at = app(monkeypatch, simulated_db, "registry").run()
    at.text_area[0].input("Write a Python function that merges two sorted lists.")
    at.selectbox[0].set_value("performance")
    at.button[0].click().run()
    assert not at.exception
    chosen = at.success[0].value
    assert "performance" in chosen
    assert any(md.value.startswith("Why:") for md in at.markdown)
    with ims_kit.open(simulated_db) as kit:
        assert kit.events.find(kinds="model.queried", limit=1)[0].subject in chosen


def test_workflow_history_follows_the_selection(monkeypatch, simulated_db):
    """Picking another workflow shows its own history."""
    at = app(monkeypatch, simulated_db, "workflows").run()
    box = at.selectbox(key="workflow_id")
    other = box.options[1]
    box.set_value(other).run()
    assert not at.exception
    assert any(other in md.value for md in at.markdown)
    history = at.dataframe[-1].value
    assert list(history["event"])[:2] == ["START", "ANALYZED"]


def test_events_filter_by_kind(monkeypatch, simulated_db):
    """Choosing a kind leaves only events of that kind in the table."""
    at = app(monkeypatch, simulated_db, "events").run()
    at.multiselect(key="event_kinds").set_value(["circuit.opened"]).run()
    assert not at.exception
    assert set(at.dataframe[0].value["kind"]) == {"circuit.opened"}
