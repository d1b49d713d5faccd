"""Shared fixtures: a temporary database for every test, a Kit on it, a seeded registry."""

from __future__ import annotations

import pytest
import stamina
import vendor_server as vs

import ims_kit

# Every variable of these families in the caller's shell (keys, base URLs, ims settings) is
# cleared for each test, so that a developer's own environment never changes a result.
CLEARED_PREFIXES = ("OPENAI_", "ANTHROPIC_", "GEMINI_", "GOOGLE_", "IMS_", "OTEL_")


@pytest.fixture(autouse=True)
def _isolated_db(tmp_path, monkeypatch):
    """No test ever touches the user's database: IMS_DB points at a fresh temporary file."""
    import os

    for var in list(os.environ):
        if var.startswith(CLEARED_PREFIXES):
            monkeypatch.delenv(var)
    path = tmp_path / "ims.db"
    monkeypatch.setenv("IMS_DB", str(path))
    return path


@pytest.fixture(autouse=True)
def _no_real_backoff():
    """stamina's testing mode: every wait is zero; our own attempt limits still apply."""
    with stamina.set_testing(True, attempts=100, cap=True):
        yield


class FakeClock:
    """An injectable clock (epoch seconds) that only moves when a test says so."""

    def __init__(self, start: float = 1_800_000_000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock():
    """A fake clock starting at a fixed instant."""
    return FakeClock()


@pytest.fixture
def vendor():
    """A loopback server speaking the OpenAI, Anthropic and Gemini wire formats."""
    with vs.running_server() as server:
        yield server


@pytest.fixture
def db_path(_isolated_db):
    """The temporary database file of this test."""
    return _isolated_db


@pytest.fixture
def kit(db_path):
    """A Kit on an empty (migrated, unseeded) temporary database."""
    with ims_kit.open(db_path) as k:
        yield k


@pytest.fixture
def seeded(kit):
    """A Kit whose registry holds the curated seed catalogue."""
    kit.registry.seed()
    return kit


def _log_row(kit, model="gpt-5-nano", vendor="OpenAI", *, latency=100.0, ok=True, price=1.0, **kw):
    """One usage row with round numbers: 1,000 tokens in and out at ``price`` $/M each."""
    return kit.usage.log_execution(
        model_id=model,
        vendor_id=vendor,
        tokens_in=1_000,
        tokens_out=1_000 if ok else 0,
        cost_per_mil_in=price,
        cost_per_mil_out=price,
        latency_ms=latency,
        success=ok,
        error_kind=None if ok else kw.pop("kind", "OVERLOAD"),
        provider=kw.pop("provider", "simulated"),
        **kw,
    )


@pytest.fixture
def log_row():
    """``log_row(kit, model, vendor, latency=, ok=, price=, ...)`` logs one round usage row."""
    return _log_row


@pytest.fixture
def logged(kit):
    """Three models, real and simulated calls, one unpriced model, a few failures: 263 rows,
    each its own request (one attempt each)."""
    import math
    import random

    rng = random.Random(5)
    for _ in range(200):
        _log_row(kit, latency=rng.lognormvariate(math.log(400), 0.3))
    for _ in range(50):
        _log_row(
            kit, "claude-haiku-4-5", "Anthropic", latency=900.0, provider="anthropic", price=2.0
        )
    for _ in range(10):
        _log_row(kit, "llama-3.1-8b", "Meta", latency=50.0, price=None)
    for kind in ("OVERLOAD", "OVERLOAD", "TIMEOUT"):
        _log_row(kit, ok=False, kind=kind)
    return kit


@pytest.fixture
def busy(seeded):
    """A seeded database with 21 usage rows (one failed, one simulated), an open and a
    half-open circuit."""
    import time

    from ims_kit.circuits import Permit
    from ims_kit.errors import ErrorKind

    for i, (model, ok, provider) in enumerate(
        [("gpt-4o", True, "openai")] * 19
        + [("gpt-4o", False, "openai"), ("claude-sonnet-4", True, "simulated")]
    ):
        seeded.usage.log_execution(
            model_id=model,
            vendor_id="x",
            tokens_in=100,
            tokens_out=10,
            cost_per_mil_in=1.0,
            cost_per_mil_out=2.0,
            latency_ms=10.0 * (i + 1),
            success=ok,
            provider=provider,
            error_kind=None if ok else ErrorKind.TIMEOUT,
        )
    for model in ("gemini-2.5-pro", "gemini-2.5-flash"):
        for _ in range(seeded.circuits.failure_threshold):
            seeded.circuits.record_failure(Permit(model), ErrorKind.OVERLOAD)
    seeded.circuits.clock = lambda: time.time() + seeded.circuits.open_seconds + 1
    seeded.circuits.allow("gemini-2.5-flash")  # its open period is over: the probe starts
    seeded.circuits.clock = time.time
    return seeded


@pytest.fixture
def run():
    """``run("init", "--json")``: the ims command through click's runner, exceptions raised."""
    from click.testing import CliRunner

    from ims_kit.cli import cli

    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(cli, list(args), catch_exceptions=False)

    return invoke
