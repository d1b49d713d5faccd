"""The ``models`` table: seed, register, update, get, filter, deactivate, refresh prices."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ims_kit import catalog
from ims_kit.clock import Clock, as_clock
from ims_kit.db import Generation, immediate
from ims_kit.errors import DuplicateModelError, InvalidInputError, UnknownModelError
from ims_kit.records import ModelList, ModelSpec, check_capabilities, check_context_window

if TYPE_CHECKING:
    from sqlite_utils import Database

    from ims_kit.events import EventLog

_SPEC_FIELDS = tuple(f.name for f in dataclasses.fields(ModelSpec))


@dataclass(frozen=True)
class SeedResult:
    """What ``seed`` or ``import_file`` did: ids added, updated and left alone."""

    added: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()


@dataclass(frozen=True)
class PriceChange:
    """One model whose price ``refresh_prices`` changed."""

    model_id: str
    old: tuple[float | None, float | None]
    new: tuple[float, float]
    source: str


@dataclass(frozen=True)
class PriceRefresh:
    """The report of ``refresh_prices``: what changed, what was already right, what is unknown."""

    changed: tuple[PriceChange, ...]
    unchanged: tuple[str, ...]
    unknown: tuple[str, ...]


class Registry:
    """The model registry, stored in SQLite; every change and query is an event."""

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
        self._snapshot_cache: tuple[Any, tuple[ModelSpec, ...]] | None = None
        self._by_id: dict[str, ModelSpec] = {}

    # -- reading ------------------------------------------------------------------------
    def get(self, model_id: str) -> ModelSpec:
        """The model with this id (a ``model.queried`` event); UnknownModelError if absent."""
        spec = self.lookup(model_id)
        self._events.emit("model.queried", model_id, via="get")
        return spec

    def lookup(self, model_id: str) -> ModelSpec:
        """Like ``get`` but without an event: for ims_kit's own reads (served from the cache)."""
        self.snapshot()
        spec = self._by_id.get(model_id)
        if spec is None:
            raise UnknownModelError(model_id, known=len(self))
        return spec

    def all(self, *, active: bool | None = None) -> ModelList:
        """Every model (or only active / inactive ones), ordered by vendor then id."""
        where, params = ("WHERE active = ?", [int(active)]) if active is not None else ("", [])
        return self._select(where, params)

    def filter(
        self,
        *,
        vendor: str | None = None,
        min_context_window: int | None = None,
        capabilities: Iterable[str] | str | None = None,
        active: bool | None = True,
        max_cost_per_mil_in: float | None = None,
    ) -> ModelList:
        """Models matching every given criterion (a ``filter.executed`` event).

        ``active=None`` includes inactive models; ``max_cost_per_mil_in`` leaves out unpriced ones.
        """
        clauses: list[str] = []
        params: list[Any] = []
        if vendor is not None:
            known = self.vendors()
            match = next((v for v in known if v.lower() == str(vendor).lower()), None)
            if match is None:
                raise InvalidInputError(
                    f"unknown vendor {vendor!r}; known: {', '.join(known) or '(registry is empty)'}"
                )
            clauses.append("vendor = ?")
            params.append(match)
        if min_context_window is not None:
            clauses.append("context_window >= ?")
            params.append(check_context_window(min_context_window))
        for cap in check_capabilities(capabilities):
            clauses.append("EXISTS (SELECT 1 FROM json_each(capabilities) WHERE value = ?)")
            params.append(cap)
        if active is not None:
            clauses.append("active = ?")
            params.append(int(bool(active)))
        if max_cost_per_mil_in is not None:
            if (
                isinstance(max_cost_per_mil_in, bool)
                or not isinstance(max_cost_per_mil_in, int | float)
                or max_cost_per_mil_in < 0
            ):
                raise InvalidInputError(
                    "max_cost_per_mil_in must be a non-negative number, "
                    f"got {max_cost_per_mil_in!r}"
                )
            clauses.append("cost_per_mil_in IS NOT NULL AND cost_per_mil_in <= ?")
            params.append(max_cost_per_mil_in)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        found = self._select(where, params)
        criteria = {
            "vendor": vendor,
            "min_context_window": min_context_window,
            "capabilities": sorted(check_capabilities(capabilities)) or None,
            "active": active,
            "max_cost_per_mil_in": max_cost_per_mil_in,
        }
        self._events.emit(
            "filter.executed",
            None,
            criteria={k: v for k, v in criteria.items() if v is not None},
            count=len(found),
        )
        return found

    def snapshot(self) -> tuple[ModelSpec, ...]:
        """Every model, cached until this process or another one changes the registry.

        The selector ranks this on every recommendation, so re-reading thousands of rows
        each time would dominate; the state version (moved by triggers on ``models``) tells
        when it changed, here or in another process.
        """
        key = self._generation.current()
        if self._snapshot_cache is None or self._snapshot_cache[0] != key:
            models = tuple(self._select("", []))
            self._snapshot_cache = (key, models)
            self._by_id = {m.model_id: m for m in models}
        return self._snapshot_cache[1]

    def vendors(self) -> list[str]:
        """Vendor names present in the registry, sorted."""
        rows = self._db.execute("SELECT DISTINCT vendor FROM models ORDER BY vendor").fetchall()
        return [r[0] for r in rows]

    def count_by_vendor(self, *, active: bool | None = None) -> dict[str, int]:
        """Number of models per vendor."""
        where, params = ("WHERE active = ?", [int(active)]) if active is not None else ("", [])
        rows = self._db.execute(
            f"SELECT vendor, count(*) FROM models {where} GROUP BY vendor ORDER BY vendor", params
        ).fetchall()
        return dict(rows)

    def __len__(self) -> int:
        return self._db.execute("SELECT count(*) FROM models").fetchone()[0]

    def __contains__(self, model_id: object) -> bool:
        row = self._db.execute("SELECT 1 FROM models WHERE model_id = ?", [model_id]).fetchone()
        return row is not None

    def to_frame(self, *, active: bool | None = None):
        """Every model as a pandas DataFrame."""
        return self.all(active=active).to_frame()

    # -- writing ------------------------------------------------------------------------
    def seed(self, path: str | os.PathLike | None = None) -> SeedResult:
        """Add the curated catalogue's models that are not registered yet; idempotent."""
        specs = catalog.load(path or catalog.seed_path())
        added, skipped = [], []
        with immediate(self._db):
            for spec in specs:
                if spec.model_id in self:
                    skipped.append(spec.model_id)
                else:
                    self._insert(spec)
                    added.append(spec.model_id)
        return SeedResult(added=tuple(added), skipped=tuple(skipped))

    def import_file(self, path: str | os.PathLike) -> SeedResult:
        """Add or update models from a file shaped like ``data/models.json``; all or nothing.

        For a model already registered only the fields the entry gives change: importing
        ``{"model_id": ..., "cost_per_mil_in": 0.2, ...}`` keeps its quality, flags and URL.
        """
        entries = catalog.read(path)
        added, updated, unchanged = [], [], []
        with immediate(self._db):
            for spec, given in entries:
                if spec.model_id not in self:
                    self._insert(spec)
                    added.append(spec.model_id)
                    continue
                old = self.lookup(spec.model_id)
                merged = dataclasses.replace(
                    old, **{f: getattr(spec, f) for f in given if f != "model_id"}
                )
                if self._write_changes(old, merged):
                    updated.append(spec.model_id)
                else:
                    unchanged.append(spec.model_id)
        return SeedResult(added=tuple(added), skipped=tuple(unchanged), updated=tuple(updated))

    def import_catalog(self) -> SeedResult:
        """Register every chat model genai-prices knows, inactive and priced; idempotent.

        Models already registered under the same vendor and api_model are skipped, so the
        curated rows are never duplicated. Activate what you want with ``activate(model_id)``.
        """
        specs = catalog.genai_prices_models()
        added, skipped = [], []
        with immediate(self._db):
            present = set(self._db.execute("SELECT vendor, api_model FROM models").fetchall())
            for spec in specs:
                if spec.model_id in self or (spec.vendor, spec.api_model) in present:
                    skipped.append(spec.model_id)
                else:
                    self._insert(spec, event=False)
                    added.append(spec.model_id)
            if added:
                self._events.emit("model.registered", None, source="genai-prices", count=len(added))
        return SeedResult(added=tuple(added), skipped=tuple(skipped))

    def register(self, spec: ModelSpec, *, replace: bool = False) -> ModelSpec:
        """Add a model; an existing id is an error unless ``replace=True``."""
        if not isinstance(spec, ModelSpec):
            raise InvalidInputError(f"register() takes a ModelSpec, got {type(spec).__name__}")
        with immediate(self._db):
            if spec.model_id not in self:
                self._insert(spec)
            elif replace:
                self._write_changes(self.lookup(spec.model_id), spec)
            else:
                raise DuplicateModelError(
                    f"model {spec.model_id!r} is already registered; use update() or replace=True"
                )
        return spec

    def update(self, model_id: str, /, **changes: Any) -> ModelSpec:
        """Change some fields of a model (validated like a catalogue entry)."""
        bad = sorted(set(changes) - set(_SPEC_FIELDS) | ({"model_id"} & set(changes)))
        if bad:
            raise InvalidInputError(
                f"cannot update field(s) {', '.join(map(repr, bad))}; updatable: "
                + ", ".join(f for f in _SPEC_FIELDS if f != "model_id")
            )
        for name in ("capabilities", "unsupported_options"):
            if name in changes and not isinstance(changes[name], str):
                changes[name] = tuple(changes[name])
        with immediate(self._db):
            old = self.lookup(model_id)
            new = dataclasses.replace(old, **changes)
            self._write_changes(old, new)
        return new

    def deactivate(self, model_id: str) -> ModelSpec:
        """Keep the model but stop recommending or calling it."""
        return self.update(model_id, active=False)

    def activate(self, model_id: str) -> ModelSpec:
        """Make an inactive model eligible again."""
        return self.update(model_id, active=True)

    def refresh_prices(self) -> PriceRefresh:
        """Update prices from the installed genai-prices snapshot; unknown ones stay as they are."""
        changed, unchanged, unknown = [], [], []
        with immediate(self._db):
            for spec in self.all():
                price = catalog.genai_price(spec.vendor, spec.api_model)
                if price is None:
                    unknown.append(spec.model_id)
                    continue
                new = (price.cost_per_mil_in, price.cost_per_mil_out)
                if new == (spec.cost_per_mil_in, spec.cost_per_mil_out):
                    unchanged.append(spec.model_id)
                    continue
                self._write_changes(
                    spec,
                    dataclasses.replace(
                        spec,
                        cost_per_mil_in=new[0],
                        cost_per_mil_out=new[1],
                        price_source=price.source,
                        as_of=self.clock.now_iso()[:10],
                    ),
                )
                changed.append(
                    PriceChange(
                        spec.model_id,
                        (spec.cost_per_mil_in, spec.cost_per_mil_out),
                        new,
                        price.source,
                    )
                )
        return PriceRefresh(tuple(changed), tuple(unchanged), tuple(unknown))

    # -- internals ----------------------------------------------------------------------
    def _select(self, where: str, params: list[Any]) -> ModelList:
        rows = self._db.execute(
            f"SELECT {', '.join(_SPEC_FIELDS)} FROM models {where} ORDER BY vendor, model_id",
            params,
        ).fetchall()
        return ModelList(ModelSpec.from_row(dict(zip(_SPEC_FIELDS, r))) for r in rows)

    def _insert(self, spec: ModelSpec, *, event: bool = True) -> None:
        row = spec.to_row() | {"created": (ts := self.clock.now_iso()), "updated": ts}
        self._db.execute(
            f"INSERT INTO models ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
            list(row.values()),
        )
        self._generation.moved()
        if event:
            self._events.emit("model.registered", spec.model_id, vendor=spec.vendor)

    def _write_changes(self, old: ModelSpec, new: ModelSpec) -> bool:
        """Store ``new`` over ``old``; emit ``model.updated`` with the changed fields."""
        before, after = old.to_row(), new.to_row()
        diff = {k: [before[k], after[k]] for k in after if before[k] != after[k]}
        if not diff:
            return False
        sets = ", ".join(f"{k} = ?" for k in diff)
        self._db.execute(
            f"UPDATE models SET {sets}, updated = ? WHERE model_id = ?",
            [after[k] for k in diff] + [self.clock.now_iso(), old.model_id],
        )
        self._generation.moved()
        self._events.emit("model.updated", old.model_id, changes=diff)
        return True
