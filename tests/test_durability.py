"""Real processes: a killed writer loses nothing it acknowledged; concurrent writers never
see "database is locked"."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

pytestmark = pytest.mark.slow

CALLER = textwrap.dedent("""
    import sys, ims_kit
    kit = ims_kit.open(sys.argv[1])
    kit.registry.seed()
    while True:
        answer = kit.ask("What is 2+2?", provider="simulated", strategy="cost")
        print(answer.call_id, flush=True)   # acknowledged: ask has returned
""")

WRITER = textwrap.dedent("""
    import sys, ims_kit
    from ims_kit.errors import ErrorKind
    kit = ims_kit.open(sys.argv[1])
    n, me = int(sys.argv[2]), sys.argv[3]
    for i in range(n):
        kit.usage.log_execution(model_id=f"m-{me}", vendor_id="V", tokens_in=i, tokens_out=1,
                                cost_per_mil_in=1.0, cost_per_mil_out=1.0, latency_ms=1.0,
                                success=True, call_id=f"{me}-{i}")
        permit = kit.circuits.allow("shared-model")
        if permit is not None:
            if i % 2:
                kit.circuits.record_failure(permit, ErrorKind.OVERLOAD)
            else:
                kit.circuits.record_success(permit)
    print("done", flush=True)
""")


def test_sigkill_mid_run_loses_no_acknowledged_call(tmp_path):
    """Every call_id the child printed is in the table; the file passes integrity_check."""
    path = tmp_path / "killed.db"
    child = subprocess.Popen(
        [sys.executable, "-c", CALLER, str(path)], stdout=subprocess.PIPE, text=True
    )
    acknowledged = []
    deadline = time.monotonic() + 60
    while len(acknowledged) < 40 and time.monotonic() < deadline:
        line = child.stdout.readline()
        if not line:
            break
        acknowledged.append(line.strip())
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=10)
    assert len(acknowledged) == 40, "the child did not get going"
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = {r[0] for r in conn.execute("SELECT call_id FROM usage")}
        total, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT call_id) FROM usage"
        ).fetchone()
    assert set(acknowledged) <= stored
    assert total == distinct


def test_four_writers_and_a_long_reader_never_lock(tmp_path):
    """Four processes write usage and breaker state while a reader holds a transaction."""
    import ims_kit

    path = tmp_path / "busy.db"
    ims_kit.open(path).close()
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM usage").fetchone()  # holds a read snapshot
    n = 150
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), str(n), f"w{i}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    reader.execute("COMMIT")
    reader.close()
    for (out, err), p in zip(outputs, procs):
        assert p.returncode == 0, err
        assert "locked" not in err and out.strip() == "done"
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM usage").fetchone()[0] == 4 * n
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        state = conn.execute("SELECT state FROM circuits WHERE model_id = 'shared-model'")
        assert state.fetchone()[0] in ("closed", "open", "half_open")


PROBER = textwrap.dedent("""
    import sys, ims_kit
    from ims_kit.circuits import CircuitBreaker
    kit = ims_kit.open(sys.argv[1])
    now = float(sys.argv[2])
    breaker = CircuitBreaker(kit.db, kit.events, clock=lambda: now)
    print("probe" if breaker.allow("m") else "refused", flush=True)
""")


def test_exactly_one_probe_across_processes(tmp_path):
    """Ten processes asking a half-open-ready breaker at once: one probe in total."""
    import ims_kit
    from ims_kit.circuits import CircuitBreaker
    from ims_kit.errors import ErrorKind

    path = tmp_path / "probe.db"
    t0 = 1_800_000_000.0
    with ims_kit.open(path) as kit:
        breaker = CircuitBreaker(kit.db, kit.events, clock=lambda: t0)
        for _ in range(3):
            breaker.record_failure(breaker.allow("m"), ErrorKind.OVERLOAD)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", PROBER, str(path), str(t0 + 61)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(10)
    ]
    answers = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert sorted(answers) == ["probe"] + ["refused"] * 9
