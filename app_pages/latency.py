"""Latency: p50/p95/p99 by model, the distribution, latency over time, and the time to
first token of streamed calls."""

import streamlit as st

from app_pages import _shared as shared
from ims_kit import charts, usage_frames

st.title("Latency")


@st.fragment(run_every=shared.refresh_every())
def live() -> None:
    f = shared.filters()
    hist = shared.latency(shared.db_path(), f.args)
    if hist.empty:
        if not shared.no_usage(f):
            st.info("No successful call in this range: latency is measured on successes.")
        return
    overall = usage_frames.percentiles(hist, by=None).iloc[0]
    by_model = usage_frames.percentiles(hist, by="model")
    cols = st.columns(4)
    cols[0].metric("Successful attempts", f"{int(overall['successes']):,}")
    cols[1].metric("p50", shared.ms(overall["p50_latency_ms"]))
    cols[2].metric("p95", shared.ms(overall["p95_latency_ms"]))
    cols[3].metric("p99", shared.ms(overall["p99_latency_ms"]))

    shared.chart(charts.latency_percentiles(by_model), key="by_model")
    left, right = st.columns(2)
    with left:
        shared.chart(charts.latency_distribution(hist), key="distribution")
    with right:
        over_time = usage_frames.percentiles(hist, by="bucket")
        shared.chart(charts.latency_over_time(over_time), key="over_time")
    percentile_table(by_model, "latency")
    st.caption("Percentiles are read from 2.5%-wide latency bins, so they are within 2.5%.")
    first_token(f)


def first_token(f) -> None:
    """Time to first token: what a streamed answer's reader waits before text appears."""
    st.subheader("Time to first token (streamed calls)")
    by_model = shared.ttft(shared.db_path(), f.args)
    if by_model.empty:
        st.caption("No streamed call in this range (`kit.stream`, `ims ask --stream`, `ims chat`).")
        return
    percentile_table(by_model, "ttft")


def percentile_table(frame, measure: str) -> None:
    """A per-model table whose p50/p95/p99 columns of ``measure`` read in milliseconds."""
    names = [f"p{p}_{measure}_ms" for p in (50, 95, 99)]
    formats = {c: st.column_config.NumberColumn(c.split("_")[0], format="%.0f ms") for c in names}
    st.dataframe(frame, hide_index=True, column_config=formats)


live()
