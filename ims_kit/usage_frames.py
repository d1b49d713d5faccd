"""DataFrames of the usage views, built from ``usage_queries`` rows, and what charts derive
from them (percentiles, cost per model, totals, running cost). No SQL here.

pandas and numpy are imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ims_kit.records import usage_totals

if TYPE_CHECKING:
    import pandas as pd

BINS_PER_E = 40  # log-latency bins per factor e: each bin is exp(1/40) - 1 ≈ 2.5% wide
TIMELINE_COLUMNS = (
    *("bucket", "model", "vendor", "simulated", "requests", "attempts", "failed_attempts"),
    *("priced_attempts", "cost_usd", "tokens_in", "tokens_out", "tokens", "unpriced_attempts"),
)


def bucket_times(frame: pd.DataFrame, width: float) -> None:
    """Turn integer bucket numbers into UTC timestamps; keep the width in ``attrs``."""
    import pandas as pd

    step_ms = round(width * 1000)  # whole milliseconds: no float noise in the timestamps
    frame["bucket"] = pd.to_datetime(frame["bucket"] * step_ms, unit="ms", utc=True)
    frame.attrs["bucket_s"] = width


def timeline(rows: list[tuple], width: float, vendors: dict[str, Any]) -> pd.DataFrame:
    """``usage_queries.cost_rows`` as the ``cost_over_time`` frame (``TIMELINE_COLUMNS``)."""
    import pandas as pd

    frame = pd.DataFrame(
        rows,
        columns=[
            *("key", "model", "requests", "attempts", "failed_attempts"),
            *("priced_attempts", "cost_usd", "tokens_in", "tokens_out"),
        ],
    )
    frame.insert(0, "bucket", frame["key"] // 2)
    frame.insert(2, "simulated", (frame.pop("key") % 2).astype(bool))
    frame.insert(2, "vendor", frame["model"].map(vendors))
    frame["tokens"] = frame["tokens_in"] + frame["tokens_out"]
    frame["unpriced_attempts"] = frame["attempts"] - frame["priced_attempts"]
    frame["cost_usd"] = frame["cost_usd"].astype(float)
    bucket_times(frame, width)
    return frame[list(TIMELINE_COLUMNS)]


def latency_histogram(rows: list[tuple], width: float | None) -> pd.DataFrame:
    """``usage_queries.latency_rows`` as a histogram frame: (bucket,) model, bin, its edges,
    count. ``width`` None: the rows are not per time bucket."""
    import numpy as np
    import pandas as pd

    if width is not None:
        frame = pd.DataFrame(rows, columns=["key", "model", "count"])
        frame.insert(0, "bucket", frame["key"] // 4096)
        frame.insert(2, "bin", frame.pop("key") % 4096)
        bucket_times(frame, width)
    else:
        frame = pd.DataFrame(rows, columns=["model", "bin", "count"])
    frame["latency_lo_ms"] = np.exp(frame["bin"] / BINS_PER_E)
    frame["latency_hi_ms"] = np.exp((frame["bin"] + 1) / BINS_PER_E)
    return frame


def errors(rows: list[tuple], width: float | None) -> pd.DataFrame:
    """``usage_queries.error_rows`` as a frame: (bucket,) model, error_kind, failures."""
    import pandas as pd

    if width is None:
        return pd.DataFrame(rows, columns=["model", "error_kind", "failures"])
    frame = pd.DataFrame(rows, columns=["bucket", "model", "error_kind", "failures"])
    bucket_times(frame, width)
    return frame


def percentiles(
    hist: pd.DataFrame, by: str | list[str] | None = "model", q: tuple[int, ...] = (50, 95, 99)
) -> pd.DataFrame:
    """p50/p95/p99 (``q``) latency from a ``latency_histogram`` frame, per ``by`` column(s)
    (None: over everything), nearest rank, interpolated within its 2.5%-wide bin.
    ``successes`` is how many successful calls each row covers."""
    import pandas as pd

    keys = [] if by is None else [by] if isinstance(by, str) else list(by)
    names = [f"p{p}_latency_ms" for p in q]
    out = []
    groups = hist.groupby(keys, sort=True) if keys else [((), hist)]
    for key, part in groups:
        counts = part.groupby("bin", sort=True)["count"].sum()
        total = int(counts.sum())
        row = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        row["successes"] = total
        if not total:
            out.append({**row, **dict.fromkeys(names)})
            continue
        cumulative = counts.cumsum().to_numpy()
        for p, name in zip(q, names):
            rank = max(1, math.ceil(p / 100 * total))
            pos = int(cumulative.searchsorted(rank))  # the first bin reaching the rank
            before = int(cumulative[pos - 1]) if pos else 0
            share = (rank - before) / int(counts.iloc[pos])
            row[name] = math.exp((int(counts.index[pos]) + share) / BINS_PER_E)
        out.append(row)
    return pd.DataFrame(out, columns=[*keys, "successes", *names])


def cost_by_model(timeline: pd.DataFrame) -> pd.DataFrame:
    """A ``cost_over_time`` frame summed per model: requests, attempts, cost, cost per priced
    attempt and unpriced attempts (``cost_usd`` None when the model has no priced attempt)."""
    import pandas as pd

    columns = [
        *("model", "vendor", "simulated", "requests", "attempts", "failed_attempts"),
        *("priced_attempts", "unpriced_attempts", "cost_usd", "cost_per_attempt_usd", "tokens"),
    ]
    if timeline.empty:
        return pd.DataFrame(columns=columns)
    sums = ["requests", "attempts", "failed_attempts", "priced_attempts", "unpriced_attempts"]
    frame = (
        timeline.groupby(["model", "simulated"], as_index=False)
        .agg(
            vendor=("vendor", "first"),
            **{c: (c, "sum") for c in [*sums, "tokens"]},
            cost_usd=("cost_usd", lambda s: s.sum(min_count=1)),
        )
        .sort_values(["simulated", "cost_usd"], ascending=[True, False])
    )
    frame["cost_per_attempt_usd"] = frame["cost_usd"] / frame["priced_attempts"].where(
        frame["priced_attempts"] > 0
    )
    frame = frame[columns].reset_index(drop=True)
    for column in ("cost_usd", "cost_per_attempt_usd"):  # unknown, not NaN, for tables
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    return frame


def totals(timeline: pd.DataFrame) -> dict[str, Any]:
    """The headline figures of a ``cost_over_time`` frame: ``records.usage_totals``' keys."""
    real = timeline[~timeline["simulated"]]
    sim = timeline[timeline["simulated"]]

    def total(frame: pd.DataFrame, column: str) -> int:
        return int(frame[column].sum())

    return usage_totals(
        attempts=total(timeline, "attempts"),
        failed_attempts=total(timeline, "failed_attempts"),
        requests=total(timeline, "requests"),
        successes=total(timeline, "attempts") - total(timeline, "failed_attempts"),
        tokens_in=total(timeline, "tokens_in"),
        tokens_out=total(timeline, "tokens_out"),
        real_attempts=total(real, "attempts"),
        real_priced=total(real, "priced_attempts"),
        real_cost=float(real["cost_usd"].sum()) if total(real, "priced_attempts") else None,
        simulated_attempts=total(sim, "attempts"),
        simulated_requests=total(sim, "requests"),
        simulated_cost=float(sim["cost_usd"].sum()) if total(sim, "priced_attempts") else None,
        unpriced_attempts=total(timeline, "unpriced_attempts"),
    )


def cumulative_cost(timeline: pd.DataFrame) -> pd.DataFrame:
    """Running total of priced cost per bucket, real and simulated apart."""
    import pandas as pd

    if timeline.empty:
        return pd.DataFrame(columns=["bucket", "simulated", "cost_usd", "cumulative_cost_usd"])
    frame = (
        timeline.groupby(["simulated", "bucket"], as_index=False)["cost_usd"]
        .sum(min_count=1)
        .fillna({"cost_usd": 0.0})
    )
    frame["cumulative_cost_usd"] = frame.groupby("simulated")["cost_usd"].cumsum()
    return frame
