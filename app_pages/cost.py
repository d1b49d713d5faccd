"""Cost: over time per model or vendor, cumulative, per request; unpriced calls apart."""

import streamlit as st

from app_pages import _shared as shared
from ims_kit import charts, usage_views

st.title("Cost")
by = st.segmented_control("Stack by", ["model", "vendor"], default="model", key="cost_by")


@st.fragment(run_every=shared.refresh_every())
def live() -> None:
    f = shared.filters()
    timeline = shared.timeline(shared.db_path(), f.args)
    if timeline.empty:
        shared.no_usage(f)
        return
    figures = usage_views.totals(timeline)
    by_model = usage_views.cost_by_model(timeline)
    shared.simulated_banner(figures["simulated_requests"], figures["requests"])
    cols = st.columns(5)
    real = figures["requests"] - figures["simulated_requests"]
    cols[0].metric("Cost (real)", shared.money(figures["cost_usd"]) if real else "-")
    cols[1].metric(
        "Simulated cost",
        shared.money(figures["simulated_cost_usd"]) if figures["simulated_requests"] else "-",
    )
    cols[2].metric("Priced calls", f"{figures['priced_requests']:,}")
    cols[3].metric(
        "Unpriced calls",
        f"{figures['unpriced_requests']:,}",
        help="Calls to models without a price: counted here, never as $0",
    )
    cols[4].metric("Tokens", f"{figures['tokens']:,}")

    shared.chart(charts.cost_over_time(timeline, by=by or "model"), key="cost_over_time")
    left, right = st.columns(2)
    with left:
        shared.chart(charts.cumulative_cost(usage_views.cumulative_cost(timeline)), key="cum")
    with right:
        shared.chart(charts.cost_per_request(by_model), key="per_request")

    unpriced = by_model[by_model["unpriced_requests"] > 0]
    if len(unpriced):
        st.info(
            "Unpriced calls, not included in any cost: "
            + ", ".join(
                f"`{m}` {n:,}" for m, n in zip(unpriced["model"], unpriced["unpriced_requests"])
            )
            + ". Give these models a price (`ims prices sync`, `ims models import`) to count them.",
            icon=":material/money_off:",
        )
    st.subheader("By model")
    st.dataframe(
        by_model,
        hide_index=True,
        column_config={
            "priced_requests": "priced",
            "unpriced_requests": "unpriced",
            "cost_usd": st.column_config.NumberColumn("cost", format="$%.4f"),
            "cost_per_request_usd": st.column_config.NumberColumn("per request", format="$%.6f"),
        },
    )
    st.caption(f"Buckets of {timeline.attrs.get('bucket_s', 0):g} s.")


live()
