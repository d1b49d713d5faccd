"""The SQL behind the usage views: one aggregation per view, rows out, no pandas.

Each query groups by a time bucket and the model (and a log-latency bin for latencies), so
that a million-row log answers near a second and percentiles per model, per bucket or overall
come from one histogram. ``usage_frames`` turns these rows into DataFrames; ``UsageTracker``
joins the two. "requests" are first attempts (``attempt = 1``): every attempt of a request is
a row, and a request succeeds at most once, so successes count successful requests.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ims_kit.clock import since_iso
from ims_kit.errors import InvalidInputError
from ims_kit.usage_frames import BINS_PER_E

if TYPE_CHECKING:
    from sqlite_utils import Database

TARGET_BUCKETS = 60
PARALLEL_MIN_ROWS = 200_000  # below this a second connection costs more than it saves
MAX_WORKERS = 4
NICE_BUCKETS_S = (
    *(0.1, 0.25, 0.5, 1, 2, 5, 10, 15, 30),
    *(60, 120, 300, 600, 900, 1800),
    *(3600, 7200, 10800, 21600, 43200),
    *(86400, 2 * 86400, 7 * 86400, 30 * 86400),
)
EPOCH_S = "(julianday(ts) - 2440587.5) * 86400.0"  # ts as epoch seconds, sub-second kept
LATENCY_BIN = f"CAST(ln(max(latency_ms, 1.0)) * {BINS_PER_E} AS INTEGER)"
TTFT_BIN = f"CAST(ln(max(ttft_ms, 1.0)) * {BINS_PER_E} AS INTEGER)"
REAL = "provider IS NOT 'simulated'"
# The sums every "totals" is made of, in this order (see ``records.usage_totals``).
TOTALS_SQL = f"""count(*), coalesce(sum(success = 0), 0), coalesce(sum(attempt = 1), 0),
    coalesce(sum(success), 0), coalesce(sum(tokens_in), 0), coalesce(sum(tokens_out), 0),
    coalesce(sum({REAL}), 0), count(CASE WHEN {REAL} THEN cost_usd END),
    sum(CASE WHEN {REAL} THEN cost_usd END), coalesce(sum(NOT {REAL}), 0),
    coalesce(sum(NOT {REAL} AND attempt = 1), 0), sum(CASE WHEN NOT {REAL} THEN cost_usd END),
    count(*) - count(cost_usd)"""


@dataclass(frozen=True)
class UsageFilter:
    """Which rows a view covers: since a time, only some vendors or models, one session."""

    since: Any = None
    vendors: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    session_id: str | None = None
    workflow_id: str | None = None
    now: float | None = None  # what a ``since`` timedelta counts back from (the kit's clock)

    def sql(self, *extra: str) -> tuple[str, list[Any]]:
        """A WHERE clause (with ``extra`` conditions) and its parameters."""
        clauses, params = list(extra), []
        if self.since is not None:
            clauses.append("ts >= ?")
            params.append(since_iso(self.since, self.now))
        for column, values in (("vendor_id", self.vendors), ("model_id", self.models)):
            if values:
                clauses.append(f"{column} IN ({', '.join('?' * len(values))})")
                params.extend(values)
        for column, value in (("session_id", self.session_id), ("workflow_id", self.workflow_id)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        return (f"WHERE {' AND '.join(clauses)}" if clauses else ""), params


def usage_filter(
    since: Any = None, vendors: Any = None, models: Any = None, **exact: Any
) -> UsageFilter:
    """A ``UsageFilter`` from loose arguments (a string or a list for vendors and models)."""
    return UsageFilter(since, _names(vendors), _names(models), **exact)


def _names(value: Any) -> tuple[str, ...]:
    if not value:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def grouped(
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
        row = db.execute(
            "SELECT id FROM usage WHERE ts >= ? ORDER BY ts LIMIT 1",
            [since_iso(flt.since, flt.now)],
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


def bucket_width(db: Database, flt: UsageFilter, bucket_s: float | None) -> float:
    """``bucket_s`` checked, or the width that suits the filter's time span."""
    if bucket_s is None:
        return bucket_seconds(*span(db, flt))
    if not bucket_s > 0:
        raise InvalidInputError(f"bucket_s must be a positive number of seconds, got {bucket_s!r}")
    return float(bucket_s)


