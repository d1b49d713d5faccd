"""Events: the latest events, filterable by kind (and by the sidebar's models as subjects)."""

import json

import streamlit as st

from app_pages import _shared as shared
from ims_kit import charts

st.title("Events")


@st.fragment(run_every=shared.refresh_every())
def live() -> None:
    f = shared.filters()
    path = shared.db_path()
    counts = shared.event_counts(path, f.range)
    cols = st.columns([3, 1])
    kinds = cols[0].multiselect(
        "Kinds",
        list(counts),
        format_func=lambda kind: f"{kind} ({counts.get(kind, 0):,})",
        key="event_kinds",
        placeholder="All kinds",
    )
    limit = cols[1].selectbox("Show", [50, 200, 1000], index=1, key="event_limit")
    found = shared.events(path, f.range, kinds=tuple(kinds), subjects=f.models, limit=limit)
    if not found:
        st.info("No events match. `ims simulate` or any `ims` command writes some.")
        return
    st.caption(f"{sum(counts.values()):,} events in this range; the newest {len(found)} shown.")
    st.dataframe(
        [
            {
                "time (UTC)": shared.when(e.ts) + e.ts[19:23],
                "kind": e.kind,
                "subject": e.subject,
                "payload": json.dumps(e.payload, default=str),
            }
            for e in found
        ],
        hide_index=True,
        height=420,
    )
    shared.chart(charts.event_counts(counts), key="counts")


live()
