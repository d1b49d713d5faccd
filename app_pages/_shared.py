"""What every dashboard page shares: the Kit, the global filters, cached library calls.

Numbers come from ``ims_kit`` and figures from ``ims_kit.charts``; this module only caches
them (``st.cache_resource`` for the Kit, ``st.cache_data`` with a short ttl for data) and
holds the widgets that every page shows the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import streamlit as st

import ims_kit
from ims_kit import formatting
from ims_kit.kit import default_database

DATA_TTL_S = 5
RANGES: dict[str, timedelta | None] = {
    "Last 15 minutes": timedelta(minutes=15),
    "Last hour": timedelta(hours=1),
    "Last 24 hours": timedelta(days=1),
    "Last 7 days": timedelta(days=7),
    "Last 30 days": timedelta(days=30),
    "All time": None,
}
REFRESH = {"Off": None, "5 s": 5, "10 s": 10, "30 s": 30, "1 min": 60}
HOW_TO_START = """
Run these in a terminal, then reload this page:

```
ims init                                    # create the database and seed the registry
ims simulate --requests 300 --seed 7 \\
  --faults "gemini-2.5-pro:overload@100-160"  # offline traffic, no API key needed
```
"""


# -- the database and the Kit ---------------------------------------------------------------
def db_path() -> str:
    """The database this dashboard reads: ``IMS_DB`` or the per-user default."""
    return str(default_database())


@st.cache_data(ttl=DATA_TTL_S, show_spinner=False)
def database_problem(path: str) -> tuple[str, bool] | None:
    """Why the file at ``path`` cannot be shown yet, and whether ``ims init`` fixes it
    (None when it can be shown). Never creates the file."""
    from ims_kit.errors import StoreError

    try:
        k = ims_kit.open(path, create=False)
    except StoreError as exc:
        return str(exc), "ims init" in str(exc)
    try:
        return None if len(k.registry) else ("The model registry is empty.", True)
    finally:
        k.close()


@st.cache_resource(show_spinner=False)
def _open(path: str) -> Any:
    return ims_kit.open(path)


def kit() -> Any:
    """The Kit on this dashboard's database, opened once per process."""
    return _open(db_path())


def stop_unless_ready() -> None:
    """Say what to run, and render nothing else, while the database is missing or empty."""
    problem = database_problem(db_path())
    if problem is None:
        return
    message, init_fixes_it = problem
    st.title("ims_kit dashboard")
    if init_fixes_it:
        st.info(f"{message}\n{HOW_TO_START}", icon=":material/info:")
    else:  # not a database of ours: `ims init` would refuse it too
        st.error(message, icon=":material/error:")
    st.caption(f"Database: `{db_path()}` (set `IMS_DB` to show another file).")
    st.stop()


# -- global filters -------------------------------------------------------------------------
@dataclass(frozen=True)
class Filters:
    """The sidebar's time range, vendors and models, shared by every page."""

    range: str = "All time"
    vendors: tuple[str, ...] = ()
    models: tuple[str, ...] = ()

    @property
    def since(self) -> datetime | None:
        delta = RANGES[self.range]
        return None if delta is None else datetime.now(UTC) - delta

    @property
    def args(self) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
        """Hashable form for cached functions."""
        return self.range, self.vendors, self.models


@st.cache_data(ttl=30, show_spinner=False)
def _filter_options(path: str) -> tuple[list[str], dict[str, str]]:
    k = _open(path)
    vendor_of = {m.model_id: m.vendor for m in k.registry.snapshot()}
    for model_id in k.usage.models_seen():
        vendor_of.setdefault(model_id, "unknown")
    return sorted(set(vendor_of.values())), dict(sorted(vendor_of.items()))


