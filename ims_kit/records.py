"""Frozen values shared across ims_kit; dicts appear only at the edges (JSON, SQLite rows)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ims_kit.errors import InvalidInputError
from ims_kit.formatting import price, text_table

PROVIDERS = ("anthropic", "gemini", "gemini_cli", "openai", "openai_compatible", "simulated")
MAX_TOKENS = 1_000_000_000  # far above any real window; keeps values inside SQLite's integers
CAPABILITIES = ("audio", "code", "json_mode", "reasoning", "tools", "vision")
# generation options a model row may mark as not taken (max_tokens every model takes)
DROPPABLE_OPTIONS = ("temperature", "top_p", "stop", "seed")


def cost_usd(
    tokens_in: int, tokens_out: int, cost_per_mil_in: float | None, cost_per_mil_out: float | None
) -> float | None:
    """Dollar cost of a call, or None when either price is unknown (unpriced is never $0)."""
    if cost_per_mil_in is None or cost_per_mil_out is None:
        return None
    return (tokens_in * cost_per_mil_in + tokens_out * cost_per_mil_out) / 1_000_000


@dataclass(frozen=True)
class ModelSpec:
    """One registered model: where to call it, what it costs, what it can do."""

    model_id: str
    vendor: str
    provider: str
    context_window: int
    display_name: str = ""
    api_model: str = ""
    base_url: str | None = None
    max_output_tokens: int = 4096
    cost_per_mil_in: float | None = None
    cost_per_mil_out: float | None = None
    capabilities: tuple[str, ...] = ()
    quality: float | None = None
    quality_source: str | None = None
    active: bool = True
    price_source: str | None = None
    as_of: str | None = None
    unsupported_options: tuple[str, ...] = ()  # options it refuses: dropped, never sent

    def __post_init__(self) -> None:
        for name, value in _validated(self).items():
            object.__setattr__(self, name, value)

    @property
    def priced(self) -> bool:
        """True when both prices are known."""
        return self.cost_per_mil_in is not None and self.cost_per_mil_out is not None

    def cost_usd(self, tokens_in: int, tokens_out: int) -> float | None:
        """Cost of a call with these token counts at this model's prices (None if unpriced)."""
        return cost_usd(tokens_in, tokens_out, self.cost_per_mil_in, self.cost_per_mil_out)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict, in the shape of ``data/models.json`` entries."""
        d = asdict(self)
        d["capabilities"] = list(self.capabilities)
        d["unsupported_options"] = list(self.unsupported_options)
        return d

    def to_row(self) -> dict[str, Any]:
        """The ``models`` table row for this spec."""
        d = self.to_dict()
        d["capabilities"] = json.dumps(d["capabilities"])
        d["unsupported_options"] = json.dumps(d["unsupported_options"])
        d["active"] = int(self.active)
        return d

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ModelSpec:
        """Rebuild a spec from a ``models`` row (extra columns such as timestamps are ignored)."""
        d = {f.name: row[f.name] for f in fields(cls) if f.name in row}
        d["capabilities"] = tuple(json.loads(d.get("capabilities") or "[]"))
        d["unsupported_options"] = tuple(json.loads(d.get("unsupported_options") or "[]"))
        d["active"] = bool(d.get("active", 1))
        return cls(**d)

    @classmethod
    def from_dict(cls, data: Any) -> ModelSpec:
        """Validate a user-supplied dict (a catalogue entry) and build a spec from it."""
        if not isinstance(data, Mapping):
            raise InvalidInputError(f"expected an object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInputError(f"unknown field(s) {', '.join(map(repr, unknown))}")
        missing = [n for n in ("model_id", "vendor", "provider", "context_window") if n not in data]
        if missing:
            raise InvalidInputError(f"missing field(s) {', '.join(map(repr, missing))}")
        d = dict(data)
        caps = d.get("capabilities", ())
        if not isinstance(caps, list | tuple):
            raise InvalidInputError("'capabilities' must be a list of strings")
        d["capabilities"] = tuple(caps)
        refused = d.get("unsupported_options", ())
        if not isinstance(refused, list | tuple):
            raise InvalidInputError("'unsupported_options' must be a list of option names")
        d["unsupported_options"] = tuple(refused)
        return cls(**d)


def _validated(spec: ModelSpec) -> dict[str, Any]:
    """Check every field of ``spec``; return normalised values (defaults filled in)."""

    def text(name: str, value: Any, *, optional: bool = False) -> str | None:
        if value is None and optional:
            return None
        if not isinstance(value, str) or not value.strip():
            raise InvalidInputError(f"{name!r} must be a non-empty string, got {value!r}")
        return value

    def whole(name: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_TOKENS:
            raise InvalidInputError(
                f"{name!r} must be a positive integer up to {MAX_TOKENS:,}, got {value!r}"
            )
        return value

    def price(name: str, value: Any) -> float | None:
        if value is None:
            return None
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise InvalidInputError(f"{name!r} must be a number or null, got {value!r}")
        if value < 0:
            raise InvalidInputError(f"{name!r} must not be negative, got {value!r}")
        return float(value)

    text("model_id", spec.model_id)
    text("vendor", spec.vendor)
    if spec.provider not in PROVIDERS:
        raise InvalidInputError(
            f"'provider' must be one of {', '.join(PROVIDERS)}, got {spec.provider!r}"
        )
    caps = spec.capabilities
    bad = [c for c in caps if c not in CAPABILITIES]
    if bad:
        raise InvalidInputError(f"unknown capability {bad[0]!r}; known: {', '.join(CAPABILITIES)}")
    if isinstance(spec.unsupported_options, str):
        raise InvalidInputError("'unsupported_options' must be a list of option names")
    refused = [o for o in spec.unsupported_options if o not in DROPPABLE_OPTIONS]
    if refused:
        raise InvalidInputError(
            f"unknown option {refused[0]!r} in 'unsupported_options';"
            f" known: {', '.join(DROPPABLE_OPTIONS)}"
        )
    quality = spec.quality
    if quality is not None:
        if isinstance(quality, bool) or not isinstance(quality, int | float):
            raise InvalidInputError(f"'quality' must be a number from 0 to 100, got {quality!r}")
        if not 0 <= quality <= 100:
            raise InvalidInputError(f"'quality' must be from 0 to 100, got {quality!r}")
        quality = float(quality)
    if not isinstance(spec.active, bool):
        raise InvalidInputError(f"'active' must be true or false, got {spec.active!r}")
    return {
        "display_name": text("display_name", spec.display_name or spec.model_id),
        "api_model": text("api_model", spec.api_model or spec.model_id),
        "base_url": text("base_url", spec.base_url, optional=True),
        "context_window": whole("context_window", spec.context_window),
        "max_output_tokens": whole("max_output_tokens", spec.max_output_tokens),
        "cost_per_mil_in": price("cost_per_mil_in", spec.cost_per_mil_in),
        "cost_per_mil_out": price("cost_per_mil_out", spec.cost_per_mil_out),
        "capabilities": tuple(sorted(set(caps))),
        "unsupported_options": tuple(o for o in DROPPABLE_OPTIONS if o in spec.unsupported_options),
        "quality": quality,
        "quality_source": text("quality_source", spec.quality_source, optional=True),
        "price_source": text("price_source", spec.price_source, optional=True),
        "as_of": text("as_of", spec.as_of, optional=True),
    }


class ModelList(list):
    """A list of ModelSpec that shows as a table in Jupyter and converts to a DataFrame."""

    def __init__(self, specs: Iterable[ModelSpec] = ()):
        super().__init__(specs)

    def ids(self) -> list[str]:
        """The model ids, in order."""
        return [m.model_id for m in self]

    def to_frame(self):
        """A pandas DataFrame, one row per model (pandas is imported only now)."""
        import pandas as pd

        columns = [f.name for f in fields(ModelSpec)]
        return pd.DataFrame([m.to_dict() for m in self], columns=columns)

    def _repr_html_(self) -> str:
        cols = [
            "model_id",
            "vendor",
            "context_window",
            "cost_per_mil_in",
            "cost_per_mil_out",
            "quality",
            "active",
        ]
        frame = self.to_frame()[cols]
        for col in ("cost_per_mil_in", "cost_per_mil_out"):
            frame[col] = frame[col].astype(object).where(frame[col].notna(), "unpriced")
        return frame.to_html(index=False, na_rep="")

    def __str__(self) -> str:
        rows = [
            {
                "model_id": m.model_id,
                "vendor": m.vendor,
                "provider": m.provider,
                "context": f"{m.context_window:,}",
                "$/M in": price(m.cost_per_mil_in),
                "$/M out": price(m.cost_per_mil_out),
                "quality": "" if m.quality is None else f"{m.quality:g}",
                "capabilities": ",".join(m.capabilities),
                "active": "yes" if m.active else "no",
            }
            for m in self
        ]
        return text_table(rows) if rows else "(no models)"


@dataclass(frozen=True)
class Completion:
    """One successful model call, as the provider reported it.

    Token counts are the provider's own; None when it reported none (the caller then
    estimates and says so). ``latency_ms`` is wall time of the HTTP exchange.
    """

    text: str
    tokens_in: int | None
    tokens_out: int | None
    finish_reason: str | None
    request_id: str | None
    latency_ms: float
    model: str
    ttft_ms: float | None = None  # a stream's time to its first piece, as the provider saw it


def check_context_window(value: Any) -> int:
    """A context-window constraint must be a non-negative integer."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInputError(f"context window must be a non-negative integer, got {value!r}")
    return value


