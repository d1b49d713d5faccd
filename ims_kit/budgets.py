"""Spending caps that hold under concurrency: the ``budgets`` and ``budget_reservations`` tables.

A budget caps the cost of real calls (or, marked ``simulated``, of simulated ones) in a scope
(everything, a vendor or a model) over a period: a calendar ``day``, ``week`` (from Monday) or
``month`` in UTC, or ``total``. Before each attempt recovery *reserves* its worst case (prompt
tokens x input price + max_tokens x output price) under ``BEGIN IMMEDIATE``, so two threads or
processes can never both take the last dollars; a reservation that does not fit is refused
with ``BudgetExceeded`` and the call never leaves. When the attempt's usage row is written
(``usage.log_execution``), in the same transaction, the reservation is deleted and the real
cost added to every matching budget: spent + reserved never passes the limit. A reservation
whose process died, or that outlived ``RESERVATION_TTL_S``, is stale and no longer counts.
Under a budget an unpriced model is refused unless the budget allows unpriced models: its cost
is unknown, never $0.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ims_kit.clock import Clock, as_clock, epoch, iso
from ims_kit.db import Generation, immediate
from ims_kit.errors import BudgetExceeded, InvalidInputError
from ims_kit.formatting import money
from ims_kit.ids import new_id

if TYPE_CHECKING:
    from sqlite_utils import Database

    from ims_kit.events import EventLog
    from ims_kit.records import ModelSpec

PERIODS = ("day", "week", "month", "total")
RESERVATION_TTL_S = 900.0  # longer than any one attempt (a stream included) should take
_EPOCH_START = "1970-01-01T00:00:00.000000+00:00"  # the start of a total budget's period


@dataclass(frozen=True)
class Budget:
    """One cap: ``limit_usd`` over ``period`` for ``vendor`` / ``model`` (None: any)."""

    id: int
    limit_usd: float
    period: str
    vendor: str | None = None
    model: str | None = None
    simulated: bool = False  # True: caps simulated calls (for demos), not real ones
    allow_unpriced: bool = False
    warn_at: float | None = None  # share of the limit that emits budget.warning

    @property
    def scope(self) -> str:
        """What it covers, in words: "all", "vendor OpenAI", "model gpt-5"."""
        what = (
            f"model {self.model}"
            if self.model
            else f"vendor {self.vendor}"
            if self.vendor
            else "all"
        )
        return f"{what} (simulated)" if self.simulated else what

    def covers(self, model_id: str, vendor: str | None, simulated: bool) -> bool:
        """True when a call to this model (of this vendor) counts against this budget."""
        if simulated != self.simulated:
            return False
        if self.model is not None and self.model != model_id:
            return False
        return self.vendor is None or (vendor or "").lower() == self.vendor.lower()

    def label(self) -> str:
        return f"budget #{self.id} ({self.scope}, {money(self.limit_usd)} per {self.period})"


@dataclass(frozen=True)
class BudgetStatus:
    """A budget now: spent and reserved in the current period, what is left, when it resets."""

    id: int
    scope: str
    period: str
    limit_usd: float
    spent_usd: float
    reserved_usd: float
    left_usd: float
    period_start: str | None
    resets_at: str | None
    warn_at: float | None
    allow_unpriced: bool
    simulated: bool
    vendor: str | None
    model: str | None

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class BudgetList(list):
    """Budget statuses; a table in Jupyter, ``to_frame()`` for pandas."""

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame(
            [s.to_dict() for s in self], columns=[f.name for f in fields(BudgetStatus)]
        )

    def _repr_html_(self) -> str:
        return self.to_frame().to_html(index=False, na_rep="")


@dataclass(frozen=True)
class Reservation:
    """Money set aside for one attempt; settled by its usage row."""

    id: str
    amount_usd: float
    budget_ids: tuple[int, ...]


def period_bounds(period: str, now: float) -> tuple[str, str | None]:
    """The start of the current calendar period (UTC) and when it resets (None: never)."""
    moment = datetime.fromtimestamp(now, UTC)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        start, end = day, day + timedelta(days=1)
    elif period == "week":
        start = day - timedelta(days=day.weekday())
        end = start + timedelta(days=7)
    elif period == "month":
        start = day.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
    else:
        return _EPOCH_START, None
    return iso(start.timestamp()), iso(end.timestamp())


def worst_case_usd(spec: ModelSpec, prompt_tokens: int, max_tokens: int | None) -> float | None:
    """The most one attempt can cost: the prompt, and the longest answer it may give; None
    when the model is unpriced."""
    answer = max_tokens if max_tokens is not None else spec.max_output_tokens
    return spec.cost_usd(prompt_tokens, answer)


class Budgets:
    """The budgets of one database; ``set``, ``status`` and ``remove`` for people, ``reserve``
    for recovery, ``settle`` for the usage log."""

    def __init__(
        self,
        db: Database,
        events: EventLog,
        clock: Clock | None = None,
        generation: Generation | None = None,
    ):
        self._db = db
        self._events = events
        self.clock = as_clock(clock)
        self._generation = generation or Generation(db)
        self._active: tuple[Any, bool] | None = None

    # -- what people do -----------------------------------------------------------------------
    def set(
        self,
        limit_usd: float,
        *,
        period: str = "day",
        vendor: str | None = None,
        model: str | None = None,
        warn_at: float | None = None,
        allow_unpriced: bool = False,
        simulated: bool = False,
    ) -> Budget:
        """Cap spending; a budget of the same scope and period gets the new limit."""
        _checked(limit_usd, period, vendor, model, warn_at)
        now = self.clock()
        start, _ = period_bounds(period, now)
        with immediate(self._db):
            row = self._db.execute(
                "SELECT id FROM budgets WHERE period = ? AND vendor IS ? AND model IS ?"
                " AND simulated = ?",
                [period, vendor, model, int(simulated)],
            ).fetchone()
            values = [float(limit_usd), warn_at, int(allow_unpriced)]
            if row is not None:
                self._db.execute(
                    "UPDATE budgets SET limit_usd = ?, warn_at = ?, allow_unpriced = ?,"
                    " warned_period = NULL WHERE id = ?",
                    [*values, row[0]],
                )
                budget_id = row[0]
            else:
                draft = Budget(0, float(limit_usd), period, vendor, model, simulated)
                spent = self._spent_since(draft, start)
                cursor = self._db.execute(
                    "INSERT INTO budgets (limit_usd, warn_at, allow_unpriced, period, vendor,"
                    " model, simulated, spent_usd, period_start, created)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [*values, period, vendor, model, int(simulated), spent, start, iso(now)],
                )
                budget_id = cursor.lastrowid
            self._events.emit(
                "budget.set",
                str(budget_id),
                limit_usd=float(limit_usd),
                period=period,
                vendor=vendor,
                model=model,
                simulated=simulated,
            )
        return self.get(budget_id)

    def get(self, budget_id: int) -> Budget:
        """The budget with this id (InvalidInputError when there is none)."""
        for budget in self.all():
            if budget.id == budget_id:
                return budget
        raise InvalidInputError(f"no budget #{budget_id}; `ims budget list` shows them")

    def all(self) -> list[Budget]:
        """Every budget, oldest first."""
        return [_budget(row) for row in self._rows()]

    def remove(self, budget_id: int) -> None:
        """Delete a budget (and its reservations)."""
        with immediate(self._db):
            cursor = self._db.execute("DELETE FROM budgets WHERE id = ?", [int(budget_id)])
            if not cursor.rowcount:
                raise InvalidInputError(f"no budget #{budget_id}; `ims budget list` shows them")
            self._db.execute("DELETE FROM budget_reservations WHERE budget_id = ?", [budget_id])
            self._events.emit("budget.removed", str(budget_id))

    def status(self) -> BudgetList:
        """Every budget now: limit, spent, reserved, left, period start and reset time.

        Read-only (a reader never waits for a writer): stale reservations are left out, a
        budget whose period rolled over is counted afresh from the usage log."""
        now = self.clock()
        reserved = self._reserved(live_at=now)
        out = BudgetList()
        for row in self._rows():
            budget = _budget(row)
            start, resets = period_bounds(budget.period, now)
            spent = (
                row["spent_usd"]
                if row["period_start"] == start
                else self._spent_since(budget, start)
            )
            held = reserved.get(budget.id, 0.0)
            out.append(
                BudgetStatus(
                    budget.id,
                    budget.scope,
                    budget.period,
                    budget.limit_usd,
                    spent,
                    held,
                    max(0.0, budget.limit_usd - spent - held),
                    None if budget.period == "total" else start,
                    resets,
                    budget.warn_at,
                    budget.allow_unpriced,
                    budget.simulated,
                    budget.vendor,
                    budget.model,
                )
            )
        return out

    def __len__(self) -> int:
        return self._db.execute("SELECT count(*) FROM budgets").fetchone()[0]

    # -- what recovery and the selector do ----------------------------------------------------
    def reserve(
        self, spec: ModelSpec, amount_usd: float | None, *, simulated: bool
    ) -> Reservation | None:
        """Set ``amount_usd`` aside in every budget covering this call (None: no budget does),
        or raise BudgetExceeded, the call then never being made. ``amount_usd`` None means
        the model is unpriced."""
        if not self.active():
            return None
        return self._admit(spec, amount_usd, simulated, hold=True)

    def check(self, spec: ModelSpec, amount_usd: float | None, *, simulated: bool) -> None:
        """``reserve`` without setting anything aside: BudgetExceeded if it would be refused."""
        if self.active():
            self._admit(spec, amount_usd, simulated, hold=False)

    def _admit(
        self, spec: ModelSpec, amount_usd: float | None, simulated: bool, *, hold: bool
    ) -> Reservation | None:
        now, reservation, refusal = self.clock(), None, None
        with immediate(self._db):
            self._expire(now)
            rows = [
                r for r in self._rows() if _budget(r).covers(spec.model_id, spec.vendor, simulated)
            ]
            reserved = self._reserved()
            for row in rows:
                budget, spent = _budget(row), self._rolled(row, now)
                left = budget.limit_usd - spent - reserved.get(budget.id, 0.0)
                unpriced = amount_usd is None and not budget.allow_unpriced
                if unpriced or (amount_usd is not None and amount_usd > left + 1e-12):
                    refusal = (budget, max(0.0, left))
                    break
            if refusal is None and rows and hold:
                reservation = self._hold(rows, reserved, amount_usd or 0.0, now)
        if refusal is not None:  # said after the transaction, which keeps no reservation
            budget, left = refusal
            self._refused(budget, amount=amount_usd, left=left, spec=spec)
        return reservation

    def _hold(self, rows, reserved: dict[int, float], amount: float, now: float) -> Reservation:
        """Write the reservation rows (inside reserve's transaction)."""
        reservation = Reservation(new_id(), amount, tuple(r["id"] for r in rows))
        expires = iso(now + RESERVATION_TTL_S)
        self._db.conn.executemany(
            "INSERT INTO budget_reservations (id, budget_id, amount_usd, created, expires, pid)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [
                (reservation.id, b, amount, iso(now), expires, os.getpid())
                for b in reservation.budget_ids
            ],
        )
        self._warn(rows, reserved, amount, now)
        return reservation

    def blocked(
        self, specs: Iterable[ModelSpec], costs: Mapping[str, float | None], *, simulated: bool
    ) -> dict[str, str]:
        """Model id -> why a budget cannot take a call costing ``costs[model_id]`` (its worst
        case): what the selector leaves out. Reserves nothing."""
        if not self.active():
            return {}
        statuses = [s for s in self.status() if s.simulated == simulated]
        out: dict[str, str] = {}
        for spec in specs:
            for s in statuses:
                budget = Budget(s.id, s.limit_usd, s.period, s.vendor, s.model, s.simulated)
                if not budget.covers(spec.model_id, spec.vendor, simulated):
                    continue
                cost = costs.get(spec.model_id)
                if cost is None and not s.allow_unpriced:
                    out[spec.model_id] = f"unpriced under {budget.label()}"
                elif cost is not None and cost > s.left_usd + 1e-12:
                    out[spec.model_id] = (
                        f"{budget.label()}: worst case {money(cost)} > {money(s.left_usd)} left"
                    )
                if spec.model_id in out:
                    break
        return out

    # -- what the usage log does, inside its transaction ---------------------------------------
    def settle(
        self,
        db: Database,
        *,
        reservation_id: str | None,
        model_id: str,
        vendor: str | None,
        simulated: bool,
        cost_usd: float | None,
        ts: str,
    ) -> None:
        """Free the reservation and add the attempt's cost to every budget covering it, on
        ``db`` inside the transaction that writes the usage row (one change, both)."""
        if reservation_id is not None:
            db.conn.execute("DELETE FROM budget_reservations WHERE id = ?", [reservation_id])
        if not cost_usd:
            return
        now = epoch(ts) or self.clock()
        for row in _rows(db):
            budget = _budget(row)
            if budget.covers(model_id, vendor, simulated):
                start, _ = period_bounds(budget.period, now)
                db.conn.execute(
                    "UPDATE budgets SET spent_usd = spent_usd + ?"
                    " WHERE id = ? AND period_start = ?",
                    [cost_usd, budget.id, start],
                )

    def active(self) -> bool:
        """True when any budget exists (else reserving is skipped altogether); read again
        only when the state version moved."""
        version = self._generation.current()
        if self._active is None or self._active[0] != version:
            found = self._db.execute("SELECT 1 FROM budgets LIMIT 1").fetchone() is not None
            self._active = (version, found)
        return self._active[1]

    # -- inside ------------------------------------------------------------------------------

    def _rows(self) -> list[dict[str, Any]]:
        return _rows(self._db)

    def _reserved(self, live_at: float | None = None) -> dict[int, float]:
        """Money held per budget (``live_at``: only reservations still live then, for readers
        that do not delete the stale ones)."""
        rows = self._db.execute(
            "SELECT budget_id, amount_usd, expires, pid FROM budget_reservations"
        ).fetchall()
        held: dict[int, float] = {}
        for budget_id, amount, expires, pid in rows:
            if live_at is not None and (expires < iso(live_at) or (pid and not _alive(pid))):
                continue
            held[budget_id] = held.get(budget_id, 0.0) + amount
        return held

    def _expire(self, now: float) -> None:
        """Drop reservations that outlived their time or whose process is gone."""
        self._db.execute("DELETE FROM budget_reservations WHERE expires < ?", [iso(now)])
        pids = [p for (p,) in self._db.execute("SELECT DISTINCT pid FROM budget_reservations")]
        dead = [p for p in pids if p is not None and not _alive(p)]
        if dead:
            self._db.execute(
                f"DELETE FROM budget_reservations WHERE pid IN ({', '.join('?' * len(dead))})",
                dead,
            )

    def _rolled(self, row: dict[str, Any], now: float) -> float:
        """The budget's spend in the current period, recounting from the log when a new
        period began since it was last counted."""
        budget = _budget(row)
        start, _ = period_bounds(budget.period, now)
        if row["period_start"] == start:
            return row["spent_usd"]
        spent = self._spent_since(budget, start)
        self._db.execute(
            "UPDATE budgets SET spent_usd = ?, period_start = ?, warned_period = NULL WHERE id = ?",
            [spent, start, budget.id],
        )
        return spent

    def _spent_since(self, budget: Budget, start: str) -> float:
        clauses, params = (
            ["ts >= ?", "(provider = 'simulated') = ?"],
            [start, int(budget.simulated)],
        )
        if budget.model is not None:
            clauses.append("model_id = ?")
            params.append(budget.model)
        if budget.vendor is not None:
            clauses.append("lower(vendor_id) = lower(?)")
            params.append(budget.vendor)
        where = " AND ".join(clauses)
        (spent,) = self._db.execute(
            f"SELECT coalesce(sum(cost_usd), 0) FROM usage WHERE {where}", params
        ).fetchone()
        return float(spent)

    def _refused(
        self, budget: Budget, *, amount: float | None, left: float, spec: ModelSpec
    ) -> None:
        self._events.emit(
            "budget.exceeded",
            str(budget.id),
            model_id=spec.model_id,
            needed_usd=amount,
            left_usd=max(0.0, left),
            limit_usd=budget.limit_usd,
        )
        raise BudgetExceeded(
            budget.label(),
            limit_usd=budget.limit_usd,
            left_usd=max(0.0, left),
            needed_usd=amount,
            model_id=spec.model_id,
            budget_id=budget.id,
        )

    def _warn(self, rows, reserved: dict[int, float], amount: float, now: float) -> None:
        for row in rows:
            budget = _budget(row)
            if budget.warn_at is None or row["warned_period"] == row["period_start"]:
                continue
            used = row["spent_usd"] + reserved.get(budget.id, 0.0) + amount
            if used >= budget.warn_at * budget.limit_usd:
                self._db.execute(
                    "UPDATE budgets SET warned_period = period_start WHERE id = ?", [budget.id]
                )
                self._events.emit(
                    "budget.warning",
                    str(budget.id),
                    scope=budget.scope,
                    used_usd=used,
                    limit_usd=budget.limit_usd,
                    warn_at=budget.warn_at,
                )


