"""Dashboard-sized views of the usage log: time buckets, latency histograms, failure counts.

Each view is one SQL aggregation (never every row into pandas), sized to stay near a second
on a million rows: a view groups by a time bucket and the model, and latency is binned on a
log scale (bins 2.5% wide), so percentiles per model, per bucket or overall come from one
histogram. The pure functions at the end derive what the charts show from those frames.
``UsageTracker`` exposes the SQL views as methods; pandas is imported only here.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ims_kit.errors import InvalidInputError

if TYPE_CHECKING:
    import pandas as pd
    from sqlite_utils import Database

BINS_PER_E = 40  # log-latency bins per factor e: each bin is exp(1/40) - 1 ≈ 2.5% wide
TARGET_BUCKETS = 60
PARALLEL_MIN_ROWS = 200_000  # below this a second connection costs more than it saves
MAX_WORKERS = 4
NICE_BUCKETS_S = (
    *(0.1, 0.25, 0.5, 1, 2, 5, 10, 15, 30),
    *(60, 120, 300, 600, 900, 1800),
    *(3600, 7200, 10800, 21600, 43200),
    *(86400, 2 * 86400, 7 * 86400, 30 * 86400),
)
_EPOCH_S = "(julianday(ts) - 2440587.5) * 86400.0"  # ts as epoch seconds, sub-second kept
_BIN = f"CAST(ln(max(latency_ms, 1.0)) * {BINS_PER_E} AS INTEGER)"


@dataclass(frozen=True)
class UsageFilter:
    """Which rows a view covers: since a time, and only some vendors or models."""

    since: Any = None
    vendors: tuple[str, ...] = ()
    models: tuple[str, ...] = ()

    def sql(self, *extra: str) -> tuple[str, list[Any]]:
        """A WHERE clause (with ``extra`` conditions) and its parameters."""
        from ims_kit.usage import _since_iso

        clauses, params = list(extra), []
        if self.since is not None:
            clauses.append("ts >= ?")
            params.append(_since_iso(self.since))
        for column, values in (("vendor_id", self.vendors), ("model_id", self.models)):
            if values:
                clauses.append(f"{column} IN ({', '.join('?' * len(values))})")
                params.extend(values)
        return (f"WHERE {' AND '.join(clauses)}" if clauses else ""), params


def usage_filter(since: Any = None, vendors: Any = None, models: Any = None) -> UsageFilter:
    """A ``UsageFilter`` from loose arguments (a string or a list for vendors and models)."""
    return UsageFilter(since, _names(vendors), _names(models))


def _names(value: Any) -> tuple[str, ...]:
    if not value:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


# -- SQL views --------------------------------------------------------------------------------
def _grouped(
    db: Database,
    flt: UsageFilter,
    select: str,
    group_by: str,
    *,
    keys: int,
    lead: list[Any] | tuple = (),
    extra: list[str] | tuple = (),
) -> list[tuple]:
    """``SELECT {select} FROM usage WHERE ... GROUP BY {group_by}``, whose first ``keys``
    columns are the group and the rest counts or sums.

    On a big log the rows are split in id ranges read in parallel, one connection per core
    (sqlite3 lets other threads run while a query steps), and the partial sums are added up:
    the GROUP BY sort, which dominates, is then shared among the cores.
    """
    where, params = flt.sql(*extra)
    sql = f"SELECT {select} FROM usage {where} {{part}} GROUP BY {group_by}"
    parts = _id_ranges(db, flt)
    if len(parts) < 2:
        return db.execute(sql.format(part=""), [*lead, *params]).fetchall()
    from concurrent.futures import ThreadPoolExecutor

    from ims_kit.db import open_db

    path = db.conn.execute("PRAGMA database_list").fetchone()[2]
    part_sql = sql.format(part=f"{'AND' if where else 'WHERE'} id BETWEEN ? AND ?")

    def run(bounds: tuple[int, int]) -> list[tuple]:
        conn = open_db(path, migrate=False)
        try:
            return conn.execute(part_sql, [*lead, *params, *bounds]).fetchall()
        finally:
            conn.close()

    with ThreadPoolExecutor(len(parts)) as pool:
        results = list(pool.map(run, parts))
    merged: dict[tuple, list] = {}
    for rows in results:
        for row in rows:
            key, values = row[:keys], row[keys:]
            if key in merged:
                merged[key] = [
                    b if a is None else a if b is None else a + b
                    for a, b in zip(merged[key], values)
                ]
            else:
                merged[key] = list(values)
    return [(*key, *values) for key, values in merged.items()]


def _id_ranges(db: Database, flt: UsageFilter) -> list[tuple[int, int]]:
    """Id ranges that together cover every row, one per core when the filter's rows span
    enough ids to be worth it (ids grow with time, so ``since`` narrows the span)."""
    workers = min(os.cpu_count() or 1, MAX_WORKERS)
    if workers < 2 or not db.conn.execute("PRAGMA database_list").fetchone()[2]:
        return []  # one core, or an in-memory database that other connections cannot see
    start, end = db.execute(
        "SELECT (SELECT min(id) FROM usage), (SELECT max(id) FROM usage)"
    ).fetchone()
    if end is None:
        return []
    if flt.since is not None:
        from ims_kit.usage import _since_iso

        row = db.execute(
            "SELECT id FROM usage WHERE ts >= ? ORDER BY ts LIMIT 1", [_since_iso(flt.since)]
        ).fetchone()
        start = row[0] if row else end
    if end - start < PARALLEL_MIN_ROWS:
        return []
    edges = [start + (end - start) * i // workers for i in range(1, workers)]
    lows = [-(2**63), *(e + 1 for e in edges)]  # the first and last ranges are open-ended
    return list(zip(lows, [*edges, 2**63 - 1]))


def span(db: Database, flt: UsageFilter) -> tuple[str | None, str | None]:
    """The first and last timestamps the filter covers (None, None when no row does)."""
    where, params = flt.sql()
    first, last = db.execute(  # two subqueries: SQLite reads a lone min() or max() off the index
        f"SELECT (SELECT min(ts) FROM usage {where}), (SELECT max(ts) FROM usage {where})",
        params * 2,
    ).fetchone()
    return first, last


def bucket_seconds(first: str | None, last: str | None, target: int = TARGET_BUCKETS) -> float:
    """The smallest round bucket width that covers first..last in at most ``target`` buckets."""
    if first is None or last is None:
        return 60.0
    seconds = (datetime.fromisoformat(last) - datetime.fromisoformat(first)).total_seconds()
    for width in NICE_BUCKETS_S:
        if seconds / width <= target:
            return float(width)
    return float(NICE_BUCKETS_S[-1])


def _bucket(db: Database, flt: UsageFilter, bucket_s: float | None) -> float:
    if bucket_s is None:
        return bucket_seconds(*span(db, flt))
    if not bucket_s > 0:
        raise InvalidInputError(f"bucket_s must be a positive number of seconds, got {bucket_s!r}")
    return float(bucket_s)


def _bucket_times(frame: pd.DataFrame, width: float) -> None:
    import pandas as pd

    step_ms = round(width * 1000)  # whole milliseconds: no float noise in the timestamps
    frame["bucket"] = pd.to_datetime(frame["bucket"] * step_ms, unit="ms", utc=True)
    frame.attrs["bucket_s"] = width


def cost_over_time(
    db: Database, flt: UsageFilter, bucket_s: float | None = None, *, per_model: bool = True
) -> pd.DataFrame:
    """Per time bucket, model and simulated-or-not: requests, failures, tokens and cost.

    ``cost_usd`` sums priced calls only (NaN where none was priced); ``unpriced_requests``
    counts the others apart. ``frame.attrs["bucket_s"]`` is the bucket width. With
    ``per_model=False`` the rows are per bucket only (model and vendor None): a third quicker.
    """
    import pandas as pd

    width = _bucket(db, flt, bucket_s)
    model = "model_id" if per_model else "NULL"
    rows = _grouped(  # one integer key for bucket and simulated: fewer sort columns
        db,
        flt,
        f"""CAST({_EPOCH_S} / ? AS INTEGER) * 2 + coalesce(provider = 'simulated', 0) AS k,
            {model} AS m, count(*), sum(success = 0), count(cost_usd), sum(cost_usd),
            sum(tokens_in + tokens_out)""",
        f"k{', m' if per_model else ''}",
        keys=2,
        lead=[width],
    )
    rows.sort(key=lambda r: r[0])
    frame = pd.DataFrame(
        rows,
        columns=[
            *("key", "model", "requests", "failures"),
            *("priced_requests", "cost_usd", "tokens"),
        ],
    )
    frame.insert(0, "bucket", frame["key"] // 2)
    frame.insert(2, "simulated", (frame.pop("key") % 2).astype(bool))
    vendors = _vendors(db, frame["model"].dropna().unique())
    frame.insert(2, "vendor", frame["model"].map(vendors))
    frame["unpriced_requests"] = frame["requests"] - frame["priced_requests"]
    frame["cost_usd"] = frame["cost_usd"].astype(float)
    _bucket_times(frame, width)
    return frame


def _vendors(db: Database, models) -> dict[str, str | None]:
    """Each model's vendor as logged, one index lookup per model (not a column to group by)."""
    sql = "SELECT vendor_id FROM usage WHERE model_id = ? LIMIT 1"
    return {m: db.execute(sql, [m]).fetchone()[0] for m in models}


