"""Workflows: the states of recent workflows and one workflow's history."""

import streamlit as st

from app_pages import _shared as shared
from ims_kit import charts
from ims_kit.workflow import STATES

st.title("Workflows")
k = shared.kit()
cols = st.columns([1, 1, 3])
state = cols[0].selectbox("State", ["All", *STATES])
limit = cols[1].selectbox("Show", [25, 50, 100, 500], index=1)
recent = k.workflows(state=None if state == "All" else state, limit=limit)
if not recent:
    st.info(
        "No workflows yet. `ims simulate` runs documents and code tasks through workflows;"
        " `ims run PROMPT --provider simulated` runs one."
    )
    st.stop()

shared.chart(charts.workflow_states(recent), key="states")
st.dataframe(
    [
        {
            "workflow": w.workflow_id,
            "state": w.state,
            "updated (UTC)": shared.when(w.updated),
            "steps": w.transitions,
            "model / reason": w.context.get("reason")
            or w.context.get("answered_by")
            or w.context.get("model")
            or "",
        }
        for w in recent
    ],
    hide_index=True,
)

st.subheader("History")
chosen = st.selectbox(
    "Workflow", [w.workflow_id for w in recent], format_func=lambda i: i, key="workflow_id"
)
wf = k.workflow(chosen, create=False)
st.write(f"**{wf.id}**: {wf.state}, created {shared.when(wf.created)} UTC")
st.dataframe(
    [
        {
            "time (UTC)": shared.when(t.ts) + t.ts[19:23],
            "event": t.event,
            "from": t.source,
            "to": t.target,
            "context": ", ".join(f"{a}={b}" for a, b in t.context.items() if b is not None),
        }
        for t in wf.get_history()
    ],
    hide_index=True,
)
if wf.state == "FAILED":
    st.error(f"Reason: {wf.context.get('reason')}")
with st.expander("Context"):
    st.json(wf.context)