def check_capabilities(value: Iterable[str] | str | None) -> list[str]:
    """Normalise a capability constraint; an unknown name is an error listing the known ones."""
    if value is None:
        return []
    caps = [value] if isinstance(value, str) else list(value)
    for cap in caps:
        if cap not in CAPABILITIES:
            raise InvalidInputError(f"unknown capability {cap!r}; known: {', '.join(CAPABILITIES)}")
    return caps


@dataclass(frozen=True)
class ModelStats:
    """What the usage log has observed of one model (the selector's ``performance`` and
    ``latency`` strategies read it)."""

    attempts: int = 0
    success_rate: float | None = None  # of attempts
    p50_latency_ms: float | None = None


def usage_totals(
    *,
    attempts: int,
    failed_attempts: int,
    requests: int,
    successes: int,
    tokens_in: int,
    tokens_out: int,
    real_attempts: int,
    real_priced: int,
    real_cost: float | None,
    simulated_attempts: int,
    simulated_requests: int,
    simulated_cost: float | None,
    unpriced_attempts: int,
) -> dict[str, Any]:
    """The one shape of every usage total (session stats, ``totals()``, the dashboard).

    A *request* is one ``ask``; its *attempts* are every try (retries, fallbacks), one usage
    row each. ``requests``, ``tokens``, ``cost``, ``failures`` and ``success_rate`` are the
    seed's keys: ``failures`` and ``success_rate`` are of requests. ``cost`` is real spend
    in USD on priced attempts: 0.0 with no real attempt, None when no real attempt was
    priced (unknown, never $0). Simulated traffic is counted apart in ``simulated_*``.
    ``unpriced_attempts`` counts every attempt, real or simulated, whose model has no price.
    """
    failures = max(0, requests - successes)
    return {
        "requests": requests,
        "failures": failures,
        "success_rate": (requests - failures) / requests if requests else None,
        "attempts": attempts,
        "failed_attempts": failed_attempts,
        "tokens": tokens_in + tokens_out,
        "tokens_in": tokens_in,
        "tokens_out": tokens_out,
        "cost": (real_cost or 0.0) if real_priced or not real_attempts else None,
        "unpriced_attempts": unpriced_attempts,
        "simulated_requests": simulated_requests,
        "simulated_attempts": simulated_attempts,
        "simulated_cost": simulated_cost or 0.0,
    }