def sidebar() -> Filters:
    """Draw the global filters in the sidebar and return them."""
    vendors, vendor_of = _filter_options(db_path())
    with st.sidebar:
        st.selectbox("Time range", list(RANGES), index=len(RANGES) - 1, key="range")
        chosen_vendors = st.multiselect("Vendors", vendors, key="vendors", placeholder="All")
        models = [m for m, v in vendor_of.items() if not chosen_vendors or v in chosen_vendors]
        st.multiselect("Models", models, key="models", placeholder="All")
        st.selectbox("Refresh live panels every", list(REFRESH), index=2, key="refresh")
        st.caption(f"Database: `{db_path()}`")
    return filters()


def filters() -> Filters:
    """The current global filters (from the sidebar's widgets)."""
    state = st.session_state
    return Filters(
        state.get("range", "All time"),
        tuple(state.get("vendors") or ()),
        tuple(state.get("models") or ()),
    )


def refresh_every() -> int | None:
    """Seconds between refreshes of live panels (None: off)."""
    return REFRESH.get(st.session_state.get("refresh", "10 s"))


def _since(range_key: str) -> datetime | None:
    return Filters(range_key).since


# -- cached data (every number is computed by ims_kit) ------------------------------------
@st.cache_data(ttl=DATA_TTL_S, show_spinner=False)
def timeline(path: str, args: tuple) -> Any:
    """``kit.usage.cost_over_time`` for the filters."""
    range_key, vendors, models = args
    return _open(path).usage.cost_over_time(
        since=_since(range_key), vendors=list(vendors), models=list(models)
    )


@st.cache_data(ttl=DATA_TTL_S, show_spinner=False)
def overview(path: str, args: tuple) -> tuple[dict[str, Any], Any]:
    """``kit.usage.overview`` figures and the per-bucket (not per-model) timeline they sum."""
    range_key, vendors, models = args
    usage = _open(path).usage
    chosen = {"since": _since(range_key), "vendors": list(vendors), "models": list(models)}
    timeline = usage.cost_over_time(per_model=False, **chosen)
    return usage.overview(timeline=timeline, **chosen), timeline


@st.cache_data(ttl=DATA_TTL_S, show_spinner=False)
def latency(path: str, args: tuple) -> Any:
    """``kit.usage.latency_histogram`` (per time bucket) for the filters."""
    range_key, vendors, models = args
    return _open(path).usage.latency_histogram(
        since=_since(range_key), vendors=list(vendors), models=list(models)
    )


@st.cache_data(ttl=DATA_TTL_S, show_spinner=False)
def ttft(path: str, args: tuple) -> Any:
    """``kit.usage.ttft_percentiles`` (streamed calls) for the filters."""
    range_key, vendors, models = args
    return _open(path).usage.ttft_percentiles(
        since=_since(range_key), vendors=list(vendors), models=list(models)
    )


@st.cache_data(ttl=DATA_TTL_S, show_spinner=False)
def errors(path: str, args: tuple) -> Any:
    """``kit.usage.errors_by_kind`` for the filters."""
    range_key, vendors, models = args
    return _open(path).usage.errors_by_kind(
        since=_since(range_key), vendors=list(vendors), models=list(models)
    )


@st.cache_data(ttl=DATA_TTL_S, show_spinner=False)
def circuits(path: str) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Every breaker's state and those refusing calls now (both by their display name)."""
    k = _open(path)
    return k.circuits.status(), k.circuits.refusing()


@st.cache_data(ttl=DATA_TTL_S, show_spinner=False)
def budgets(path: str) -> list[dict[str, Any]]:
    """``kit.budgets.status()`` as dicts: limit, spent, reserved, left, reset time."""
    return [b.to_dict() for b in _open(path).budgets.status()]