def totals(db: Database, flt: UsageFilter) -> tuple:
    """The sums of ``TOTALS_SQL`` over the filter's rows."""
    where, params = flt.sql()
    return db.execute(f"SELECT {TOTALS_SQL} FROM usage {where}", params).fetchone()


def cost_rows(db: Database, flt: UsageFilter, width: float, *, per_model: bool) -> list[tuple]:
    """(bucket*2 + simulated, model, requests, attempts, failed attempts, priced attempts,
    priced cost, tokens in, tokens out) per bucket (and model), in bucket order."""
    model = "model_id" if per_model else "NULL"
    rows = grouped(  # one integer key for bucket and simulated: fewer sort columns
        db,
        flt,
        f"""CAST({EPOCH_S} / ? AS INTEGER) * 2 + coalesce(provider = 'simulated', 0) AS k,
            {model} AS m, sum(attempt = 1), count(*), sum(success = 0), count(cost_usd),
            sum(cost_usd), sum(tokens_in), sum(tokens_out)""",
        f"k{', m' if per_model else ''}",
        keys=2,
        lead=[width],
    )
    rows.sort(key=lambda r: r[0])
    return rows


def latency_rows(
    db: Database, flt: UsageFilter, width: float | None, *, over_time: bool
) -> list[tuple]:
    """Successful calls counted per (bucket*4096 + bin,) model and log-latency bin."""
    if over_time:
        # one integer key for bucket and bin (bins stay below 4096: ln(1e9 ms) * 40 < 830)
        select = f"CAST({EPOCH_S} / ? AS INTEGER) * 4096 + {LATENCY_BIN} AS k, model_id, count(*)"
        return grouped(db, flt, select, "k, model_id", keys=2, lead=[width], extra=["success = 1"])
    # +model_id: a sort beats walking the model index with a table lookup per row
    select = f"model_id, {LATENCY_BIN} AS lb, count(*)"
    return grouped(db, flt, select, "+model_id, lb", keys=2, extra=["success = 1"])


def ttft_rows(db: Database, flt: UsageFilter) -> list[tuple]:
    """Successful streamed calls counted per model and log-bin of their time to first token
    (the rows of ``latency_rows``, for ``ttft_ms``)."""
    select = f"model_id, {TTFT_BIN} AS lb, count(*)"
    extra = ["success = 1", "ttft_ms IS NOT NULL"]
    return grouped(db, flt, select, "+model_id, lb", keys=2, extra=extra)


def error_rows(
    db: Database, flt: UsageFilter, width: float | None, *, over_time: bool
) -> list[tuple]:
    """Failed attempts per (bucket,) model and error kind."""
    where, params = flt.sql("success = 0")
    kind = "coalesce(error_kind, 'UNKNOWN')"
    if over_time:
        return db.execute(
            f"""SELECT CAST({EPOCH_S} / ? AS INTEGER) AS b, model_id, {kind} AS k, count(*)
                FROM usage {where} GROUP BY b, +model_id, k ORDER BY b""",
            [width, *params],
        ).fetchall()
    return db.execute(
        f"""SELECT model_id, {kind} AS k, count(*) FROM usage {where}
            GROUP BY +model_id, k ORDER BY model_id, k""",
        params,
    ).fetchall()


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


def vendors_of(db: Database, models: Any) -> dict[str, str | None]:
    """Each model's vendor as logged, one index lookup per model (not a column to group by)."""
    sql = "SELECT vendor_id FROM usage WHERE model_id = ? LIMIT 1"
    return {m: db.execute(sql, [m]).fetchone()[0] for m in models}


def models_seen(db: Database) -> list[str]:
    """Every model id the log has a row for (read from the model index, not the table)."""
    return [m for (m,) in db.execute("SELECT DISTINCT model_id FROM usage ORDER BY model_id")]
