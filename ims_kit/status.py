"""``ims status``: every figure worth watching, computed once (``snapshot``) and drawn as text.

``read`` takes the file as it finds it: it never creates a missing file (it says to run
``ims init``) and never migrates one, because migrating takes the write lock, which a busy
writer may hold for long; in WAL mode a reader sees the last commit and waits for no writer.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ims_kit.errors import StoreError

LAST_EVENTS = 10
LATENCY_ROWS = 10  # models shown in the text (the JSON has them all)
LOW_SUCCESS_RATE = 0.9  # today's success rate below this, over enough requests, is a problem
MIN_REQUESTS_FOR_RATE = 10

_ANSI = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33"}
_HEALTH_COLOUR = {"ok": "green", "degraded": "yellow", "down": "red"}
_STATE_COLOUR = {"open": "red", "half_open": "yellow"}


def read(path: str | Path | None = None, *, now: datetime | None = None) -> dict[str, Any]:
    """The snapshot of the database at ``path`` (default ``IMS_DB`` or the per-user file).

    A missing, foreign or unreadable file gives a snapshot whose health is ``down`` and
    whose one problem says what to do; it never raises for that.
    """
    from ims_kit.db import default_path
    from ims_kit.kit import Kit

    target = Path(path).expanduser() if path is not None else default_path()
    try:
        kit = Kit(target, create=False)
    except StoreError as exc:
        return _unusable(target, str(exc), now, exists=target.exists())
    try:
        return snapshot(kit, now=now)
    except sqlite3.Error as exc:
        return _unusable(target, f"cannot read {target}: {exc}", now)
    finally:
        kit.close()


def snapshot(kit: Any, *, now: datetime | None = None) -> dict[str, Any]:
    """Every figure of ``ims status`` for an open Kit, as a JSON-ready dict."""
    from ims_kit.db import file_info
    from ims_kit.migrations import migrations

    now = now or datetime.now(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    everything = kit.registry.count_by_vendor()
    active = kit.registry.count_by_vendor(active=True)
    blocked = kit.circuits.unavailable()  # refusing calls now (open periods not yet over)
    latency = sorted(
        kit.usage.latency_percentiles().to_dict("records"),
        key=lambda r: (-r["requests"], r["model"]),
    )
    snap: dict[str, Any] = {
        "generated_at": now.isoformat(timespec="seconds"),
        "health": {},
        "database": {
            **file_info(kit.db),
            "exists": True,
            "pending_migrations": [m.name for m in migrations.pending(kit.db)],
        },
        "registry": {
            "models": sum(everything.values()),
            "active": sum(active.values()),
            "by_vendor": {
                v: {"models": n, "active": active.get(v, 0)} for v, n in everything.items()
            },
        },
        "usage": {
            "today": _usage(kit, midnight),
            "all_time": _usage(kit, None),
            "latency_by_model": [
                {k: r[k] for k in ("model", "requests", "p50_latency_ms", "p95_latency_ms")}
                for r in latency
            ],
        },
        "circuits": [
            {
                "model_id": model_id,
                **{k: s[k] for k in _CIRCUIT_FIELDS},
                "blocking": model_id in blocked,
            }
            for model_id, s in kit.circuits.status().items()
            if s["state"] != "closed"
        ],
        "events": [
            {"ts": e.ts, "kind": e.kind, "subject": e.subject}
            for e in kit.events.recent(LAST_EVENTS)
        ],
        "providers": providers(),
    }
    snap["health"] = _health(snap)
    return snap


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


def _usage(kit: Any, since: datetime | None) -> dict[str, Any]:
    """Totals, with simulated cost kept apart from real cost."""
    totals = kit.usage.totals(since=since)
    return {
        "requests": totals["requests"],
        "tokens": totals["tokens"],
        "cost_usd": totals["cost"],
        "unpriced_requests": totals["unpriced_requests"],
        "simulated_requests": totals["simulated_requests"],
        "simulated_cost_usd": totals["simulated_cost"],
        "failures": totals["failures"],
        "success_rate": totals["success_rate"],
    }


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
) -> list[str]:
    """What needs attention; the rules of `ims status` and the dashboard's Overview.

    ``blocking`` maps each model refusing calls now to its breaker state.
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
    if (
        requests >= MIN_REQUESTS_FOR_RATE
        and success_rate is not None
        and (success_rate < LOW_SUCCESS_RATE)
    ):
        found.append(f"{scope} success rate is {success_rate:.0%} ({failures} failures)")
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
        "events": None,
        "providers": providers(),
    }


