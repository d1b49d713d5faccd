"""Which model should handle this request? Strategies and constraints -> a ranked, explained list.

Pure: ``rank`` reads only its arguments (models, the request, observed stats, open circuits);
no database, network, clock or Streamlit, so every choice can be reproduced in a test.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ims_kit.analysis import TaskProfile
from ims_kit.errors import InvalidInputError, NoModelAvailable
from ims_kit.records import ModelSpec, ModelStats, check_capabilities, check_context_window

STRATEGIES = {
    "cost": "lowest estimated cost of this request",
    "performance": "highest quality; ties by observed success rate, then latency",
    "balanced": "cheapest model whose quality is within a margin of the best feasible one",
    "latency": "lowest observed median latency (a stated prior where none is observed)",
    "auto": "reads the prompt, then the cheapest model whose quality suits its difficulty",
    "learned": "a learned router's score: the strong model when the prompt needs it, else"
    " the cheap one",
}
DEFAULT_STRATEGY = "cost"
DEFAULT_MIN_CONTEXT = 10_000
DEFAULT_OUTPUT_TOKENS = 500
BALANCED_MARGIN = 5.0
LATENCY_PRIOR_MS = 2_000.0


@dataclass(frozen=True)
class Request:
    """What is asked: the size of the call, the strategy and the constraints."""

    prompt_tokens: int = 0
    expected_output_tokens: int = DEFAULT_OUTPUT_TOKENS
    strategy: str = DEFAULT_STRATEGY
    min_context_window: int = DEFAULT_MIN_CONTEXT
    vendors: tuple[str, ...] = ()
    exclude_vendors: tuple[str, ...] = ()
    capabilities: tuple[str, ...] = ()
    max_cost_usd: float | None = None
    include_inactive: bool = False
    balanced_margin: float = BALANCED_MARGIN
    task: TaskProfile | None = None
    # strategy "learned": the router's score of this prompt (higher = needs the strong
    # model), the threshold it is compared with, and what set the threshold
    route_score: float | None = None
    route_threshold: float | None = None
    route_basis: str = ""
    route_pair: tuple[str, str] | None = None  # (strong, cheap) the router was trained on

    @property
    def required_context(self) -> int:
        """The window a model needs: the constraint, and never less than prompt plus output."""
        return max(self.min_context_window, self.prompt_tokens + self.expected_output_tokens)


@dataclass(frozen=True)
class Candidate:
    """One model as the selector saw it: its rank (or the constraint that excluded it) and why."""

    model: ModelSpec
    estimated_cost_usd: float | None
    score: float | None
    reasons: tuple[str, ...]
    rank: int | None = None
    excluded_by: str | None = None

    @property
    def model_id(self) -> str:
        return self.model.model_id


@dataclass(frozen=True)
class Recommendation:
    """The chosen model, every ranked candidate and every excluded model with its reason."""

    strategy: str
    request: Request
    ranked: tuple[Candidate, ...]
    _excluded: tuple[tuple[ModelSpec, str, str], ...] = field(default=(), repr=False)

    @property
    def model(self) -> ModelSpec:
        """The recommended model (the first ranked candidate)."""
        return self.ranked[0].model

    @property
    def fallbacks(self) -> list[ModelSpec]:
        """The other feasible models, in the order recovery should try them."""
        return [c.model for c in self.ranked[1:]]

    @property
    def excluded(self) -> tuple[Candidate, ...]:
        """Models left out, each with the constraint that excluded it."""
        return tuple(
            Candidate(m, None, None, (reason,), None, constraint)
            for m, constraint, reason in self._excluded
        )

    def excluded_counts(self) -> dict[str, int]:
        """How many models each constraint excluded."""
        counts: dict[str, int] = {}
        for _, constraint, _ in self._excluded:
            counts[constraint] = counts.get(constraint, 0) + 1
        return counts

    def to_dict(self) -> dict:
        """JSON-ready form (the CLI's ``--json``)."""

        def row(c: Candidate) -> dict:
            return {
                "rank": c.rank,
                "model_id": c.model_id,
                "vendor": c.model.vendor,
                "score": c.score,
                "estimated_cost_usd": c.estimated_cost_usd,
                "excluded_by": c.excluded_by,
                "reasons": list(c.reasons),
            }

        return {
            "model_id": self.model.model_id,
            "strategy": self.strategy,
            "prompt_tokens": self.request.prompt_tokens,
            "expected_output_tokens": self.request.expected_output_tokens,
            "required_context": self.request.required_context,
            "task": self.request.task.describe() if self.request.task else None,
            "candidates": [row(c) for c in self.ranked],
            "excluded": [row(c) for c in self.excluded],
        }

    def to_frame(self):
        """Every model: rank, score, estimated cost of this prompt, and why it was kept or not."""
        import pandas as pd

        rows = [
            {
                "rank": c.rank,
                "model_id": c.model_id,
                "vendor": c.model.vendor,
                "score": c.score,
                "estimated_cost_usd": c.estimated_cost_usd,
                "kept": c.excluded_by is None,
                "why": "; ".join(c.reasons),
            }
            for c in (*self.ranked, *self.excluded)
        ]
        frame = pd.DataFrame(rows)
        frame["rank"] = frame["rank"].astype("Int64")  # excluded models have no rank
        return frame

    def __repr__(self) -> str:
        return (
            f"<Recommendation {self.model.model_id} by {self.strategy}: "
            f"{len(self.ranked)} candidates, {len(self._excluded)} excluded>"
        )

    def _repr_html_(self) -> str:
        head = (
            f"<p><b>{self.model.model_id}</b> recommended by <i>{self.strategy}</i>: "
            f"{STRATEGIES[self.strategy]}</p>"
        )
        return head + self.to_frame().to_html(index=False, na_rep="")

    def __str__(self) -> str:
        lines = [f"{self.model.model_id} ({self.strategy}: {STRATEGIES[self.strategy]})"]
        lines += [f"  {c.rank}. {c.model_id}: {'; '.join(c.reasons)}" for c in self.ranked[:10]]
        if len(self.ranked) > 10:
            lines.append(f"  ... {len(self.ranked) - 10} more candidates")
        counts = self.excluded_counts()
        if counts:
            lines.append("  excluded: " + ", ".join(f"{n} by {k}" for k, n in counts.items()))
        return "\n".join(lines)


def check_request(request: Request, vendors_known: Iterable[str]) -> None:
    """Raise InvalidInputError naming the bad value and the accepted ones."""
    if request.strategy not in STRATEGIES:
        raise InvalidInputError(
            f"unknown strategy {request.strategy!r}; known: {', '.join(STRATEGIES)}"
        )
    check_context_window(request.min_context_window)
    check_capabilities(request.capabilities)
    known = {v.lower(): v for v in vendors_known}
    for vendor in (*request.vendors, *request.exclude_vendors):
        if vendor.lower() not in known:
            raise InvalidInputError(
                f"unknown vendor {vendor!r}; known: {', '.join(sorted(known.values()))}"
            )
    if request.max_cost_usd is not None and not (
        isinstance(request.max_cost_usd, int | float)
        and not isinstance(request.max_cost_usd, bool)
        and request.max_cost_usd >= 0
    ):
        raise InvalidInputError(
            f"max_cost_usd must be a non-negative number, got {request.max_cost_usd!r}"
        )
    if not request.balanced_margin >= 0:  # also refuses NaN
        raise InvalidInputError(f"balanced margin must be >= 0, got {request.balanced_margin!r}")
    for name in ("prompt_tokens", "expected_output_tokens"):
        value = getattr(request, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidInputError(f"{name} must be a non-negative integer, got {value!r}")


def rank(
    models: Iterable[ModelSpec],
    request: Request,
    *,
    stats: Mapping[str, ModelStats] | None = None,
    open_circuits: Mapping[str, str] | None = None,
    over_budget: Mapping[str, str] | None = None,
) -> Recommendation:
    """Rank ``models`` for ``request``; ``open_circuits`` maps model id -> when it retries,
    ``over_budget`` model id -> why a budget cannot take the request.

    Raises NoModelAvailable (with per-constraint counts) when nothing is feasible.
    """
    models = list(models)
    # Vendor names are collected only when the request names vendors (a pass over every model).
    named = request.vendors or request.exclude_vendors
    check_request(request, {m.vendor for m in models} if named else ())
    stats = stats or {}
    open_circuits = open_circuits or {}
    over_budget = over_budget or {}
    need = request.required_context
    only = {v.lower() for v in request.vendors}
    never = {v.lower() for v in request.exclude_vendors}
    caps = set(request.capabilities)
    tin, tout = request.prompt_tokens, request.expected_output_tokens

    feasible: list[tuple[ModelSpec, float | None]] = []
    excluded: list[tuple[ModelSpec, str, str]] = []
    for m in models:
        if not m.active and not request.include_inactive:
            excluded.append((m, "inactive", "inactive (retired or local; include_inactive=True)"))
        elif only and m.vendor.lower() not in only:
            excluded.append((m, "vendor", f"vendor {m.vendor} not among {sorted(request.vendors)}"))
        elif m.vendor.lower() in never:
            excluded.append((m, "vendor", f"vendor {m.vendor} excluded"))
        elif caps and not caps.issubset(m.capabilities):
            missing = ", ".join(sorted(caps - set(m.capabilities)))
            excluded.append((m, "capabilities", f"lacks {missing}"))
        elif m.context_window < need:
            excluded.append(
                (m, "context window", f"context window {m.context_window:,} < required {need:,}")
            )
        elif m.model_id in open_circuits:
            excluded.append((m, "circuit open", f"circuit open until {open_circuits[m.model_id]}"))
        elif m.model_id in over_budget:
            excluded.append((m, "budget", over_budget[m.model_id]))
        else:
            cost = m.cost_usd(tin, tout)
            if request.max_cost_usd is not None and (cost is None or cost > request.max_cost_usd):
                why = (
                    "unpriced, so max_cost_usd cannot be checked"
                    if cost is None
                    else (f"estimated ${cost:.6f} > max ${request.max_cost_usd:g}")
                )
                excluded.append((m, "max cost", why))
            else:
                feasible.append((m, cost))
    if not feasible:
        counts: dict[str, int] = {}
        for _, constraint, _ in excluded:
            counts[constraint] = counts.get(constraint, 0) + 1
        raise NoModelAvailable(counts, f"required context {need:,} tokens" if need else "")

    ordered = _STRATEGY_FUNCS[request.strategy](feasible, request, stats)
    ranked = tuple(
        Candidate(m, cost, score, reasons, i)
        for i, (m, cost, score, reasons) in enumerate(ordered, start=1)
    )
    return Recommendation(request.strategy, request, ranked, tuple(excluded))


# -- strategies: each returns [(model, cost, score, reasons)] best first ------------------------
Scored = list[tuple[ModelSpec, float | None, float | None, tuple[str, ...]]]


def _cost_reason(m: ModelSpec, cost: float | None, request: Request) -> str:
    if cost is None:
        return "unpriced: ranked after priced models"
    return (
        f"estimated ${cost:.6f} for ~{request.prompt_tokens:,} in + "
        f"{request.expected_output_tokens:,} out tokens"
    )


def _quality(m: ModelSpec) -> float:
    return m.quality if m.quality is not None else -1.0


def _quality_reason(m: ModelSpec) -> str:
    return "quality unknown" if m.quality is None else f"quality {m.quality:g}"


def _by_cost(feasible, request: Request, stats) -> Scored:
    feasible = sorted(
        feasible, key=lambda mc: (mc[1] is None, mc[1] or 0.0, -_quality(mc[0]), mc[0].model_id)
    )
    return [(m, c, c, (_cost_reason(m, c, request), _quality_reason(m))) for m, c in feasible]


def _observed(m: ModelSpec, stats: Mapping[str, ModelStats]) -> tuple[float, float, str]:
    s = stats.get(m.model_id)
    if s is None or not s.attempts:
        return 1.0, LATENCY_PRIOR_MS, f"no observations (latency prior {LATENCY_PRIOR_MS:,.0f} ms)"
    rate = 1.0 if s.success_rate is None else s.success_rate
    latency = LATENCY_PRIOR_MS if s.p50_latency_ms is None else s.p50_latency_ms
    return (
        rate,
        latency,
        (f"observed {rate:.0%} success, median {latency:,.0f} ms over {s.attempts} attempts"),
    )


def _by_performance(feasible, request: Request, stats) -> Scored:
    rows = []
    for m, c in feasible:
        rate, latency, seen = _observed(m, stats)
        rows.append(((-_quality(m), -rate, latency, m.model_id), m, c, seen))
    rows.sort(key=lambda r: r[0])
    return [
        (m, c, m.quality, (_quality_reason(m), seen, _cost_reason(m, c, request)))
        for _, m, c, seen in rows
    ]


def _by_balance(feasible, request: Request, stats) -> Scored:
    best = max(_quality(m) for m, _ in feasible)
    floor = best - request.balanced_margin
    near = [(m, c) for m, c in feasible if _quality(m) >= floor]
    far = [(m, c) for m, c in feasible if _quality(m) < floor]
    out: Scored = []
    for m, c, _, _ in _by_cost(near, request, stats):
        out.append(
            (
                m,
                c,
                c,
                (
                    f"{_quality_reason(m)} within {request.balanced_margin:g} of the "
                    f"best feasible {best:g}",
                    _cost_reason(m, c, request),
                ),
            )
        )
    for m, c in sorted(far, key=lambda mc: (-_quality(mc[0]), mc[1] is None, mc[1] or 0.0)):
        out.append(
            (
                m,
                c,
                c,
                (
                    f"{_quality_reason(m)} is more than {request.balanced_margin:g} "
                    f"below the best feasible {best:g}",
                    _cost_reason(m, c, request),
                ),
            )
        )
    return out


def _by_latency(feasible, request: Request, stats) -> Scored:
    rows = []
    for m, c in feasible:
        _, latency, seen = _observed(m, stats)
        rows.append(((latency, c is None, c or 0.0, m.model_id), m, c, latency, seen))
    rows.sort(key=lambda r: r[0])
    return [(m, c, lat, (seen, _cost_reason(m, c, request))) for _, m, c, lat, seen in rows]


def _by_task(feasible, request: Request, stats) -> Scored:
    task = request.task or TaskProfile("easy", (), 0.0)
    need = task.required_quality
    suitable = [(m, c) for m, c in feasible if _quality(m) >= need]
    weaker = [(m, c) for m, c in feasible if _quality(m) < need]
    out: Scored = []
    for m, c, _, (why_cost, _) in _by_cost(suitable, request, stats):
        out.append((m, c, c, (task.describe(), f"{_quality_reason(m)} >= {need:g}", why_cost)))
    note = (
        "no model reaches the required quality: strongest first"
        if not suitable
        else ("below the required quality")
    )
    for m, c in sorted(weaker, key=lambda mc: (-_quality(mc[0]), mc[1] is None, mc[1] or 0.0)):
        out.append(
            (
                m,
                c,
                c,
                (
                    task.describe(),
                    f"{_quality_reason(m)} < {need:g}: {note}",
                    _cost_reason(m, c, request),
                ),
            )
        )
    return out


def _by_router(feasible, request: Request, stats) -> Scored:
    """The strong model (the best quality allowed) when the router's score reaches the
    threshold, else the cheap one (the cheapest allowed); then the rest by cost."""
    if request.route_score is None or request.route_threshold is None:
        raise InvalidInputError("strategy 'learned' needs a router score and a threshold")
    by_cost = _by_cost(feasible, request, stats)
    cheap = by_cost[0]
    strong = min(by_cost, key=lambda r: (-_quality(r[0]), r[1] is None, r[1] or 0.0))
    trained = ""
    if request.route_pair is not None:  # the pair the router learned, when both are allowed
        found = {r[0].model_id: r for r in by_cost}
        if all(model in found for model in request.route_pair):
            strong, cheap = (found[model] for model in request.route_pair)
            trained = ", the pair the router was trained on"
    score, threshold = request.route_score, request.route_threshold
    basis = f" ({request.route_basis})" if request.route_basis else ""
    needs = score >= threshold
    said = f"router score {score:.3f} {'>=' if needs else '<'} threshold {threshold:.3f}{basis}"
    first = strong if needs else cheap
    role = "strong" if needs else "cheap"
    out: Scored = [(first[0], first[1], score, (said, f"the {role} model{trained}", *first[3]))]
    second = cheap if needs else strong
    if second[0] is not first[0]:
        role = "cheap" if needs else "strong"
        out.append((second[0], second[1], score, (f"the {role} model, as a fallback", *second[3])))
    # the rest are ranked by cost, not by the router: no score, as for excluded models
    out += [
        (r[0], r[1], None, r[3]) for r in by_cost if r[0] is not first[0] and r[0] is not second[0]
    ]
    return out


_STRATEGY_FUNCS = {
    "cost": _by_cost,
    "performance": _by_performance,
    "balanced": _by_balance,
    "latency": _by_latency,
    "auto": _by_task,
    "learned": _by_router,
}
