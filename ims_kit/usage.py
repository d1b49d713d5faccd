"""The usage log: one row per model call attempt (tokens, cost, latency, outcome) and its stats.

Every row is committed before ``log_execution`` returns, so a process killed afterwards loses
nothing; the row is also the attempt's ``model.executed`` event (``ims_kit.events``). A
*request* (one ``ask``) has one row per *attempt*; they share its ``request_id`` and the first
has ``attempt = 1``. Aggregates are
computed in SQL (``usage_queries``; indexes on ``ts`` and ``model_id``) so they stay quick
on large logs; ``usage_frames`` builds the DataFrames, importing pandas only then.
"""

from __future__ import annotations

import math
import sys
from concurrent.futures import Future
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from ims_kit import usage_queries as q
from ims_kit.clock import Clock, as_clock, since_iso
from ims_kit.db import immediate
from ims_kit.errors import ErrorKind, InvalidInputError
from ims_kit.events import EXECUTED, EXECUTED_PAYLOAD, Event, EventLog
from ims_kit.ids import new_id
from ims_kit.records import ModelStats, cost_usd, usage_totals
from ims_kit.writer import Row, Write, write_now, writer_for

if TYPE_CHECKING:
    import asyncio

    from sqlite_utils import Database

    from ims_kit.budgets import Budgets

STATS_WINDOW = 10_000  # attempts the selector's observed stats look back over
GROUPINGS = {
    "model": "model_id",
    "vendor": "vendor_id",
    "day": "substr(ts, 1, 10)",
    "provider": "provider",
}


@dataclass(frozen=True)
class UsageRecord:
    """One attempt as stored in the ``usage`` table."""

    call_id: str
    ts: str
    session_id: str | None
    workflow_id: str | None
    model_id: str
    vendor_id: str | None
    provider: str | None
    tokens_in: int
    tokens_out: int
    token_source: str
    cost_per_mil_in: float | None
    cost_per_mil_out: float | None
    cost_usd: float | None
    latency_ms: float
    success: bool
    error_kind: str | None
    attempt: int
    fallback_from: str | None
    strategy: str | None
    request_id: str | None = None
    ttft_ms: float | None = None  # a streamed attempt's time to its first piece


_COLUMNS = [f.name for f in fields(UsageRecord)]
_SUCCESS_INDEX = _COLUMNS.index("success")
_INSERT = f"INSERT INTO usage ({', '.join(_COLUMNS)})"  # writer.Row adds the VALUES
_INSERT_TEXT = f"INSERT INTO usage ({', '.join(_COLUMNS)}, prompt, response, routed_prompt)"


