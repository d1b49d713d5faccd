"""Run the benchmarks and rewrite docs/BENCHMARKS.md: `python bench/run.py [groups] [--quick]`.

Groups: startup, calls, store, tokens, notebooks, dashboard, scale (default: all), each in a
fresh interpreter. Every loop is bounded in count; all traffic goes to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))  # the loopback vendor server

import bench_calls
import bench_dashboard
import bench_scale
import bench_startup
import bench_store
import bench_tokens
from common import ROOT, Section, machine


def notebooks(quick: bool) -> Section:
    sec = Section(
        "Notebook suite",
        "make bench  (python bench/run.py notebooks)",
        "Wall time of `pytest --nbmake notebooks` (every notebook top to bottom, offline).",
        ["notebooks", "seconds"],
    )
    paths = sorted((ROOT / "notebooks").glob("*.ipynb"))
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "--nbmake", *map(str, paths)],
        check=True,
        cwd=ROOT,
        capture_output=True,
    )
    sec.rows.append([len(paths), f"{time.perf_counter() - started:.1f}"])
    return sec


GROUPS = {
    "startup": [bench_startup.cold_import],
    "calls": [
        bench_calls.overhead,
        bench_calls.fallback,
        bench_calls.dead_model,
        bench_calls.memory,
        bench_calls.dead_collector,
    ],
    "store": [bench_store.recommend, bench_store.usage_writes],
    "tokens": [bench_tokens.huge_texts],
    "notebooks": [notebooks],
    "dashboard": [bench_dashboard.first_render],
    "scale": bench_scale.GROUP,
}


def run_group(group: str, quick: bool) -> list[Section]:
    """One group's sections, each after the dirty pages of the page cache are written out."""
    sections = []
    for fn in GROUPS[group]:
        print(f"bench: {group}.{fn.__name__} ...", file=sys.stderr, flush=True)
        os.sync()  # an earlier section's writes (the dashboard's database) are not flushed here
        t0 = time.perf_counter()
        sections.append(fn(quick))
        sections[-1].notes.append(f"This section took {time.perf_counter() - t0:.0f} s.")
        print(sections[-1].markdown(), file=sys.stderr)
    return sections


def isolated(group: str, quick: bool) -> list[Section]:
    """``run_group`` in a fresh interpreter, so that no group inherits another's heap, threads
    or imports: measured after the dashboard's group in one process, the bare aiohttp client
    itself took 2.4-2.7x the ideal time at 200 calls in flight; alone, 1.25-1.47x."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "sections.json"
        command = [sys.executable, __file__, "--one-group", group, "--sections-to", str(out)]
        subprocess.run(command + (["--quick"] if quick else []), cwd=ROOT, check=True)
        return [Section(**data) for data in json.loads(out.read_text())]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("groups", nargs="*", choices=[[], *GROUPS], default=[])
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "BENCHMARKS.md")
    parser.add_argument("--one-group", choices=list(GROUPS), help=argparse.SUPPRESS)
    parser.add_argument("--sections-to", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_group:  # the child of ``isolated``
        sections = run_group(args.one_group, args.quick)
        args.sections_to.write_text(json.dumps([dataclasses.asdict(s) for s in sections]))
        return
    chosen = args.groups or list(GROUPS)
    started = time.perf_counter()
    sections = [s for group in chosen for s in isolated(group, args.quick)]
    elapsed = time.perf_counter() - started
    head = [
        "# Benchmarks",
        "",
        f"Written by `make bench` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC in {elapsed:.0f} s"
        + (" (quick mode)" if args.quick else "")
        + ". Rerun it to refresh every figure.",
        "These machines are noisy: absolute times are context, the ratios against a baseline "
        "measured in the same run are the result. Latencies are median / p95 / p99 in ms. "
        "Each group runs in a fresh interpreter.",
        "",
        "| machine | |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in machine()],
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(head) + "\n" + "\n".join(s.markdown() for s in sections))
    print(f"bench: wrote {args.out} in {elapsed:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
