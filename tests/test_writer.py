"""The hot path's writer: every acknowledged row committed, a failing write alone rolled back,
no hand-off when uncontended, async code awaiting its commit, checkpoints in the background."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest

from ims_kit.db import immediate
from ims_kit.writer import CHECKPOINT_EVERY, writer_for

ROW = dict(model_id="m", vendor_id="V", tokens_in=10, tokens_out=5, cost_per_mil_in=1.0,
           cost_per_mil_out=2.0, latency_ms=12.0, success=True)  # fmt: skip


def rows(kit) -> int:
    return kit.db.execute("SELECT count(*) FROM usage").fetchone()[0]


def test_threads_writing_at_once_lose_nothing(kit):
    """64 threads log 1,600 rows: every one is committed with its event, none twice."""
    with ThreadPoolExecutor(64) as pool:
        records = list(pool.map(lambda _: kit.usage.log_execution(**ROW), range(1600)))
    assert rows(kit) == 1600 == len({r.call_id for r in records})
    assert kit.events.count("model.executed") == 1600


def test_a_sequential_caller_writes_itself_without_a_thread(kit, db_path):
    """Uncontended, the row is written on the caller's connection: no writer thread starts."""
    writer = writer_for(db_path)
    writer.stop()
    kit.usage.log_execution(**ROW)
    assert rows(kit) == 1 and (writer._thread is None or not writer._thread.is_alive())


def test_a_failing_write_is_rolled_back_alone(kit, db_path):
    """In one group, the write that raises is undone; the others commit."""
    writer = writer_for(db_path)
    holder = writer._lock
    holder.acquire()  # force every write through the thread, queued into one group
    try:

        def good(n):
            return lambda db: db.conn.execute(
                "INSERT INTO events (ts, kind, payload) VALUES ('t', ?, '{}')", [f"ok{n}"]
            )

        def bad(db):
            db.conn.execute("INSERT INTO events (ts, kind, payload) VALUES ('t', 'bad', '{}')")
            raise RuntimeError("boom")

        futures = [writer.submit(good(1)), writer.submit(bad), writer.submit(good(2))]
    finally:
        holder.release()
    futures[0].result(timeout=10)
    with pytest.raises(RuntimeError, match="boom"):
        futures[1].result(timeout=10)
    futures[2].result(timeout=10)
    kinds = {k for (k,) in kit.db.execute("SELECT kind FROM events").fetchall()}
    assert {"ok1", "ok2"} <= kinds and "bad" not in kinds


def test_async_code_awaits_its_commit(kit):
    """wait=False hands the row over at once; awaiting the future means it is committed."""

    async def main():
        record, future = kit.usage.log_execution(**ROW, wait=False)
        await asyncio.wrap_future(future)
        return record

    record = asyncio.run(main())
    assert kit.db.execute("SELECT call_id FROM usage").fetchone()[0] == record.call_id


def test_ask_async_rows_are_committed_and_subscribers_told(seeded):
    """Concurrent ask_async: a row per call, and model.executed reached the subscriber."""
    seen = []
    seeded.events.subscribe(seen.append, "model.executed")

    async def main():
        await asyncio.gather(*(seeded.ask_async("hi", provider="simulated") for _ in range(40)))

    asyncio.run(main())
    assert rows(seeded) == 40 and len(seen) == 40


def test_inside_the_callers_transaction_the_row_goes_with_it(kit):
    """log_execution inside your own BEGIN IMMEDIATE writes in it (no deadlock): a rollback
    takes the row away with the rest."""
    with pytest.raises(KeyError), immediate(kit.db):
        kit.usage.log_execution(**ROW)
        raise KeyError("undo")
    assert rows(kit) == 0


def test_checkpoints_run_in_the_background(kit, db_path, monkeypatch):
    """After CHECKPOINT_EVERY commits the checkpointer thread has run: the WAL's frames are
    back in the database file."""
    monkeypatch.setattr("ims_kit.writer.IDLE_S", 0.05)  # so that it stops soon after
    for _ in range(CHECKPOINT_EVERY):
        kit.usage.log_execution(**ROW)
    writer = writer_for(db_path)
    assert writer._checkpointer is not None
    writer._checkpointer.join(timeout=10)  # it stops once idle
    busy, frames, done = kit.db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    assert busy == 0 and done == frames