@dataclass(frozen=True)
class Attempt:
    """One try within a request, and what recovery did next."""

    model_id: str
    error_kind: str | None  # None on success; an ErrorKind value, CIRCUIT_OPEN, MISSING_KEY, BUDGET
    status: int | None = None
    vendor_request_id: str | None = None  # the provider's id for this exchange
    latency_ms: float = 0.0
    action: str = "done"  # done | retry | truncate | fallback | fail
    detail: str = ""  # what recovery decided, and why
    error: str = ""  # the provider's own message (redacted), for the failed ones


@dataclass(frozen=True)
class Answer:
    """What ``kit.ask`` returns: the text, who answered, what it cost and every attempt."""

    text: str
    model_id: str
    vendor: str
    provider: str
    tokens_in: int
    tokens_out: int
    token_source: str
    cost_usd: float | None
    latency_ms: float
    call_id: str  # the usage row of the attempt that answered
    finish_reason: str | None = None
    request_id: str | None = None  # ims_kit's id of this request: every attempt's row has it
    vendor_request_id: str | None = None  # the provider's id for the answering exchange
    vendor_model: str | None = None  # the vendor's name of the model that answered
    attempts: tuple[Attempt, ...] = ()
    truncated: bool = False
    data: Any = None  # the parsed JSON, validated against json_schema, when one was given
    ttft_ms: float | None = None  # time to first token, for a streamed answer
    dropped_options: Mapping[str, str] = field(default_factory=dict)  # option -> why not sent

    def __str__(self) -> str:
        return self.text

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (what ``ims ask --json`` prints and a named batch stores)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Answer:
        """The Answer ``to_dict`` gave."""
        d = dict(data)
        d["attempts"] = tuple(Attempt(**a) for a in d.get("attempts", ()))
        return cls(**d)