def _rows(db: Database) -> list[dict[str, Any]]:
    cursor = db.conn.execute("SELECT * FROM budgets ORDER BY id")
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, values)) for values in cursor.fetchall()]


def _budget(row: Mapping[str, Any]) -> Budget:
    return Budget(
        row["id"],
        row["limit_usd"],
        row["period"],
        row["vendor"],
        row["model"],
        bool(row["simulated"]),
        bool(row["allow_unpriced"]),
        row["warn_at"],
    )


def _checked(limit_usd, period, vendor, model, warn_at) -> None:
    if isinstance(limit_usd, bool) or not isinstance(limit_usd, int | float) or not limit_usd > 0:
        raise InvalidInputError(
            f"a budget's limit must be a positive amount of USD, got {limit_usd!r}"
        )
    if limit_usd == float("inf"):
        raise InvalidInputError("a budget's limit must be finite (remove the budget instead)")
    if period not in PERIODS:
        raise InvalidInputError(f"unknown period {period!r}; known: {', '.join(PERIODS)}")
    for name, value in (("vendor", vendor), ("model", model)):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise InvalidInputError(f"{name} must be a non-empty string, got {value!r}")
    if vendor is not None and model is not None:
        raise InvalidInputError("a budget covers a vendor or a model, not both")
    if warn_at is not None and (
        isinstance(warn_at, bool) or not isinstance(warn_at, int | float) or not 0 < warn_at <= 1
    ):
        raise InvalidInputError(
            f"warn_at is a share of the limit above 0 and up to 1, got {warn_at!r}"
        )


def _alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    except OSError:
        return True
    return True