# -- text ---------------------------------------------------------------------------------------
def render(snap: dict[str, Any], color: bool = False) -> str:
    """The snapshot as plain text; ANSI colour only when ``color`` is true."""

    def paint(text: str, *styles: str) -> str:
        if not color or not styles:
            return text
        return "".join(f"\x1b[{_ANSI[s]}m" for s in styles) + text + "\x1b[0m"

    def head(title: str) -> str:
        return "\n" + paint(title, "bold")

    health = snap["health"]["status"]
    when = snap["generated_at"].replace("T", " ").replace("+00:00", " UTC")
    lines = [
        f"{paint('ims status', 'bold')}  {when}  health: "
        + paint(health.upper(), "bold", _HEALTH_COLOUR[health])
    ]
    lines += [paint(f"  ! {p}", _HEALTH_COLOUR[health]) for p in snap["health"]["problems"]]
    db = snap["database"]
    lines.append(head("DATABASE"))
    lines.append(f"  path     {db['path']}")
    if "size_bytes" in db:
        lines.append(
            f"  size     {_bytes(db['size_bytes'])}, journal {db['journal_mode']},"
            f" schema v{db['schema_version']}"
        )
    if snap["registry"] is not None:
        lines += _registry_lines(snap["registry"], head)
        lines += _usage_lines(snap["usage"], head)
        lines += _circuit_lines(snap["circuits"], head, paint)
        lines.append(head(f"EVENTS (last {LAST_EVENTS})"))
        lines += [
            f"  {e['ts'][:19].replace('T', ' ')}  {e['kind']:<24} {e['subject'] or ''}".rstrip()
            for e in snap["events"]
        ] or [paint("  none yet", "dim")]
    lines += _provider_lines(snap["providers"], head, paint)
    return "\n".join(lines)


def _registry_lines(reg: dict[str, Any], head) -> list[str]:
    vendors = ", ".join(f"{v} {c['active']}/{c['models']}" for v, c in reg["by_vendor"].items())
    out = [head("REGISTRY"), f"  {reg['models']} models, {reg['active']} active"]
    return [*out, f"  by vendor (active/registered): {vendors}"] if vendors else out


def _usage_lines(usage: dict[str, Any], head) -> list[str]:
    today, total = usage["today"], usage["all_time"]
    rows = [
        ("attempts", lambda u: f"{u['requests']:,}"),
        ("tokens", lambda u: f"{u['tokens']:,}"),
        ("cost", lambda u: _money(u["cost_usd"], u["unpriced_requests"])),
        ("failures", lambda u: f"{u['failures']:,}"),
        ("success rate", lambda u: _percent(u["success_rate"])),
    ]
    if total["simulated_requests"]:  # simulated cost is never mixed into real cost
        rows.insert(3, ("simulated cost", lambda u: _money(u["simulated_cost_usd"])))
        rows.insert(4, ("simulated", lambda u: f"{u['simulated_requests']:,} attempts"))
    cells = [(name, fmt(today), fmt(total)) for name, fmt in rows]
    w = 2 + max(len("all time"), *(max(len(a), len(b)) for _, a, b in cells))
    out = [
        head("USAGE (attempts: every try of every request)"),
        f"  {'':<14}{'today':>{w}}{'all time':>{w}}",
    ]
    out += [f"  {name:<14}{a:>{w}}{b:>{w}}" for name, a, b in cells]
    out.append(head("LATENCY (successful calls, all time)"))
    models = usage["latency_by_model"]
    if not models:
        return [*out, "  no calls yet"]
    width = max(len("model"), *(len(r["model"]) for r in models[:LATENCY_ROWS]))
    out.append(f"  {'model':<{width}}  {'requests':>9}  {'p50 ms':>8}  {'p95 ms':>8}")
    out += [
        f"  {r['model']:<{width}}  {r['requests']:>9,}  {_ms(r['p50_latency_ms']):>8}"
        f"  {_ms(r['p95_latency_ms']):>8}"
        for r in models[:LATENCY_ROWS]
    ]
    if len(models) > LATENCY_ROWS:
        out.append(f"  ... {len(models) - LATENCY_ROWS} more models (--json lists them)")
    return out


def _circuit_lines(circuits: list[dict[str, Any]], head, paint) -> list[str]:
    out = [head("CIRCUITS")]
    if not circuits:
        return [*out, "  all closed"]
    for c in circuits:
        if c["state"] == "open" and c["blocking"]:
            when = f"retries at {c['retry_at'][:19].replace('T', ' ')} UTC"
        elif c["probe_in_flight"]:
            when = "probe call in flight"
        else:
            when = "open period over: the next call is a probe"
        out.append(
            f"  {c['model_id']:<28} "
            + paint(f"{c['state']:<9}", _STATE_COLOUR.get(c["state"], "dim"))
            + f" {c['consecutive_failures']} failures, last {c['last_error_kind']}; {when}"
        )
    return out


def _provider_lines(prov: dict[str, Any], head, paint) -> list[str]:
    keys = ", ".join(
        f"{k['variable']} " + (paint("set", "green") if k["set"] else paint("not set", "dim"))
        for k in prov["keys"]
    )
    cli = prov["gemini_cli"]
    found = cli["path"] if cli["installed"] else paint("not installed", "dim")
    hint = "" if cli["installed"] else " (npm install -g @google/gemini-cli)"
    return [head("PROVIDERS"), f"  keys        {keys}", f"  gemini CLI  {found}{hint}"]


def _money(value: float | None, unpriced: int = 0) -> str:
    text = "unpriced" if value is None else f"${value:,.4f}" if value >= 0.01 else f"${value:.6f}"
    return f"{text} (+{unpriced} unpriced)" if unpriced and value is not None else text


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.1%}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _bytes(size: float) -> str:
    if size < 1024:
        return f"{size:,.0f} B"
    for unit in ("KB", "MB", "GB"):
        size /= 1024
        if size < 1024 or unit == "GB":
            break
    return f"{size:,.1f} {unit}"