def budget_table(statuses: list[dict[str, Any]]) -> None:
    """The budgets as a table: what is spent, set aside for calls in flight, left, and how
    long until the period resets."""
    now = datetime.now(UTC)
    rows = []
    for b in statuses:
        resets = datetime.fromisoformat(b["resets_at"]) if b["resets_at"] else None
        rows.append(
            {
                "budget": f"#{b['id']}",
                "scope": b["scope"],
                "period": b["period"],
                "limit": money(b["limit_usd"]),
                "spent": money(b["spent_usd"]),
                "reserved": money(b["reserved_usd"]),
                "left": money(b["left_usd"]),
                "used": b["spent_usd"] / b["limit_usd"],
                "resets in": (
                    formatting.time_left((resets - now).total_seconds()) if resets else "never"
                ),
            }
        )
    st.dataframe(
        rows,
        hide_index=True,
        width="stretch",
        column_config={
            "used": st.column_config.ProgressColumn("used", min_value=0.0, max_value=1.0)
        },
    )


@st.cache_data(ttl=DATA_TTL_S, show_spinner=False)
def events(
    path: str,
    range_key: str,
    *,
    kinds: tuple[str, ...] = (),
    kind_prefix: str | None = None,
    subjects: tuple[str, ...] = (),
    limit: int = 200,
    oldest_first: bool = False,
) -> list[Any]:
    """``kit.events.find`` for the time range and the given kinds or subjects."""
    return _open(path).events.find(
        kinds=list(kinds),
        kind_prefix=kind_prefix,
        subjects=list(subjects),
        since=_since(range_key),
        limit=limit,
        oldest_first=oldest_first,
    )


@st.cache_data(ttl=DATA_TTL_S, show_spinner=False)
def event_counts(path: str, range_key: str, kinds: tuple[str, ...] | None = None) -> dict:
    """Events per kind (every kind, or ``kinds``) in the time range."""
    chosen = None if kinds is None else list(kinds)
    return _open(path).events.kind_counts(since=_since(range_key), kinds=chosen)


def time_axis(path: str, args: tuple, events: list[Any] = ()) -> tuple[datetime, datetime]:
    """From the first to the last call or event the filters select (the range's start if set):
    the span worth drawing, however long ago the traffic was."""
    range_key, vendors, models = args
    first, last = _open(path).usage.span(_since(range_key), vendors, models)
    stamps = [t for t in (first, last, *(e.ts for e in events)) if t]
    now = datetime.now(UTC)
    if not stamps:
        return _since(range_key) or now, now
    times = [datetime.fromisoformat(t) for t in stamps]
    return _since(range_key) or min(times), max(times)


# -- shared bits of layout ------------------------------------------------------------------
def simulated_banner(simulated: int, total: int) -> None:
    """Say so when the figures shown come (partly) from simulated traffic."""
    if not simulated:
        return
    share = "All" if simulated == total else f"{simulated:,} of {total:,}"
    st.warning(
        f"**Simulated data.** {share} calls in this view ran on the simulated provider "
        "(`ims simulate`): their cost is what the real models would have charged, and it is "
        "kept apart from real spend.",
        icon=":material/science:",
    )


def no_usage(f: Filters) -> bool:
    """True (after saying what to do) when no call matches the filters."""
    first, _ = kit().usage.span(f.since, f.vendors, f.models)
    if first is not None:
        return False
    if f.range != "All time" or f.vendors or f.models:
        st.info("No calls match these filters: widen the time range or clear vendors/models.")
    else:
        st.info(
            "No model calls are logged yet. Run `ims simulate --requests 300 --seed 7` for "
            'offline traffic, or `ims ask "..."` with an API key.',
            icon=":material/info:",
        )
    return True


money = formatting.money
percent = formatting.percent
ms = formatting.duration_ms
when = formatting.when


def bucket_label(seconds: float) -> str:
    """A bucket width as people say it: 30 s, 5 min, 2 h, 1 day."""
    if seconds >= 86400:
        return f"{seconds / 86400:g} day" + ("s" if seconds > 86400 else "")
    if seconds >= 3600:
        return f"{seconds / 3600:g} h"
    if seconds >= 60:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


def chart(fig: Any, key: str | None = None) -> None:
    """One plotly figure, full width."""
    st.plotly_chart(fig, width="stretch", key=key, config={"displaylogo": False})
