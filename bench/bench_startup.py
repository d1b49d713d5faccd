"""How long `import ims_kit` takes in a fresh process (what a notebook user feels first)."""

from __future__ import annotations

import subprocess
import sys
import time

from common import Section, Timing, installed


def _time_import(module: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", f"import {module}"], check=True)
    return (time.perf_counter() - started) * 1000


def cold_import(quick: bool) -> Section:
    n = 7 if quick else 15
    sec = Section(
        "Cold import",
        "make bench  (python bench/run.py startup)",
        f"Wall time of `python -c 'import X'` in a fresh process, {n} runs each, interleaved; "
        "`python -c pass` is measured too and subtracted, so the figure is the import alone.",
        ["module", "process ms (median / p95 / p99)", "import alone ms (median)", "ratio to httpx"],
    )
    modules = ["pass", "httpx", "ims_kit"] + (["litellm"] if installed("litellm") else [])
    timings = {m: Timing() for m in modules}
    for m in modules:  # warm the OS file cache once
        _time_import(m if m != "pass" else "sys")
    for _ in range(n):
        for m in modules:
            code = "pass" if m == "pass" else m
            started = time.perf_counter()
            subprocess.run(
                [sys.executable, "-c", code if m == "pass" else f"import {code}"], check=True
            )
            timings[m].add(started)
    base = timings["pass"].median
    httpx_alone = timings["httpx"].median - base
    for m in modules[1:]:
        alone = timings[m].median - base
        sec.rows.append(
            [f"`import {m}`", timings[m].cells(), f"{alone:.1f}", f"{alone / httpx_alone:.2f}x"]
        )
    if "litellm" not in modules:
        sec.rows.append(["`import litellm`", "not installed", "-", "-"])
    ims_ratio = (timings["ims_kit"].median - base) / httpx_alone
    sec.verdict = (
        f"`import ims_kit` costs {ims_ratio:.2f}x `import httpx` (target: within "
        f"1.3x): {'met' if ims_ratio <= 1.3 else 'NOT met'}."
    )
    sec.notes.append(f"An empty interpreter start (`python -c pass`) took {base:.1f} ms.")
    return sec
