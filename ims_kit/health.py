"""Health: every figure worth watching, computed once (``snapshot``), and the rules that say
what needs attention (``problems``). ``ims status`` and the dashboard's Overview read it;
``status_text`` draws it. Everything comes through a Kit's public API, never SQL.

``read`` takes the file as it finds it: it never creates a missing file (it says to run
``ims init``) and never migrates one, because migrating takes the write lock, which a busy
writer may hold for long; in WAL mode a reader sees the last commit and waits for no writer.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ims_kit.errors import StoreError, database_errors
from ims_kit.kit import Kit, default_database

LAST_EVENTS = 10
LOW_SUCCESS_RATE = 0.9  # today's success rate below this, over enough requests, is a problem
MIN_REQUESTS_FOR_RATE = 10
EXIT_CODES = {"ok": 0, "degraded": 1, "down": 2}  # `ims status --once/--json` exits with these


def read(path: str | os.PathLike | None = None, *, now: datetime | None = None) -> dict[str, Any]:
    """The snapshot of the database at ``path`` (default ``IMS_DB`` or the per-user file).

    A missing, foreign or unreadable file gives a snapshot whose health is ``down`` and
    whose one problem says what to do; it never raises for that.
    """
    target = Path(path).expanduser() if path is not None else default_database()
    try:
        kit = Kit(target, create=False)
    except StoreError as exc:
        return _unusable(target, str(exc), now, exists=target.exists())
    try:
        return snapshot(kit, now=now)
    except database_errors() as exc:
        return _unusable(target, f"cannot read {target}: {exc}", now)
    finally:
        kit.close()


def exit_code(snap: dict[str, Any]) -> int:
    """0 when healthy, 1 when degraded, 2 when down: what a script or a monitor checks."""
    return EXIT_CODES[snap["health"]["status"]]


def snapshot(kit: Any, *, now: datetime | None = None) -> dict[str, Any]:
    """Every figure of ``ims status`` for an open Kit, as a JSON-ready dict."""
    now = now or datetime.now(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    everything = kit.registry.count_by_vendor()
    active = kit.registry.count_by_vendor(active=True)
    latency = sorted(
        kit.usage.latency_percentiles().to_dict("records"),
        key=lambda r: (-r["successes"], r["model"]),
    )
    snap: dict[str, Any] = {
        "generated_at": now.isoformat(timespec="seconds"),
        "health": {},
        "database": {**kit.database_info(), "exists": True},
        "registry": {
            "models": sum(everything.values()),
            "active": sum(active.values()),
            "by_vendor": {
                v: {"models": n, "active": active.get(v, 0)} for v, n in everything.items()
            },
        },
        "usage": {
            "today": kit.usage.totals(since=midnight),
            "all_time": kit.usage.totals(),
            "latency_by_model": [
                {k: r[k] for k in ("model", "successes", "p50_latency_ms", "p95_latency_ms")}
                for r in latency
            ],
        },
        "circuits": _circuits(kit),
        "budgets": [b.to_dict() for b in kit.budgets.status()],
        "events": [
            {"ts": e.ts, "kind": e.kind, "subject": e.subject}
            for e in kit.events.recent(LAST_EVENTS)
        ],
        "providers": providers(),
    }
    snap["health"] = _health(snap)
    return snap


def _circuits(kit: Kit) -> list[dict[str, Any]]:
    """Every breaker that is not closed, named as status tables name it (a simulated call's
    breaker says so, an endpoint's is its base URL), and whether it refuses calls now."""
    refusing = kit.circuits.refusing()
    return [
        {
            "model_id": key,
            "scope": s["scope"],
            "simulated": s["simulated"],
            **{k: s[k] for k in _CIRCUIT_FIELDS},
            "blocking": key in refusing,
        }
        for key, s in kit.circuits.status().items()
        if s["state"] != "closed"
    ]


_CIRCUIT_FIELDS = (
    "state",
    "consecutive_failures",
    "last_error_kind",
    "retry_at",
    "probe_in_flight",
)


def providers() -> dict[str, Any]:
    """Which provider keys are set (variable names only, never values) and the gemini CLI."""
    from ims_kit.providers import PROVIDER_KEYS, find_key_variable
    from ims_kit.providers.gemini_cli import GeminiCliNotFound, find_executable

    keys = []
    for provider, variable in PROVIDER_KEYS.items():
        found = find_key_variable(provider)
        keys.append({"provider": provider, "variable": found or variable, "set": found is not None})
    try:
        path = find_executable()
    except GeminiCliNotFound:
        path = None
    return {"keys": keys, "gemini_cli": {"installed": path is not None, "path": path}}


def problems(
    *,
    models: int,
    active: int,
    blocking: dict[str, str],
    requests: int,
    success_rate: float | None,
    failures: int,
    pending: list[str] | tuple[str, ...] = (),
    scope: str = "today's",
    budgets: list[dict[str, Any]] | tuple = (),
) -> list[str]:
    """What needs attention; the rules of `ims status` and the dashboard's Overview.

    ``blocking`` maps each model refusing calls now to its breaker state; ``budgets`` are
    ``kit.budgets.status()`` dicts (one spent to its limit refuses every call it covers).
    """
    found = []
    if pending:
        found.append(f"the schema is {len(pending)} step(s) behind: run `ims init`")
    if not models:
        found.append("the registry is empty: run `ims init`")
    elif not active:
        found.append("no model is active: `ims models --all` lists them")
    for state, said in (("open", "circuit open"), ("half_open", "circuit half-open, probing")):
        ids = [m for m, s in blocking.items() if s == state]
        if ids:
            found.append(f"{said}: {', '.join(ids)}")
    for b in budgets:
        if b["left_usd"] <= 0:
            resets = (
                f", resets {b['resets_at'][:16].replace('T', ' ')} UTC" if b["resets_at"] else ""
            )
            found.append(
                f"budget #{b['id']} ({b['scope']}) is spent: its calls are refused{resets}"
            )
    if (
        requests >= MIN_REQUESTS_FOR_RATE
        and success_rate is not None
        and (success_rate < LOW_SUCCESS_RATE)
    ):
        found.append(
            f"{scope} request success rate is {success_rate:.0%} ({failures} failed requests)"
        )
    return found


def _health(snap: dict[str, Any]) -> dict[str, Any]:
    today = snap["usage"]["today"]
    found = problems(
        models=snap["registry"]["models"],
        active=snap["registry"]["active"],
        blocking={c["model_id"]: c["state"] for c in snap["circuits"] if c["blocking"]},
        requests=today["requests"],
        success_rate=today["success_rate"],
        failures=today["failures"],
        pending=snap["database"]["pending_migrations"],
        budgets=snap["budgets"],
    )
    return {"status": "degraded" if found else "ok", "problems": found}


def _unusable(path: Path, problem: str, now: datetime | None, *, exists: bool = True) -> dict:
    return {
        "generated_at": (now or datetime.now(UTC)).isoformat(timespec="seconds"),
        "health": {"status": "down", "problems": [problem]},
        "database": {"path": str(path), "exists": exists},
        "registry": None,
        "usage": None,
        "circuits": None,
        "budgets": None,
        "events": None,
        "providers": providers(),
    }
