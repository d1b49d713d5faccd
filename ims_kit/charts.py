"""Plotly figures shared by the dashboard and the notebooks, drawn from ims_kit's frames.

Each builder takes what the library computes (``kit.usage.cost_over_time()``, the
``usage_frames`` derivations, ``kit.events.find(...)``, ``kit.registry.to_frame()``) and
returns a ``plotly.graph_objects.Figure``; none queries the database. An empty input gives a
figure that says so. plotly is imported inside the functions, so ``import ims_kit`` stays light.
Where real and simulated traffic are mixed, simulated series say "(simulated)".
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from plotly.graph_objects import Figure

HEIGHT = 340
STATE_COLOURS = {"closed": "#2e9d5b", "half_open": "#f0a202", "open": "#d1372f"}
_STATE_OF_EVENT = {
    "circuit.opened": "open",
    "circuit.half_open": "half_open",
    "circuit.closed": "closed",
}
KIND_COLOURS = {
    "TIMEOUT": "#f0a202",
    "OVERLOAD": "#7b4fb3",
    "RATE_LIMIT": "#d1372f",
    "CONTEXT_OVERFLOW": "#4c78a8",
    "AUTHENTICATION": "#333333",
    "INVALID_REQUEST": "#8c564b",
    "UNKNOWN": "#9a9a9a",
}


def _figure(title: str, *, height: int = HEIGHT, few_series: bool = False) -> Figure:
    """An empty figure in the house style; ``few_series``: a one-line legend above the plot,
    else a column on the right (which never runs into the title or the axis labels)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    legend = (
        {"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 1, "xanchor": "right"}
        if few_series
        else {"orientation": "v", "font": {"size": 11}}
    )
    fig.update_layout(
        title={"text": title, "x": 0, "xanchor": "left", "font": {"size": 15}},
        template="plotly_white",
        height=height,
        margin={"l": 10, "r": 10, "t": 48, "b": 10},
        legend=legend,
        hovermode="closest",
    )
    return fig


def _empty(title: str, message: str = "no data in this range") -> Figure:
    fig = _figure(title)
    fig.add_annotation(
        text=message, showarrow=False, font={"size": 14, "color": "#888"}, x=0.5, y=0.5
    )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def _labels(frame: pd.DataFrame, key: str) -> pd.Series:
    """``key``'s values, with "(simulated)" added where real and simulated rows mix."""
    if key == "simulated":
        return frame["simulated"].map({True: "simulated", False: "real"})
    labels = frame[key].fillna("unknown").astype(str)
    if "simulated" in frame and frame["simulated"].nunique() > 1:
        labels = labels.where(~frame["simulated"], labels + " (simulated)")
    return labels


# -- cost -----------------------------------------------------------------------------------
def cost_over_time(timeline: pd.DataFrame, by: str = "model") -> Figure:
    """Priced cost per time bucket, stacked per model, vendor or ``"simulated"`` (real apart
    from simulated: what a ``per_model=False`` frame allows)."""
    title = "Cost over time (USD)" if by == "simulated" else f"Cost over time by {by} (USD)"
    priced = timeline[timeline["cost_usd"].notna()] if not timeline.empty else timeline
    if priced.empty:
        return _empty(title, "no priced calls in this range")
    import plotly.graph_objects as go

    frame = priced.assign(series=_labels(priced, by))
    frame = frame.groupby(["series", "bucket"], as_index=False)["cost_usd"].sum()
    fig = _figure(title)
    order = frame.groupby("series")["cost_usd"].sum().sort_values(ascending=False).index
    for name in order:
        part = frame[frame["series"] == name]
        colour = (
            {"real": "#4c78a8", "simulated": "#9d7fd1"}.get(name) if by == "simulated" else None
        )
        fig.add_trace(go.Bar(x=part["bucket"], y=part["cost_usd"], name=name, marker_color=colour))
    fig.update_layout(barmode="stack", bargap=0.1)
    fig.update_yaxes(tickprefix="$", title=None)
    return fig


def cumulative_cost(cumulative: pd.DataFrame) -> Figure:
    """Running total of priced cost, real and simulated as separate lines."""
    title = "Cumulative cost (USD)"
    if cumulative.empty:
        return _empty(title, "no priced calls in this range")
    import plotly.graph_objects as go

    fig = _figure(title, few_series=True)
    for simulated, part in cumulative.groupby("simulated"):
        fig.add_trace(
            go.Scatter(
                x=part["bucket"],
                y=part["cumulative_cost_usd"],
                name="simulated" if simulated else "real",
                mode="lines",
                line={"shape": "hv", "width": 2, "dash": "dot" if simulated else "solid"},
                fill="tozeroy",
            )
        )
    fig.update_yaxes(tickprefix="$", title=None, rangemode="tozero")
    return fig


def cost_per_attempt(by_model: pd.DataFrame) -> Figure:
    """Average cost of a priced attempt per model; unpriced models are listed apart."""
    title = "Cost per attempt by model (USD, priced attempts)"
    priced = by_model[by_model["cost_per_attempt_usd"].notna()] if len(by_model) else by_model
    if priced.empty:
        return _empty(title, "no priced calls in this range")
    import plotly.graph_objects as go

    frame = priced.assign(series=_labels(priced, "model")).sort_values("cost_per_attempt_usd")
    fig = _figure(title, height=max(HEIGHT, 28 * len(frame) + 80))
    fig.add_trace(
        go.Bar(
            x=frame["cost_per_attempt_usd"],
            y=frame["series"],
            orientation="h",
            customdata=frame[["priced_attempts", "cost_usd"]],
            hovertemplate="%{y}: $%{x:.6f} per attempt<br>%{customdata[0]:,} priced attempts,"
            " $%{customdata[1]:.4f} in all<extra></extra>",
            marker_color="#4c78a8",
        )
    )
    unpriced = by_model[by_model["unpriced_attempts"] > 0]
    if len(unpriced):
        names = ", ".join(
            f"{m} ({n:,})" for m, n in zip(unpriced["model"], unpriced["unpriced_attempts"])
        )
        fig.add_annotation(
            text=f"unpriced, not in cost: {names}",
            showarrow=False,
            xref="paper",
            yref="paper",
            x=1,
            y=0,
            xanchor="right",
            yanchor="bottom",
            font={"size": 11, "color": "#888"},
        )
    fig.update_xaxes(tickprefix="$", title=None)
    fig.update_yaxes(title=None)
    return fig


def requests_over_time(timeline: pd.DataFrame) -> Figure:
    """Attempts per time bucket (succeeded and failed, stacked) and requests as a line: a
    request is one ask, its attempts every try of it."""
    title = "Requests and attempts over time"
    if timeline.empty:
        return _empty(title)
    import plotly.graph_objects as go

    columns = ["requests", "attempts", "failed_attempts"]
    frame = timeline.groupby("bucket", as_index=False)[columns].sum()
    fig = _figure(title, few_series=True)
    fig.add_trace(
        go.Bar(
            x=frame["bucket"],
            y=frame["attempts"] - frame["failed_attempts"],
            name="attempts succeeded",
            marker_color="#4c78a8",
        )
    )
    fig.add_trace(
        go.Bar(
            x=frame["bucket"],
            y=frame["failed_attempts"],
            name="attempts failed",
            marker_color="#d1372f",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=frame["bucket"],
            y=frame["requests"],
            name="requests",
            mode="lines",
            line={"color": "#333333", "width": 1.5, "shape": "hv"},
        )
    )
    fig.update_layout(barmode="stack", bargap=0.1)
    fig.update_yaxes(title=None)
    return fig


# -- latency --------------------------------------------------------------------------------
def latency_percentiles(pct: pd.DataFrame) -> Figure:
    """p50 / p95 / p99 latency per model, as grouped bars."""
    title = "Latency by model (ms, successful calls)"
    if pct.empty:
        return _empty(title)
    import plotly.graph_objects as go

    frame = pct.sort_values("p50_latency_ms")
    fig = _figure(title, few_series=True)
    for name, colour in (("p50", "#4c78a8"), ("p95", "#f58518"), ("p99", "#d1372f")):
        column = f"{name}_latency_ms"
        if column in frame:
            fig.add_trace(go.Bar(x=frame["model"], y=frame[column], name=name, marker_color=colour))
    fig.update_layout(barmode="group")
    fig.update_yaxes(title=None, ticksuffix=" ms")
    return fig


def latency_distribution(hist: pd.DataFrame) -> Figure:
    """How latency is spread, per model: the share of successful calls at or below each
    latency (a cumulative curve, log axis; read p50 where a curve crosses 50%)."""
    title = "Latency distribution (share of calls at or below)"
    if hist.empty:
        return _empty(title)
    import plotly.graph_objects as go

    frame = hist.groupby(["model", "bin", "latency_hi_ms"], as_index=False)["count"].sum()
    frame = frame.sort_values(["model", "bin"])
    frame["share"] = frame.groupby("model")["count"].cumsum() / frame.groupby("model")[
        "count"
    ].transform("sum")
    fig = _figure(title)
    for model, part in frame.groupby("model"):
        fig.add_trace(
            go.Scatter(
                x=part["latency_hi_ms"],
                y=part["share"],
                name=str(model),
                mode="lines",
                line={"shape": "hv", "width": 1.8},
                hovertemplate="%{y:.0%} of calls within %{x:,.0f} ms<extra>"
                + str(model)
                + "</extra>",
            )
        )
    lo, hi = frame["latency_hi_ms"].min(), frame["latency_hi_ms"].max()
    ticks = [t for t in _NICE_MS if lo / 2 <= t <= hi * 2]
    fig.update_xaxes(
        type="log",
        title=None,
        tickvals=ticks,
        ticktext=[f"{t:g} ms" if t < 1000 else f"{t / 1000:g} s" for t in ticks],
    )
    fig.update_yaxes(tickformat=".0%", title=None, range=[0, 1.02])
    return fig


def latency_over_time(pct_over_time: pd.DataFrame) -> Figure:
    """p50 / p95 / p99 latency per time bucket (``percentiles(hist, by="bucket")``)."""
    title = "Latency over time (ms, all selected models)"
    if pct_over_time.empty:
        return _empty(title)
    import plotly.graph_objects as go

    frame = pct_over_time.sort_values("bucket")
    fig = _figure(title, few_series=True)
    for name, colour in (("p50", "#4c78a8"), ("p95", "#f58518"), ("p99", "#d1372f")):
        fig.add_trace(
            go.Scatter(
                x=frame["bucket"],
                y=frame[f"{name}_latency_ms"],
                name=name,
                mode="lines+markers",
                marker={"size": 4},
                line={"color": colour},
            )
        )
    fig.update_yaxes(title=None, ticksuffix=" ms", rangemode="tozero")
    return fig


# -- circuits and failures ------------------------------------------------------------------
def circuit_segments(
    transitions: Iterable[Any], *, start: datetime | None = None, end: datetime | None = None
) -> list[dict[str, Any]]:
    """Per breaker, the spans spent closed / open / half_open, from ``circuit.*`` events
    (oldest first); a breaker is closed before its first event, the last span runs to ``end``.
    A simulated call's breaker is named "<model> [simulated]", as in status tables."""
    end = end or datetime.now(UTC)
    by_model: dict[str, list[tuple[datetime, str]]] = {}
    for e in transitions:
        state = _STATE_OF_EVENT.get(e.kind)
        if state is not None:  # a simulated call's breaker is another breaker
            name = f"{e.subject} [simulated]" if e.payload.get("simulated") else e.subject
            by_model.setdefault(name, []).append((datetime.fromisoformat(e.ts), state))
    segments = []
    for model, steps in sorted(by_model.items()):
        steps.sort(key=lambda s: s[0])
        first = steps[0][0]
        if start is not None and start < first:
            steps.insert(0, (start, "closed"))
        for (t0, state), (t1, _) in zip(steps, [*steps[1:], (max(end, steps[-1][0]), "")]):
            segments.append({"model": model, "state": state, "start": t0, "end": t1})
    return segments


def circuit_timeline(
    transitions: Iterable[Any], *, start: datetime | None = None, end: datetime | None = None
) -> Figure:
    """Each model's breaker over time: closed (green), open (red), half-open (amber)."""
    import pandas as pd

    title = "Circuit timeline"
    segments = circuit_segments(transitions, start=start, end=end)
    if not segments:
        return _empty(title, "no circuit has opened in this range")
    import plotly.graph_objects as go

    frame = pd.DataFrame(segments)
    frame["ms"] = (frame["end"] - frame["start"]).dt.total_seconds() * 1000
    models = sorted(frame["model"].unique())
    fig = _figure(title, height=max(200, 34 * len(models) + 110), few_series=True)
    for state in ("closed", "open", "half_open"):
        part = frame[frame["state"] == state]
        fig.add_trace(
            go.Bar(
                base=part["start"],
                x=part["ms"],
                y=part["model"],
                orientation="h",
                name=state.replace("_", "-"),
                marker_color=STATE_COLOURS[state],
                customdata=part[["start", "end"]].astype(str),
                hovertemplate="%{y}: " + state + "<br>%{customdata[0]} → %{customdata[1]}"
                "<extra></extra>",
            )
        )
    fig.update_layout(barmode="overlay", bargap=0.35)
    lo = start or frame["start"].min()
    hi = end or frame["end"].max()
    fig.update_xaxes(type="date", title=None, range=[lo, hi])
    fig.update_yaxes(categoryorder="array", categoryarray=models[::-1], title=None)
    return fig


def failures_by_kind(errors: pd.DataFrame) -> Figure:
    """Failed attempts per model, stacked by error kind."""
    title = "Failures by error kind"
    if errors.empty:
        return _empty(title, "no failed call in this range")
    import plotly.graph_objects as go

    frame = errors.groupby(["model", "error_kind"], as_index=False)["failures"].sum()
    kinds = sorted(frame["error_kind"].unique(), key=lambda k: (k not in KIND_COLOURS, k))
    fig = _figure(title)
    for kind in kinds:
        part = frame[frame["error_kind"] == kind]
        colour = KIND_COLOURS.get(kind, "#9a9a9a")
        fig.add_trace(go.Bar(x=part["model"], y=part["failures"], name=kind, marker_color=colour))
    fig.update_layout(barmode="stack")
    fig.update_yaxes(title=None)
    return fig


# -- registry and workflows -----------------------------------------------------------------
def price_vs_quality(models: pd.DataFrame) -> Figure:
    """Each priced model with a quality score: blended price ($/M tokens, 3:1 input:output)
    against quality. The models that no cheaper model beats on quality (the frontier) are
    labelled; the others show their names on hover; models left out are named in a note."""
    title = "Price vs quality"
    if models.empty:
        return _empty(title, "no models registered")
    import plotly.graph_objects as go

    shown = models["cost_per_mil_in"].notna() & models["quality"].notna()
    frame = models[shown].copy()
    left_out = sorted(models.loc[~shown, "model_id"])
    if frame.empty:
        return _empty(title, "no priced model with a quality score")
    frame["blended"] = (3 * frame["cost_per_mil_in"] + frame["cost_per_mil_out"]) / 4
    best, frontier = -1.0, set()
    for model_id, quality in frame.sort_values(["blended", "quality"], ascending=[True, False])[
        ["model_id", "quality"]
    ].itertuples(index=False):
        if quality > best:
            frontier.add(model_id)
            best = quality
    # neighbours on the frontier take turns above and below their point, so names never meet
    ordered = frame[frame["model_id"].isin(frontier)].sort_values("blended")["model_id"]
    above = {m: i % 2 == 0 for i, m in enumerate(ordered)}
    fig = _figure(title, height=460)
    for vendor, part in frame.groupby("vendor"):
        fig.add_trace(
            go.Scatter(
                x=part["blended"],
                y=part["quality"],
                name=str(vendor),
                mode="markers+text",
                text=[m if m in frontier else "" for m in part["model_id"]],
                customdata=part[["model_id"]],
                textposition=[
                    "top center" if above.get(m, True) else "bottom center"
                    for m in part["model_id"]
                ],
                textfont={"size": 10},
                marker={
                    "size": 10,
                    "opacity": [1.0 if a else 0.35 for a in part["active"]],
                },
                hovertemplate="%{customdata[0]}<br>$%{x:.2f}/M blended, quality %{y:.1f}"
                "<extra></extra>",
            )
        )
    ticks = [
        t for t in _NICE_PRICES if frame["blended"].min() / 2 <= t <= frame["blended"].max() * 2
    ]
    fig.update_xaxes(
        type="log",
        tickvals=ticks,
        ticktext=[f"${t:g}" for t in ticks],
        title="blended price per million tokens (3 in : 1 out), log scale",
    )
    fig.update_yaxes(title="quality (0-100)")
    note = "labelled: no cheaper model scores higher; faded: inactive"
    if left_out:
        names = ", ".join(left_out[:6]) + (
            f" and {len(left_out) - 6} more" if len(left_out) > 6 else ""
        )
        note += f"<br>not shown (unpriced or no quality score): {names}"
    fig.add_annotation(
        text=note,
        showarrow=False,
        xref="paper",
        yref="paper",
        x=0,
        y=0,
        yshift=-62,  # below the tick labels and the axis title
        xanchor="left",
        yanchor="top",
        align="left",
        font={"size": 11, "color": "#666"},
    )
    fig.update_layout(margin={"l": 10, "r": 10, "t": 48, "b": 120 if left_out else 100})
    return fig


_NICE_MS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 20_000, 60_000, 120_000)
_NICE_PRICES = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200)