def latency_histogram(
    db: Database, flt: UsageFilter, bucket_s: float | None = None, *, over_time: bool = True
) -> pd.DataFrame:
    """Successful calls counted per (time bucket,) model and log-latency bin.

    Columns: bucket (when ``over_time``), model, bin, latency_lo_ms, latency_hi_ms, count.
    """
    import numpy as np
    import pandas as pd

    if over_time:
        width = _bucket(db, flt, bucket_s)
        # one integer key for bucket and bin (bins stay below 4096: ln(1e9 ms) * 40 < 830)
        select = f"CAST({_EPOCH_S} / ? AS INTEGER) * 4096 + {_BIN} AS k, model_id, count(*)"
        rows = _grouped(db, flt, select, "k, model_id", keys=2, lead=[width], extra=["success = 1"])
        frame = pd.DataFrame(rows, columns=["key", "model", "count"])
        frame.insert(0, "bucket", frame["key"] // 4096)
        frame.insert(2, "bin", frame.pop("key") % 4096)
        _bucket_times(frame, width)
    else:
        # +model_id: a sort beats walking the model index with a table lookup per row
        select = f"model_id, {_BIN} AS lb, count(*)"
        rows = _grouped(db, flt, select, "+model_id, lb", keys=2, extra=["success = 1"])
        frame = pd.DataFrame(rows, columns=["model", "bin", "count"])
    frame["latency_lo_ms"] = np.exp(frame["bin"] / BINS_PER_E)
    frame["latency_hi_ms"] = np.exp((frame["bin"] + 1) / BINS_PER_E)
    return frame


def errors_by_kind(
    db: Database, flt: UsageFilter, bucket_s: float | None = None, *, over_time: bool = False
) -> pd.DataFrame:
    """Failed attempts per (time bucket,) model and error kind."""
    import pandas as pd

    where, params = flt.sql("success = 0")
    kind = "coalesce(error_kind, 'UNKNOWN')"
    if over_time:
        width = _bucket(db, flt, bucket_s)
        rows = db.execute(
            f"""SELECT CAST({_EPOCH_S} / ? AS INTEGER) AS b, model_id, {kind} AS k, count(*)
                FROM usage {where} GROUP BY b, +model_id, k ORDER BY b""",
            [width, *params],
        ).fetchall()
        frame = pd.DataFrame(rows, columns=["bucket", "model", "error_kind", "failures"])
        _bucket_times(frame, width)
        return frame
    rows = db.execute(
        f"""SELECT model_id, {kind} AS k, count(*) FROM usage {where}
            GROUP BY +model_id, k ORDER BY model_id, k""",
        params,
    ).fetchall()
    return pd.DataFrame(rows, columns=["model", "error_kind", "failures"])


def latency_quantile(
    db: Database, flt: UsageFilter, q: float = 0.95, *, successes: int | None = None
) -> float | None:
    """The exact ``q`` quantile (nearest rank) of successful calls' latency, or None.

    ``successes``, when the caller already knows how many successful calls match, saves a count.
    """
    where, params = flt.sql("success = 1")
    n = successes
    if n is None:
        (n,) = db.execute(f"SELECT count(*) FROM usage {where}", params).fetchone()
    if not n:
        return None
    from_top = n - max(1, math.ceil(q * n))  # counted from the top: a small sort for p95
    return db.execute(
        f"SELECT latency_ms FROM usage {where} ORDER BY latency_ms DESC LIMIT 1 OFFSET ?",
        [*params, from_top],
    ).fetchone()[0]


def overview(db: Database, flt: UsageFilter, timeline: pd.DataFrame | None = None) -> dict:
    """``totals`` of the selected rows (from ``timeline`` if given: a ``cost_over_time`` frame
    of the same filter) plus their exact p95 latency."""
    if timeline is None:
        timeline = cost_over_time(db, flt, per_model=False)
    figures = totals(timeline)
    successes = figures["requests"] - figures["failures"]
    return {**figures, "p95_latency_ms": latency_quantile(db, flt, 0.95, successes=successes)}


def models_seen(db: Database) -> list[str]:
    """Every model id the log has a row for (read from the model index, not the table)."""
    return [m for (m,) in db.execute("SELECT DISTINCT model_id FROM usage ORDER BY model_id")]


# -- pure derivations (no SQL) ---------------------------------------------------------------
def percentiles(
    hist: pd.DataFrame, by: str | list[str] | None = "model", q: tuple[int, ...] = (50, 95, 99)
) -> pd.DataFrame:
    """p50/p95/p99 (``q``) latency from a ``latency_histogram`` frame, per ``by`` column(s)
    (None: over everything), nearest rank, interpolated within its 2.5%-wide bin."""
    import pandas as pd

    keys = [] if by is None else [by] if isinstance(by, str) else list(by)
    names = [f"p{p}_latency_ms" for p in q]
    out = []
    groups = hist.groupby(keys, sort=True) if keys else [((), hist)]
    for key, part in groups:
        counts = part.groupby("bin", sort=True)["count"].sum()
        total = int(counts.sum())
        row = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        row["requests"] = total
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
    return pd.DataFrame(out, columns=[*keys, "requests", *names])


def cost_by_model(timeline: pd.DataFrame) -> pd.DataFrame:
    """A ``cost_over_time`` frame summed per model: cost, cost per priced request, unpriced."""
    import pandas as pd

    columns = [
        *("model", "vendor", "simulated", "requests", "failures", "priced_requests"),
        *("unpriced_requests", "cost_usd", "cost_per_request_usd", "tokens"),
    ]
    if timeline.empty:
        return pd.DataFrame(columns=columns)
    sums = ["requests", "failures", "priced_requests", "unpriced_requests"]
    frame = (
        timeline.groupby(["model", "simulated"], as_index=False)
        .agg(
            vendor=("vendor", "first"),
            **{c: (c, "sum") for c in [*sums, "tokens"]},
            cost_usd=("cost_usd", lambda s: s.sum(min_count=1)),
        )
        .sort_values(["simulated", "cost_usd"], ascending=[True, False])
    )
    frame["cost_per_request_usd"] = frame["cost_usd"] / frame["priced_requests"].where(
        frame["priced_requests"] > 0
    )
    return frame[columns].reset_index(drop=True)


def totals(timeline: pd.DataFrame) -> dict[str, Any]:
    """Headline figures of a ``cost_over_time`` frame; real and simulated cost kept apart.

    ``cost_usd`` is real spend on priced calls: 0.0 with no real call, None when every real
    call was unpriced. ``unpriced_requests`` counts calls whose cost is unknown.
    """
    real = timeline[~timeline["simulated"]]
    sim = timeline[timeline["simulated"]]
    n, failures = int(timeline["requests"].sum()), int(timeline["failures"].sum())
    real_priced = int(real["priced_requests"].sum())
    return {
        "requests": n,
        "failures": failures,
        "success_rate": (n - failures) / n if n else None,
        "tokens": int(timeline["tokens"].sum()),
        "cost_usd": float(real["cost_usd"].sum()) if real_priced else (None if len(real) else 0.0),
        "simulated_requests": int(sim["requests"].sum()),
        "simulated_cost_usd": float(sim["cost_usd"].sum()) if len(sim) else None,
        "priced_requests": int(timeline["priced_requests"].sum()),
        "unpriced_requests": int(timeline["unpriced_requests"].sum()),
        "first_bucket": timeline["bucket"].min() if n else None,
        "last_bucket": timeline["bucket"].max() if n else None,
    }


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
