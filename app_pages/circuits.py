"""Circuits: every breaker's state now, the transitions over time, failures by error kind."""

import streamlit as st

from app_pages import _shared as shared
from ims_kit import charts

st.title("Circuits")


@st.fragment(run_every=shared.refresh_every())
def live() -> None:
    f = shared.filters()
    path = shared.db_path()
    states, unavailable = shared.circuits(path)
    if f.models:
        states = {m: s for m, s in states.items() if s["model_id"] in f.models}
    transitions = shared.events(
        path, f.range, kind_prefix="circuit.", subjects=f.models, limit=5000, oldest_first=True
    )
    counts = shared.event_counts(path, f.range, ("circuit.opened", "recovery.fallback"))
    cols = st.columns(5)
    cols[0].metric("Open now", sum(s["state"] == "open" for s in states.values()))
    cols[1].metric("Half-open now", sum(s["state"] == "half_open" for s in states.values()))
    cols[2].metric("Refusing calls", len([m for m in unavailable if m in states]))
    cols[3].metric("Openings in range", counts.get("circuit.opened", 0))
    cols[4].metric("Fallbacks in range", counts.get("recovery.fallback", 0))

    st.subheader("Breakers now")
    if states:
        st.dataframe(
            [
                {
                    "model": m,
                    "state": s["state"].replace("_", "-"),
                    "consecutive failures": s["consecutive_failures"],
                    "last error": s["last_error_kind"],
                    "opened at (UTC)": shared.when(s["opened_at"]),
                    "retry at (UTC)": shared.when(s["retry_at"]),
                    "refusing calls": m in unavailable,
                }
                for m, s in states.items()
            ],
            hide_index=True,
            width="stretch",
        )
    else:
        st.write("No breaker has recorded a failure: every model's circuit is closed.")
    start, end = shared.time_axis(path, f.args, transitions)
    shared.chart(charts.circuit_timeline(transitions, start=start, end=end), key="timeline")
    shared.chart(charts.failures_by_kind(shared.errors(path, f.args)), key="failures")


live()
