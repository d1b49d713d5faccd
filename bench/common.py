"""What every benchmark shares: timing statistics, the loopback server, the machine, Markdown.

Figures are reported as ratios against a baseline measured in the same run: these machines
are noisy, so absolute times are context and the ratios are the result.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the loopback vendor server lives with the tests

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # never download LiteLLM's map
os.environ.setdefault("LITELLM_TELEMETRY", "False")


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


@dataclass
class Timing:
    """Latencies in milliseconds, with the usual summaries."""

    samples_ms: list[float] = field(default_factory=list)

    def add(self, started: float) -> None:
        self.samples_ms.append((time.perf_counter() - started) * 1000)

    @property
    def median(self) -> float:
        return statistics.median(self.samples_ms)

    def p(self, q: float) -> float:
        return percentile(self.samples_ms, q)

    def cells(self) -> str:
        """'median / p95 / p99' in ms."""
        return f"{self.median:.3f} / {self.p(95):.3f} / {self.p(99):.3f}"


def installed(package: str) -> str | None:
    """The installed version of a distribution, or None."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def machine() -> list[tuple[str, str]]:
    """CPU, cores, Python and the versions that matter for these figures."""
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    rows = [
        ("CPU", cpu or "unknown"),
        ("cores", str(os.cpu_count())),
        ("Python", sys.version.split()[0]),
        ("OS", platform.platform()),
    ]
    for pkg in (
        "ims_kit",
        "httpx",
        "sqlite-utils",
        "stamina",
        "quicktok-v1",
        "litellm",
        "streamlit",
        "pandas",
    ):
        rows.append((pkg, installed(pkg) or "not installed"))
    import sqlite3

    rows.append(("SQLite", sqlite3.sqlite_version))
    return rows


@dataclass
class Section:
    """One benchmark's part of docs/BENCHMARKS.md."""

    title: str
    command: str
    what: str
    header: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    verdict: str = ""

    def markdown(self) -> str:
        out = [f"## {self.title}", "", self.what, "", f"Command: `{self.command}`", ""]
        out.append("| " + " | ".join(self.header) + " |")
        out.append("|" + "---|" * len(self.header))
        out += ["| " + " | ".join(str(c) for c in row) + " |" for row in self.rows]
        if self.verdict:
            out += ["", f"**Result:** {self.verdict}"]
        out += [""] + [f"- {n}" for n in self.notes]
        return "\n".join(out).rstrip() + "\n"


def bench_kit(tmp: Path, name: str = "bench.db"):
    """A fresh Kit on a temporary file."""
    import ims_kit

    return ims_kit.open(tmp / name)
