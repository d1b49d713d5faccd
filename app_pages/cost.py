"""Cost: over time per model or vendor, cumulative, per attempt; unpriced calls apart."""

import streamlit as st

from app_pages import _shared as shared
from ims_kit import charts, usage_frames

st.title("Cost")
by = st.segmented_control("Stack by", ["model", "vendor"], default="model", key="cost_by")


@st.fragment(run_every=shared.refresh_every())
def live() -> None:
    f = shared.filters()
    budgets = shared.budgets(shared.db_path())
    if budgets:
        st.subheader("Budgets")
        shared.budget_table(budgets)
        st.caption(
            "Spent and reserved in the current period (UTC calendar); a call whose worst case"
            " does not fit what is left is refused before it is sent. `ims budget list`."
        )
    timeline = shared.timeline(shared.db_path(), f.args)
    if timeline.empty:
        shared.no_usage(f)
        return
    figures = usage_frames.totals(timeline)
    by_model = usage_frames.cost_by_model(timeline)
    shared.simulated_banner(figures["simulated_attempts"], figures["attempts"])
    cols = st.columns(5)
    real = figures["attempts"] - figures["simulated_attempts"]
    cols[0].metric("Cost (real)", shared.money(figures["cost"]) if real else "-")
    cols[1].metric(
        "Simulated cost",
        shared.money(figures["simulated_cost"]) if figures["simulated_attempts"] else "-",
    )
    cols[2].metric("Requests", f"{figures['requests']:,}", help="One per ask")
    cols[3].metric(
        "Unpriced attempts",
        f"{figures['unpriced_attempts']:,}",
        help="Attempts on models without a price: counted here, never as $0",
    )
    cols[4].metric("Tokens", f"{figures['tokens']:,}")

    shared.chart(charts.cost_over_time(timeline, by=by or "model"), key="cost_over_time")
    left, right = st.columns(2)
    with left:
        shared.chart(charts.cumulative_cost(usage_frames.cumulative_cost(timeline)), key="cum")
    with right:
        shared.chart(charts.cost_per_attempt(by_model), key="per_attempt")

    unpriced = by_model[by_model["unpriced_attempts"] > 0]
    if len(unpriced):
        st.info(
            "Unpriced attempts, not included in any cost: "
            + ", ".join(
                f"`{m}` {n:,}" for m, n in zip(unpriced["model"], unpriced["unpriced_attempts"])
            )
            + ". Give these models a price (`ims prices sync`, `ims models import`) to count them.",
            icon=":material/money_off:",
        )
    st.subheader("By model")
    st.dataframe(
        [
            {
                "model": r["model"],
                "vendor": r["vendor"],
                "simulated": r["simulated"],
                "requests": r["requests"],
                "attempts": r["attempts"],
                "failed attempts": r["failed_attempts"],
                "unpriced attempts": r["unpriced_attempts"],
                "cost": shared.money(r["cost_usd"]),
                "per attempt": shared.money(r["cost_per_attempt_usd"]),
                "tokens": r["tokens"],
            }
            for r in by_model.to_dict("records")
        ],
        hide_index=True,
    )
    st.caption(f"Buckets of {shared.bucket_label(timeline.attrs.get('bucket_s', 0))}.")


live()
