"""The hot path's writer: every acknowledged row committed, a failing write alone rolled back,
rows queued together inserted by one statement, no hand-off when uncontended, async code
awaiting its commit, checkpoints in the background that keep the WAL from growing."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from ims_kit.db import connect, immediate
from ims_kit.writer import CHECKPOINT_EVERY, Row, _deliver, writer_for

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


def _row(call_id: str) -> Row:
    insert = "INSERT INTO usage (call_id, ts, model_id, success)"
    return Row(insert, [call_id, "t", "m", 1], lambda row_id: (call_id, row_id))


def test_rows_queued_together_go_in_by_one_statement(db_path, kit):
    """A group of rows of one INSERT is one statement; each future gets its own row's id."""
    db = connect(db_path)
    statements: list[str] = []
    db.conn.set_trace_callback(statements.append)
    group = [(_row(f"c{i}"), Future(), None) for i in range(40)]
    writer_for(db_path)._commit(db, group)
    db.conn.set_trace_callback(None)
    assert len([s for s in statements if s.startswith("INSERT")]) == 1
    stored = dict(kit.db.execute("SELECT call_id, id FROM usage").fetchall())
    assert [f.result() for _, f, _ in group] == [(f"c{i}", stored[f"c{i}"]) for i in range(40)]
    db.close()


def test_a_refused_row_in_a_group_fails_alone(db_path, kit):
    """A duplicate call id among queued rows fails its own write; the others commit."""
    kit.db.execute("INSERT INTO usage (call_id, ts, model_id, success) VALUES ('dup', 't', 'm', 1)")
    writer = writer_for(db_path)
    with writer._lock:  # every write through the thread, queued into one group
        futures = [writer.submit(_row(c)) for c in ("a", "dup", "b")]
    assert futures[0].result(timeout=10)[0] == "a" and futures[2].result(timeout=10)[0] == "b"
    with pytest.raises(sqlite3.IntegrityError):
        futures[1].result(timeout=10)
    assert rows(kit) == 3


def test_the_wal_starts_over_under_a_steady_stream_of_commits(kit, db_path, monkeypatch):
    """Commits that never pause used to keep every checkpoint from catching up, so the WAL grew
    by every row without end; now it is started over after each checkpoint."""
    monkeypatch.setattr("ims_kit.writer.CHECKPOINT_EVERY", 32)
    wal = f"{db_path}-wal"
    for _ in range(10):
        kit.usage.log_execution(**ROW)
    per_commit = os.path.getsize(wal) / 10
    largest = 0
    for _ in range(1500):
        kit.usage.log_execution(**ROW)
        largest = max(largest, os.path.getsize(wal))
    assert largest < 0.25 * 1510 * per_commit  # unbounded, it reaches the whole of it


def test_a_write_whose_result_fails_leaves_no_caller_waiting(db_path, kit):
    """A row whose result cannot be made is still written; its caller gets the error, the
    others their results, and the writer thread goes on."""

    def broken(row_id):
        raise ValueError("no result")

    insert = "INSERT INTO usage (call_id, ts, model_id, success)"
    writer = writer_for(db_path)
    with writer._lock:  # every write through the thread, queued into one group
        futures = [writer.submit(Row(insert, ["x", "t", "m", 1], broken)), writer.submit(_row("y"))]
    with pytest.raises(ValueError, match="no result"):
        futures[0].result(timeout=10)
    assert futures[1].result(timeout=10)[0] == "y"
    assert writer.submit(_row("z")).result(timeout=10)[0] == "z"
    assert rows(kit) == 3


def test_async_rows_inside_your_transaction_give_an_awaitable_too(kit):
    """wait=False on a running loop returns an asyncio future on every path, also when the
    row goes into the caller's own open transaction."""

    async def main():
        with immediate(kit.db):
            record, future = kit.usage.log_execution(**ROW, wait=False)
        return record, await future

    record, event = asyncio.run(main())
    assert event.payload["call_id"] == record.call_id and rows(kit) == 1


def test_a_cancelled_awaiter_leaves_its_row_and_the_writer_alone(kit):
    """A task cancelled while it waits for its commit: the row is still written, and the
    writer goes on with the next ones."""

    async def main():
        task = asyncio.ensure_future(kit.ask_async("hi", provider="simulated", model="gpt-5-nano"))
        await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await asyncio.gather(*(kit.ask_async("hi", provider="simulated", model="gpt-5-nano")
                               for _ in range(5)))  # fmt: skip

    kit.registry.seed()
    asyncio.run(main())
    assert 5 <= rows(kit) <= 6  # the cancelled call's row, if it got as far as its answer


def test_one_wake_up_of_an_event_loop_per_group(monkeypatch):
    """The futures a group completes on one loop are settled by one call on that loop."""
    calls = []

    async def main():
        loop = asyncio.get_running_loop()
        monkeypatch.setattr(loop, "call_soon_threadsafe", lambda fn, *a: calls.append(fn(*a)))
        futures = [loop.create_future() for _ in range(5)]
        _deliver([(f, loop, i, None) for i, f in enumerate(futures)])
        return [f.result() for f in futures]

    assert asyncio.run(main()) == [0, 1, 2, 3, 4] and len(calls) == 1


def test_a_failing_group_fails_its_callers_and_the_writer_goes_on(db_path, kit, monkeypatch):
    """Whatever goes wrong inside a group, its callers hear it (none waits for ever), nothing
    is left half-written, and the next write works."""
    writer = writer_for(db_path)

    def broken(db, writes):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("ims_kit.writer._rows_at_once", broken)
    with writer._lock:
        future = writer.submit(_row("a"))
    with pytest.raises(RuntimeError, match="on fire"):
        future.result(timeout=10)
    monkeypatch.undo()
    assert writer.submit(_row("b")).result(timeout=10)[0] == "b" and rows(kit) == 1


def test_a_file_the_writer_cannot_open_fails_the_queued_writes(db_path, kit, monkeypatch):
    """The writer thread could not connect: the writes queued for it get the error."""
    writer = writer_for(db_path)
    writer.stop()

    def refuse(path):
        raise sqlite3.OperationalError("unable to open database file")

    monkeypatch.setattr("ims_kit.writer.connect", refuse)
    with pytest.raises(sqlite3.OperationalError, match="unable to open"):
        writer.submit(_row("a")).result(timeout=10)
    monkeypatch.undo()
    assert writer.submit(_row("b")).result(timeout=10)[0] == "b"
