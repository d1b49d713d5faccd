"""How figures read in text: money, prices, shares, durations, sizes, plain tables.

One formatter per kind of figure, shared by ``ims`` commands, ``ims status``, the dashboard
and ``ModelList``'s table, so that the same number never reads two ways. Unknown money reads
"unpriced", never "$0".
"""

from __future__ import annotations

from typing import Any


def money(value: float | None, *, unpriced: int = 0) -> str:
    """Dollars with enough digits for per-call amounts; None is "unpriced".

    ``unpriced``: how many calls the amount leaves out because their model has no price.
    """
    if value is None:
        return "unpriced"
    if value >= 100:
        text = f"${value:,.2f}"
    elif value >= 0.01 or value == 0:
        text = f"${value:,.4f}"
    else:
        text = f"${value:.6f}"
    return f"{text} (+{unpriced:,} unpriced)" if unpriced else text


def price(per_mil: float | None) -> str:
    """A price per million tokens as the registry stores it; None is "unpriced"."""
    return "unpriced" if per_mil is None else f"{per_mil:g}"


def percent(rate: float | None) -> str:
    """A share as a percentage with one decimal; None is "-"."""
    return "-" if rate is None else f"{rate:.1%}"


def duration_ms(value: float | None) -> str:
    """Milliseconds below a second, seconds above; None is "-"."""
    if value is None:
        return "-"
    return f"{value:,.0f} ms" if value < 1000 else f"{value / 1000:,.2f} s"


def time_left(seconds: float) -> str:
    """How long until something happens (a budget's reset): "2 d 3 h", "4 h 10 min"."""
    minutes = max(0, int(seconds // 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    return f"{days} d {hours} h" if days else f"{hours} h {minutes} min"


def size(n_bytes: float) -> str:
    """A file size in B, KB, MB or GB."""
    if n_bytes < 1024:
        return f"{n_bytes:,.0f} B"
    for unit in ("KB", "MB", "GB"):
        n_bytes /= 1024
        if n_bytes < 1024 or unit == "GB":
            break
    return f"{n_bytes:,.1f} {unit}"


def when(ts: str | None) -> str:
    """A stored timestamp as 'YYYY-MM-DD HH:MM:SS' (UTC); None is ""."""
    return "" if not ts else ts[:19].replace("T", " ")


def text_table(rows: list[dict[str, Any]]) -> str:
    """Rows of equal keys as an aligned plain-text table (numbers right-aligned)."""
    columns = list(rows[0])
    cells = [[str(r[c]) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    numeric = [all(_numberish(row[i]) for row in cells) for i in range(len(columns))]

    def line(values: list[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)]
        return "  ".join(parts).rstrip()

    return "\n".join([line(columns), line(["-" * w for w in widths]), *map(line, cells)])


def _numberish(text: str) -> bool:
    return text.replace(",", "").replace(".", "").replace("$", "").replace("%", "").isdigit()
