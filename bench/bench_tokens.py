"""Token counting and truncation on huge texts: what the suite checks for correctness only."""

from __future__ import annotations

import time

from common import Section

MIXED = "The quick brown fox, 42 times; def f(x): return x**2  # ünïcödé ✓\n"
TEXTS = {
    "mixed prose and code, 4 MB": (MIXED * 70_000)[:4_000_000],
    "CJK, 1.4 M characters": "汉字" * 700_000,
    "one letter repeated, 4 MB": "x" * 4_000_000,
}


def huge_texts(quick: bool) -> Section:
    from ims_kit.tokens import count, truncate

    sec = Section(
        "Counting and truncating huge texts",
        "make bench  (python bench/run.py tokens)",
        "Wall time of `tokens.count(text, 'gpt-4o')` and of `tokens.truncate(text, 1000, "
        "'gpt-4o')` on texts of about 4 MB (the first call loads o200k, not timed). The "
        "baseline is `len(text.encode())`, a pass over the bytes.",
        ["text", "tokens", "count s", "truncate s", "baseline s", "count / baseline"],
        verdict="",
    )
    count("warm up", "gpt-4o")
    worst = 0.0
    for label, text in TEXTS.items():
        t0 = time.perf_counter()
        text.encode()
        baseline = time.perf_counter() - t0
        t0 = time.perf_counter()
        n = count(text, "gpt-4o").tokens
        counted = time.perf_counter() - t0
        t0 = time.perf_counter()
        truncate(text, 1000, "gpt-4o")
        cut = time.perf_counter() - t0
        worst = max(worst, counted, cut)
        ratio = counted / baseline if baseline else float("inf")
        sec.rows.append(
            [label, f"{n:,}", f"{counted:.3f}", f"{cut:.3f}", f"{baseline:.4f}", f"{ratio:,.0f}x"]
        )
    met = "met" if worst < 2.0 else "NOT met"
    sec.verdict = f"the slowest count or truncation took {worst:.2f} s (target: under 2 s): {met}."
    return sec