def workflow_states(workflows: Iterable[Any]) -> Figure:
    """How many of the given workflows are in each state."""
    from collections import Counter

    counts = Counter(w.state for w in workflows)
    title = "Recent workflows by state"
    if not counts:
        return _empty(title, "no workflows yet")
    import plotly.graph_objects as go

    colours = {"COMPLETED": "#2e9d5b", "FAILED": "#d1372f"}
    states = sorted(counts, key=lambda s: counts[s])
    fig = _figure(title, height=90 + 36 * len(states))
    fig.add_trace(
        go.Bar(
            y=states,
            x=[counts[s] for s in states],
            orientation="h",
            marker_color=[colours.get(s, "#4c78a8") for s in states],
            text=[counts[s] for s in states],
            textposition="auto",
        )
    )
    fig.update_xaxes(title=None)
    return fig


def event_counts(counts: dict[str, int]) -> Figure:
    """How many events of each kind (``kit.events.kind_counts()``), log scale."""
    title = "Events by kind"
    if not counts:
        return _empty(title, "no events yet")
    import plotly.graph_objects as go

    kinds = sorted(counts, key=lambda k: counts[k])
    fig = _figure(title, height=110 + 26 * len(kinds))
    fig.add_trace(
        go.Bar(
            y=kinds,
            x=[counts[k] for k in kinds],
            orientation="h",
            marker_color="#4c78a8",
            text=[f"{counts[k]:,}" for k in kinds],
            textposition="outside",
            textangle=0,
            cliponaxis=False,
        )
    )
    fig.update_xaxes(type="log", title="events (log scale)")
    fig.update_layout(margin={"l": 10, "r": 60, "t": 48, "b": 10})
    return fig
