"""Registry: the filterable model table, price vs quality, and a recommendation panel."""

import streamlit as st

from app_pages import _shared as shared
from ims_kit import ModelList, charts
from ims_kit.errors import ImsError
from ims_kit.selector import STRATEGIES

st.title("Registry")
k = shared.kit()
f = shared.filters()
frame = ModelList(k.registry.snapshot()).to_frame()
capabilities = sorted({c for caps in frame["capabilities"] for c in caps})

cols = st.columns([2, 2, 1, 1])
vendors = cols[0].multiselect(
    "Vendor", sorted(frame["vendor"].unique()), default=list(f.vendors), placeholder="All"
)
wanted = cols[1].multiselect("Capabilities (all of)", capabilities, placeholder="Any")
min_context = cols[2].number_input("Min context", min_value=0, value=0, step=10_000)
show_inactive = cols[3].toggle("Inactive too", value=False)

# From the cached snapshot rather than registry.filter(), which logs a filter.executed event:
# redrawing a page is not a query of the registry.
models = ModelList(
    m
    for m in k.registry.snapshot()
    if (not vendors or m.vendor in vendors)
    and m.context_window >= min_context
    and set(wanted) <= set(m.capabilities)
    and (show_inactive or m.active)
)
shown = models.to_frame()
st.caption(f"{len(shown)} of {len(frame)} registered models")
st.dataframe(
    shown[
        [
            *("model_id", "vendor", "provider", "context_window", "cost_per_mil_in"),
            *("cost_per_mil_out", "quality", "capabilities", "active", "as_of"),
        ]
    ],
    hide_index=True,
    column_config={
        "cost_per_mil_in": st.column_config.NumberColumn("$/M in", format="$%.3f"),
        "cost_per_mil_out": st.column_config.NumberColumn("$/M out", format="$%.3f"),
        "context_window": st.column_config.NumberColumn("context", format="localized"),
    },
)
if shown["cost_per_mil_in"].isna().any():
    st.caption("Models without a price are unpriced: their calls are counted apart, never as $0.")
shared.chart(charts.price_vs_quality(shown), key="price_quality")

st.subheader("Which model would ims choose?")
with st.form("recommend"):
    prompt = st.text_area("Prompt", placeholder="Paste a prompt: its size and content count.")
    c1, c2 = st.columns(2)
    strategy = c1.selectbox(
        "Strategy", list(STRATEGIES), format_func=lambda s: f"{s}: {STRATEGIES[s]}"
    )
    rec_context = c2.number_input("Minimum context window", min_value=0, value=10_000, step=1_000)
    target = st.slider(
        "Learned strategy: share of the strong model's quality to reach",
        min_value=0.5, max_value=1.0, value=0.95, step=0.01,
        help="Only for the learned strategy: the router's threshold is set for this target.",
    )  # fmt: skip
    asked = st.form_submit_button("Recommend", type="primary")
if asked:
    try:
        st.session_state["recommendation"] = k.recommend(
            prompt,
            strategy=strategy,
            min_context_window=rec_context,
            vendors=vendors or None,
            capabilities=wanted or None,
            target_quality=target if strategy == "learned" else None,
        )
    except ImsError as exc:
        st.session_state.pop("recommendation", None)
        st.error(str(exc))
rec = st.session_state.get("recommendation")
if rec is not None:
    best = rec.ranked[0]
    cost = best.estimated_cost_usd
    st.success(
        f"**{best.model_id}** ({best.model.vendor}), by *{rec.strategy}*:"
        f" {STRATEGIES[rec.strategy]}."
        + (f" Estimated cost of this prompt: {shared.money(cost)}." if cost is not None else ""),
        icon=":material/recommend:",
    )
    st.write("Why: " + "; ".join(best.reasons))
    st.dataframe(
        rec.to_frame(),
        hide_index=True,
        column_config={
            "estimated_cost_usd": st.column_config.NumberColumn("estimated cost", format="$%.6f"),
            "score": st.column_config.NumberColumn(format="%.4g"),
        },
    )
    excluded = rec.excluded_counts()
    if excluded:
        st.caption("Excluded: " + ", ".join(f"{n} by {c}" for c, n in excluded.items()))
