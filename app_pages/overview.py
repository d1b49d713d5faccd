"""Overview: health, the headline figures, traffic and circuits not closed."""

import streamlit as st

from app_pages import _shared as shared
from ims_kit import charts, health

st.title("Overview")


@st.fragment(run_every=shared.refresh_every())
def live() -> None:
    f = shared.filters()
    path = shared.db_path()
    k = shared.kit()
    states, unavailable = shared.circuits(path)
    not_closed = {m: s for m, s in states.items() if s["state"] != "closed"}
    blocking = {m: states[m]["state"] for m in unavailable}
    figures, timeline = shared.overview(path, f.args)
    budgets = shared.budgets(path)
    shared.simulated_banner(figures["simulated_attempts"], figures["attempts"])

    problems = health.problems(
        models=len(k.registry),
        active=sum(k.registry.count_by_vendor(active=True).values()),
        blocking=blocking,
        requests=figures["requests"],
        success_rate=figures["success_rate"],
        failures=figures["failures"],
        scope="this range's",
        budgets=budgets,
    )
    if problems:
        st.warning("**Degraded.** " + "; ".join(problems), icon=":material/warning:")
    else:
        waiting = [m for m in not_closed if m not in blocking]
        note = (
            f" {', '.join(waiting)}: open period over, the next call is a probe."
            if waiting
            else " Every circuit is closed."
        )
        st.success("**Healthy.**" + note, icon=":material/check_circle:")

    cols = st.columns(7)
    cols[0].metric("Requests", f"{figures['requests']:,}", help="One per ask")
    cols[1].metric(
        "Attempts", f"{figures['attempts']:,}", help="Every try of every request, retries included"
    )
    cols[2].metric(
        "Request success", shared.percent(figures["success_rate"]), help="Requests answered"
    )
    real = figures["attempts"] - figures["simulated_attempts"]
    cols[3].metric(
        "Cost (real)",
        shared.money(figures["cost"]) if real else "-",
        help="Priced calls to real vendors" if real else "No call to a real vendor in this view",
    )
    cols[4].metric(
        "Simulated cost",
        shared.money(figures["simulated_cost"]) if figures["simulated_attempts"] else "-",
        help="What simulated calls would have cost; never added to real cost",
    )
    cols[5].metric("p95 latency", shared.ms(figures["p95_latency_ms"]), help="Successful attempts")
    cols[6].metric("Circuits not closed", len(not_closed))
    if figures["unpriced_attempts"]:
        st.caption(
            f"{figures['unpriced_attempts']:,} attempts on unpriced models are counted apart:"
            f" they are in requests, attempts and tokens ({figures['tokens']:,} in all),"
            " not in cost."
        )
    if not figures["attempts"]:
        shared.no_usage(f)
        return

    left, right = st.columns(2)
    with left:
        shared.chart(charts.requests_over_time(timeline), key="requests")
    with right:
        shared.chart(charts.cost_over_time(timeline, by="simulated"), key="cost")

    if budgets:
        st.subheader("Budgets")
        shared.budget_table(budgets)
    st.subheader("Circuits not closed")
    if not_closed:
        st.dataframe(
            [
                {
                    "model": m,
                    "state": s["state"].replace("_", "-"),
                    "failures": s["consecutive_failures"],
                    "last error": s["last_error_kind"],
                    "retry at (UTC)": shared.when(s["retry_at"]),
                    "refusing calls": m in unavailable,
                }
                for m, s in not_closed.items()
            ],
            hide_index=True,
            width="stretch",
        )
    else:
        st.write("All closed.")
    st.subheader("Latest events")
    st.dataframe(
        [
            {"time (UTC)": shared.when(e.ts), "kind": e.kind, "subject": e.subject}
            for e in shared.events(path, f.range, limit=8)
        ],
        hide_index=True,
        width="stretch",
    )


live()
