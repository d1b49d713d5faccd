"""``ims status`` as text: the ``health`` snapshot drawn in sections, coloured on a terminal."""

from __future__ import annotations

from typing import Any

from ims_kit.formatting import money, percent, size, when

LATENCY_ROWS = 10  # models shown in the text (the JSON has them all)
_ANSI = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33"}
_HEALTH_COLOUR = {"ok": "green", "degraded": "yellow", "down": "red"}
_STATE_COLOUR = {"open": "red", "half_open": "yellow"}


def render(snap: dict[str, Any], color: bool = False) -> str:
    """The snapshot as plain text; ANSI colour only when ``color`` is true."""

    def paint(text: str, *styles: str) -> str:
        if not color or not styles:
            return text
        return "".join(f"\x1b[{_ANSI[s]}m" for s in styles) + text + "\x1b[0m"

    def head(title: str) -> str:
        return "\n" + paint(title, "bold")

    health = snap["health"]["status"]
    stamp = snap["generated_at"].replace("T", " ").replace("+00:00", " UTC")
    lines = [
        f"{paint('ims status', 'bold')}  {stamp}  health: "
        + paint(health.upper(), "bold", _HEALTH_COLOUR[health])
    ]
    lines += [paint(f"  ! {p}", _HEALTH_COLOUR[health]) for p in snap["health"]["problems"]]
    db = snap["database"]
    lines.append(head("DATABASE"))
    lines.append(f"  path     {db['path']}")
    if "size_bytes" in db:
        lines.append(
            f"  size     {size(db['size_bytes'])}, journal {db['journal_mode']},"
            f" schema v{db['schema_version']}"
        )
    if snap["registry"] is not None:
        lines += _registry_lines(snap["registry"], head)
        lines += _usage_lines(snap["usage"], head)
        lines += _circuit_lines(snap["circuits"], head, paint)
        lines += _budget_lines(snap["budgets"], head, paint)
        lines.append(head(f"EVENTS (last {len(snap['events'])})"))
        lines += [
            f"  {when(e['ts'])}  {e['kind']:<24} {e['subject'] or ''}".rstrip()
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
        ("requests", lambda u: f"{u['requests']:,}"),
        ("  failed", lambda u: f"{u['failures']:,}"),
        ("  success rate", lambda u: percent(u["success_rate"])),
        ("attempts", lambda u: f"{u['attempts']:,}"),
        ("  failed", lambda u: f"{u['failed_attempts']:,}"),
        ("tokens", lambda u: f"{u['tokens']:,}"),
        ("cost (real)", lambda u: money(u["cost"])),
        ("unpriced", lambda u: f"{u['unpriced_attempts']:,} attempts"),
    ]
    if total["simulated_attempts"]:  # simulated cost is never mixed into real cost
        rows.append(("simulated", lambda u: f"{u['simulated_requests']:,} requests"))
        rows.append(("  cost", lambda u: money(u["simulated_cost"])))
    cells = [(name, fmt(today), fmt(total)) for name, fmt in rows]
    w = 2 + max(len("all time"), *(max(len(a), len(b)) for _, a, b in cells))
    out = [
        head("USAGE (a request is one ask; its attempts are every try of it)"),
        f"  {'':<16}{'today':>{w}}{'all time':>{w}}",
    ]
    out += [f"  {name:<16}{a:>{w}}{b:>{w}}" for name, a, b in cells]
    out.append(head("LATENCY (successful attempts, all time)"))
    models = usage["latency_by_model"]
    if not models:
        return [*out, "  no calls yet"]
    width = max(len("model"), *(len(r["model"]) for r in models[:LATENCY_ROWS]))
    out.append(f"  {'model':<{width}}  {'successes':>9}  {'p50 ms':>8}  {'p95 ms':>8}")
    out += [
        f"  {r['model']:<{width}}  {r['successes']:>9,}  {_ms(r['p50_latency_ms']):>8}"
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
            until = f"retries at {when(c['retry_at'])} UTC"
        elif c["probe_in_flight"]:
            until = "probe call in flight"
        else:
            until = "open period over: the next call is a probe"
        out.append(
            f"  {c['model_id']:<28} "
            + paint(f"{c['state']:<9}", _STATE_COLOUR.get(c["state"], "dim"))
            + f" {c['consecutive_failures']} failures, last {c['last_error_kind']}; {until}"
        )
    return out


def _budget_lines(budgets: list[dict[str, Any]], head, paint) -> list[str]:
    out = [head("BUDGETS")]
    if not budgets:
        return [*out, paint("  none (`ims budget set 5 --period day`)", "dim")]
    for b in budgets:
        left = money(b["left_usd"])
        resets = f"resets {when(b['resets_at'])} UTC" if b["resets_at"] else "never resets"
        out.append(
            f"  #{b['id']:<3} {b['scope']:<24} {b['period']:<6} {money(b['spent_usd'])} spent,"
            f" {money(b['reserved_usd'])} reserved of {money(b['limit_usd'])}: "
            + paint(f"{left} left", "red" if b["left_usd"] <= 0 else "green")
            + f"; {resets}"
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


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"