class UsageTracker:
    """Records every call attempt and answers questions about them."""

    def __init__(
        self,
        db: Database,
        events: EventLog,
        session_id: str,
        *,
        store_text: bool = False,
        clock: Clock | None = None,
    ):
        self._db = db
        self._events = events
        self.session_id = session_id
        self.store_text = store_text  # prompts and answers are kept only when asked for
        self.clock = as_clock(clock)
        self.budgets: Budgets | None = None  # set by Kit: each row settles its reservation
        path = getattr(db, "path", None)
        self._writer = writer_for(path) if path is not None else None

    def notify_committed(self, future: Any) -> None:
        """Tell subscribers of a row written with ``wait=False`` (its future is done)."""
        self._events.notify(future.result())

    def log_execution(
        self,
        *,
        model_id: str,
        vendor_id: str | None,
        tokens_in: int,
        tokens_out: int,
        cost_per_mil_in: float | None,
        cost_per_mil_out: float | None,
        latency_ms: float,
        success: bool,
        error_kind: ErrorKind | str | None = None,
        provider: str | None = None,
        token_source: str = "provider",
        workflow_id: str | None = None,
        attempt: int = 1,
        fallback_from: str | None = None,
        strategy: str | None = None,
        call_id: str | None = None,
        request_id: str | None = None,
        prompt: str | None = None,
        response: str | None = None,
        routed_prompt: str | None = None,
        ttft_ms: float | None = None,
        reservation_id: str | None = None,
        wait: bool = True,
    ) -> Any:
        """Store one attempt and emit ``model.executed``; cost is computed from these prices.

        A model without a price stores ``cost_usd`` NULL (unpriced), never 0. ``attempt`` is
        the attempt's number within its request (1 = the request's first), ``request_id``
        the request's id (a new one when not given: a request of one attempt). In the same
        transaction the cost counts against every budget covering the call, and the attempt's
        budget reservation (``reservation_id``) is freed. The row is written by the file's
        writer thread (``ims_kit.writer``), many rows per transaction; the call returns the
        ``UsageRecord`` once it is committed. ``wait=False`` returns (record, future) at once,
        for async code to await the commit (called on a running event loop, an asyncio
        future of it, else a ``concurrent.futures.Future``); then ``notify_committed(future)``
        afterwards.
        """
        _check_count("tokens_in", tokens_in)
        _check_count("tokens_out", tokens_out)
        _check_count("attempt", attempt, low=1)
        for name, price in (
            ("cost_per_mil_in", cost_per_mil_in),
            ("cost_per_mil_out", cost_per_mil_out),
        ):
            if price is not None and (
                isinstance(price, bool)
                or not isinstance(price, int | float)
                or not 0 <= price < math.inf
            ):
                raise InvalidInputError(
                    f"{name} must be a non-negative number or None, got {price!r}"
                )
        _check_ms("latency_ms", latency_ms)
        if ttft_ms is not None:
            _check_ms("ttft_ms", ttft_ms)
        if token_source not in ("provider", "estimate"):
            raise InvalidInputError(
                f"token_source must be 'provider' or 'estimate', got {token_source!r}"
            )
        record = UsageRecord(
            call_id=call_id or new_id(),
            ts=self.clock.now_iso(),
            session_id=self.session_id,
            workflow_id=workflow_id,
            model_id=model_id,
            vendor_id=vendor_id,
            provider=provider,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            token_source=token_source,
            cost_per_mil_in=cost_per_mil_in,
            cost_per_mil_out=cost_per_mil_out,
            cost_usd=cost_usd(tokens_in, tokens_out, cost_per_mil_in, cost_per_mil_out),
            latency_ms=float(latency_ms),
            success=bool(success),
            error_kind=str(error_kind) if error_kind is not None else None,
            attempt=attempt,
            fallback_from=fallback_from,
            strategy=strategy,
            request_id=request_id or new_id(),
            ttft_ms=None if ttft_ms is None else float(ttft_ms),
        )
        values = list(vars(record).values())
        values[_SUCCESS_INDEX] = int(record.success)
        if self.store_text:  # the routed text only where it is not the whole prompt
            values += [prompt, response, None if routed_prompt == prompt else routed_prompt]
        insert = _INSERT_TEXT if self.store_text else _INSERT
        budgets = self.budgets
        if budgets is not None and reservation_id is None and not budgets.active():
            budgets = None  # nothing to settle: no budget, no reservation
        payload = {key: getattr(record, key) for key in EXECUTED_PAYLOAD}

        def executed(row_id: int) -> Event:
            return Event(EXECUTED, model_id, payload, record.ts, row_id)

        row = Row(insert, values, executed)

        def write(db: Database) -> Event:  # the row and the budget it settles, together
            event = write_now(row, db)
            budgets.settle(
                db,
                reservation_id=reservation_id,
                model_id=model_id,
                vendor=vendor_id,
                simulated=provider == "simulated",
                cost_usd=record.cost_usd,
                ts=record.ts,
            )
            return event

        job: Write = row if budgets is None else write
        here = self._db.current if hasattr(self._db, "current") else self._db
        if self._writer is None or here.conn.in_transaction:
            with immediate(here):  # inside the caller's own transaction: written with it
                event = write_now(job, here)
            if not wait:
                loop = _running_loop()
                done = Future() if loop is None else loop.create_future()
                done.set_result(event)
                return record, done
        elif not wait:
            return record, self._writer.submit(job, loop=_running_loop())
        else:
            event = self._writer.call(job, here)
        self._events.notify(event)
        return record

    def get_session_stats(self) -> dict[str, Any]:
        """This session's requests, tokens, cost, failures and success rate (the seed's keys),
        with attempts and simulated traffic apart: see ``records.usage_totals``."""
        return self.totals(session_id=self.session_id)

    def totals(self, *, since: Any = None, session_id: str | None = None) -> dict[str, Any]:
        """The same figures over the whole log (or since a time, or for one session)."""
        row = q.totals(self._db, self.filter(since=since, session_id=session_id))
        (attempts, failed, requests, successes, tin, tout) = row[:6]
        (n_real, real_priced, real_cost, n_sim, sim_requests, sim_cost, unpriced) = row[6:]
        return usage_totals(
            attempts=attempts,
            failed_attempts=failed,
            requests=requests,
            successes=successes,
            tokens_in=tin,
            tokens_out=tout,
            real_attempts=n_real,
            real_priced=real_priced,
            real_cost=real_cost,
            simulated_attempts=n_sim,
            simulated_requests=sim_requests,
            simulated_cost=sim_cost,
            unpriced_attempts=unpriced,
        )

    def filter(
        self,
        since: Any = None,
        vendors: str | list[str] | None = None,
        models: str | list[str] | None = None,
        *,
        session_id: str | None = None,
        workflow_id: str | None = None,
    ) -> q.UsageFilter:
        """The rows a view covers; ``since`` timedeltas count back from this kit's clock."""
        return q.usage_filter(
            since, vendors, models, session_id=session_id, workflow_id=workflow_id, now=self.clock()
        )

    def summary(self, by: str = "model", *, since: Any = None):
        """A DataFrame per model, vendor, provider or day: requests, attempts, tokens, cost,
        failed attempts, attempt success rate, p50/p95/p99 latency. Aggregated in SQL."""
        import pandas as pd

        return pd.DataFrame(self.summary_rows(by, since=since))

    def summary_rows(
        self,
        by: str = "model",
        *,
        since: Any = None,
        last: int | None = None,
        percentiles: bool = True,
    ) -> list[dict[str, Any]]:
        """``summary`` as plain dicts (for the CLI and JSON); ``last`` keeps the latest N rows.

        A stream the caller left early (CANCELLED) is not a failed attempt: it says nothing
        about the model, whose observed success rate the selector reads from here.

        Exact percentiles sort every successful call; ``percentiles=False`` skips them
        (``latency_percentiles()`` gives them within 2.5% at a fraction of the cost)."""
        if by not in GROUPINGS:
            raise InvalidInputError(f"unknown grouping {by!r}; known: {', '.join(GROUPINGS)}")
        key = GROUPINGS[by]
        where, params = _where(since=since, last=last, now=self.clock())
        rows = self._db.execute(
            f"""WITH base AS (SELECT {key} AS k, * FROM usage {where}),
                lat AS (SELECT k, latency_ms,
                               row_number() OVER (PARTITION BY k ORDER BY latency_ms) AS rn,
                               count(*) OVER (PARTITION BY k) AS n
                        FROM base WHERE success = 1 AND ?)
                SELECT b.k, b.requests, b.attempts, b.tokens_in, b.tokens_out, b.cost, b.priced,
                       b.failures, p.p50, p.p95, p.p99
                FROM (SELECT k, sum(attempt = 1) AS requests, count(*) AS attempts,
                             sum(tokens_in) AS tokens_in, sum(tokens_out) AS tokens_out,
                             sum(cost_usd) AS cost, count(cost_usd) AS priced,
                             sum(success = 0 AND coalesce(error_kind, '') <> 'CANCELLED')
                                 AS failures
                      FROM base GROUP BY k) AS b
                LEFT JOIN (SELECT k, min(CASE WHEN rn >= 0.50 * n THEN latency_ms END) AS p50,
                                     min(CASE WHEN rn >= 0.95 * n THEN latency_ms END) AS p95,
                                     min(CASE WHEN rn >= 0.99 * n THEN latency_ms END) AS p99
                           FROM lat GROUP BY k) AS p ON p.k = b.k
                ORDER BY b.k""",
            [*params, int(percentiles)],
        ).fetchall()
        return [
            {
                by: k,
                "requests": requests,
                "attempts": n,
                "tokens_in": tin,
                "tokens_out": tout,
                "cost_usd": cost if priced else None,
                "unpriced_attempts": n - priced,
                "failed_attempts": fails,
                "attempt_success_rate": (n - fails) / n,
                "p50_latency_ms": p50,
                "p95_latency_ms": p95,
                "p99_latency_ms": p99,
            }
            for k, requests, n, tin, tout, cost, priced, fails, p50, p95, p99 in rows
        ]

    def model_stats(self, last: int = STATS_WINDOW) -> dict[str, ModelStats]:
        """Observed success rate and median latency per model over the latest ``last``
        attempts, for the selector: recent behaviour, and a cost that does not grow with
        the log (the window is a range of the integer primary key)."""
        return {
            r["model"]: ModelStats(r["attempts"], r["attempt_success_rate"], r["p50_latency_ms"])
            for r in self.summary_rows("model", last=last)
        }

    def to_frame(
        self, *, since: Any = None, session_id: str | None = None, workflow_id: str | None = None
    ):
        """One row per attempt as a pandas DataFrame (``ts`` parsed to datetimes)."""
        import pandas as pd

        where, params = _where(
            since=since, session_id=session_id, workflow_id=workflow_id, now=self.clock()
        )
        frame = pd.read_sql_query(
            f"SELECT * FROM usage {where} ORDER BY id", self._db.conn, params=params
        )
        frame["ts"] = pd.to_datetime(frame["ts"], format="ISO8601")
        frame["success"] = frame["success"].astype(bool)
        return frame

    def records(
        self,
        *,
        workflow_id: str | None = None,
        request_id: str | None = None,
        limit: int = 1000,
    ) -> list[UsageRecord]:
        """Recent attempts as UsageRecord values (newest last), of a workflow or a request."""
        where, params = _where(workflow_id=workflow_id, request_id=request_id)
        cursor = self._db.execute(
            f"SELECT * FROM (SELECT * FROM usage {where} ORDER BY id DESC LIMIT ?) ORDER BY id",
            [*params, int(limit)],
        )
        names = [d[0] for d in cursor.description]
        wanted = set(_COLUMNS)
        out = []
        for values in cursor.fetchall():
            row = {k: v for k, v in zip(names, values) if k in wanted}
            row["success"] = bool(row["success"])
            out.append(UsageRecord(**row))
        return out

    # -- views for the dashboard and notebooks (SQL in usage_queries, frames in usage_frames) ----
    def cost_over_time(
        self,
        *,
        bucket_s: float | None = None,
        per_model: bool = True,
        since: Any = None,
        vendors: str | list[str] | None = None,
        models: str | list[str] | None = None,
    ):
        """A DataFrame per time bucket, model and simulated-or-not: requests, attempts, failed
        attempts, tokens, priced cost and unpriced attempts. The bucket width is chosen for ~60
        buckets unless given; ``per_model=False`` sums the models of each bucket (quicker)."""
        from ims_kit import usage_frames

        flt = self.filter(since, vendors, models)
        width = q.bucket_width(self._db, flt, bucket_s)
        rows = q.cost_rows(self._db, flt, width, per_model=per_model)
        vendors_of = q.vendors_of(self._db, {r[1] for r in rows if r[1] is not None})
        return usage_frames.timeline(rows, width, vendors_of)

    def latency_histogram(
        self,
        *,
        bucket_s: float | None = None,
        over_time: bool = True,
        since: Any = None,
        vendors: str | list[str] | None = None,
        models: str | list[str] | None = None,
    ):
        """Successful calls counted per (time bucket,) model and 2.5%-wide latency bin;
        ``usage_frames.percentiles(frame)`` turns it into p50/p95/p99."""
        from ims_kit import usage_frames

        flt = self.filter(since, vendors, models)
        width = q.bucket_width(self._db, flt, bucket_s) if over_time else None
        rows = q.latency_rows(self._db, flt, width, over_time=over_time)
        return usage_frames.latency_histogram(rows, width)

    def latency_percentiles(
        self,
        *,
        since: Any = None,
        vendors: str | list[str] | None = None,
        models: str | list[str] | None = None,
    ):
        """p50/p95/p99 latency of successful calls per model (from the histogram, within 2.5%)."""
        from ims_kit import usage_frames

        hist = self.latency_histogram(over_time=False, since=since, vendors=vendors, models=models)
        return usage_frames.percentiles(hist, "model")

    def ttft_percentiles(
        self,
        *,
        since: Any = None,
        vendors: str | list[str] | None = None,
        models: str | list[str] | None = None,
    ):
        """p50/p95/p99 time to first token of successful streamed calls per model
        (``streams``: how many; within 2.5%, like latency)."""
        from ims_kit import usage_frames

        rows = q.ttft_rows(self._db, self.filter(since, vendors, models))
        hist = usage_frames.latency_histogram(rows, None)
        frame = usage_frames.percentiles(hist, "model")
        return frame.rename(
            columns=lambda c: c.replace("latency", "ttft").replace("successes", "streams")
        )

    def errors_by_kind(
        self,
        *,
        over_time: bool = False,
        bucket_s: float | None = None,
        since: Any = None,
        vendors: str | list[str] | None = None,
        models: str | list[str] | None = None,
    ):
        """Failed attempts per model and error kind (and time bucket with ``over_time``)."""
        from ims_kit import usage_frames

        flt = self.filter(since, vendors, models)
        width = q.bucket_width(self._db, flt, bucket_s) if over_time else None
        return usage_frames.errors(q.error_rows(self._db, flt, width, over_time=over_time), width)

    def overview(
        self,
        *,
        since: Any = None,
        vendors: str | list[str] | None = None,
        models: str | list[str] | None = None,
        timeline: Any = None,
    ) -> dict[str, Any]:
        """``usage_totals`` of the rows the filters select plus their exact p95 latency.
        ``timeline``: the same filters' ``cost_over_time`` frame when you have it (saves
        reading the log twice)."""
        from ims_kit import usage_frames

        if timeline is None:
            timeline = self.cost_over_time(
                per_model=False, since=since, vendors=vendors, models=models
            )
        figures = usage_frames.totals(timeline)
        successes = figures["attempts"] - figures["failed_attempts"]
        p95 = q.latency_quantile(
            self._db, self.filter(since, vendors, models), 0.95, successes=successes
        )
        return {**figures, "p95_latency_ms": p95}

    def span(
        self,
        since: Any = None,
        vendors: str | list[str] | None = None,
        models: str | list[str] | None = None,
    ) -> tuple[str | None, str | None]:
        """The first and last timestamps of the rows the filters select (None, None: none)."""
        return q.span(self._db, self.filter(since, vendors, models))

    def models_seen(self) -> list[str]:
        """Every model id that has at least one usage row."""
        return q.models_seen(self._db)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    loaded = sys.modules.get("asyncio")  # no loop runs before asyncio is imported
    try:
        return None if loaded is None else loaded.get_running_loop()
    except RuntimeError:
        return None


def _check_count(name: str, value: Any, *, low: int = 0) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InvalidInputError(f"{name} must be an integer >= {low}, got {value!r}")


def _where(
    *,
    since: Any = None,
    session_id: str | None = None,
    workflow_id: str | None = None,
    request_id: str | None = None,
    last: int | None = None,
    now: float | None = None,
) -> tuple[str, list[Any]]:
    clauses, params = [], []
    if last is not None:
        clauses.append("id > (SELECT coalesce(max(id), 0) FROM usage) - ?")
        params.append(int(last))
    if since is not None:
        clauses.append("ts >= ?")
        params.append(since_iso(since, now))
    for column, value in (
        ("session_id", session_id),
        ("workflow_id", workflow_id),
        ("request_id", request_id),
    ):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    return (f"WHERE {' AND '.join(clauses)}" if clauses else ""), params


def _check_ms(name: str, value: Any) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not (math.isfinite(value) and value >= 0)
    ):
        raise InvalidInputError(f"{name} must be a non-negative number, got {value!r}")
