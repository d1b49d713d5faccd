"""How the hot path's writes (a usage row with its event and budget settlement) reach the file:
one at a time per process, grouped when they come together, never on an event loop.

Threads that each committed their own rows waited for SQLite's write lock in turn (its busy
handler sleeps), and, holding it, for the GIL: at 50 threads a commit took 0.6 s at p99; on
an event loop every commit blocked every other call. So each file has, per process, one lock
and one writer thread:

- a caller that finds the lock free writes at once on its own connection (a sequential
  program pays no hand-off);
- otherwise it hands the write to the writer thread, which writes everything queued
  together: rows of one INSERT (``Row``, a usage row) by one multi-row statement, anything
  else in one transaction, each write in its own savepoint (one that fails is rolled back
  alone);
- async code always hands over (``submit``) and awaits the Future, so the loop never waits
  for SQLite.

Either way a write is acknowledged only once committed, so a process killed afterwards has
lost nothing it acknowledged. WAL checkpoints, which stall the connection that runs them for
10-20 ms every few hundred commits, are taken off the callers: ims_kit's connections do not
checkpoint on commit, and a background thread runs a passive checkpoint (which never blocks a
writer) every ``CHECKPOINT_EVERY`` commits. Under a steady stream of commits that checkpoint
never catches up (frames arrive while it copies), and SQLite starts the WAL over only once
every frame is back in the file: the WAL grew by every commit, 42 KB a call, without end. So
the checkpointer then copies what is left holding this process's lock (the last few commits'
frames: about a millisecond, once per ``CHECKPOINT_EVERY`` commits), and the next commit
starts the WAL from its beginning. Idle threads stop after ``IDLE_S``.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ims_kit.db import connect, immediate

if TYPE_CHECKING:
    import asyncio

    from sqlite_utils import Database

MAX_GROUP = 512  # writes in one transaction at most
CHECKPOINT_EVERY = 1024  # commits between two checkpoints (the WAL stays under ~45 MB)
IDLE_S = 5.0  # an idle thread stops (closing its connection); the next write restarts it
_STOP = object()


@dataclass(frozen=True)
class Row:
    """A write that adds one row by one statement, ``{insert} VALUES (?, ...)``: atomic on
    its own, so alone it needs no transaction, and rows of the same ``insert`` queued together
    go in as one multi-row INSERT (one call into SQLite for the group, not one per row: each
    call gives up the GIL, and taking it back from busy threads took up to 5 ms)."""

    insert: str  # "INSERT INTO t (a, b)"
    values: list
    done: Callable[[int], Any]  # the new row's id -> what the write returns


Write = Row | Callable[["Database"], Any]  # a row, or statements run in a transaction


class Writer:
    """The writes of one file in this process: a lock, a writer thread, a checkpointer."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()  # held while this process writes the hot path
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._threads_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._checkpointer: threading.Thread | None = None
        self._checkpoint_due = threading.Event()
        self._commits = 0

    def call(self, write: Write, db: Database) -> Any:
        """Run ``write`` and return what it returned once committed: on ``db`` (the caller's
        connection) when no other write is under way here, else through the writer thread."""
        if self._lock.acquire(blocking=False):
            try:
                result = _run_one(write, db)
            finally:
                self._lock.release()
            self._committed()
            return result
        return self.submit(write).result()

    def submit(self, write: Write, *, loop: asyncio.AbstractEventLoop | None = None) -> Any:
        """Queue ``write`` for the writer thread; its Future completes with what it returned
        once its group is committed (or with its exception).

        With ``loop`` (the running event loop) it is an asyncio Future of that loop, to await:
        a group's futures of one loop are completed in one wake-up of it, not one each."""
        future = Future() if loop is None else loop.create_future()
        self._queue.put((write, future, loop))
        self._start("_thread", self._run, "ims-writer")
        return future

    def stop(self) -> None:
        """Finish what is queued, then stop the writer thread (the checkpointer, a daemon,
        is left to the process's end: closing the last connection checkpoints anyway)."""
        thread = self._thread
        if thread is not None and thread.is_alive():
            self._queue.put(_STOP)
            thread.join(timeout=10)

    # -- the threads ----------------------------------------------------------------------
    def _start(self, attribute: str, target: Callable[[], None], name: str) -> None:
        with self._threads_lock:
            thread = getattr(self, attribute)
            if thread is None or not thread.is_alive():
                thread = threading.Thread(target=target, name=f"{name}:{self.path.name}")
                thread.daemon = True
                setattr(self, attribute, thread)
                thread.start()

    def _run(self) -> None:
        try:
            db = connect(self.path)
        except Exception as exc:  # the file cannot be opened: every queued write hears why
            with self._threads_lock:
                self._thread = None
                while True:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        return
                    if item is not _STOP:
                        _deliver([(item[1], item[2], None, exc)])
        try:
            while True:
                try:
                    first = self._queue.get(timeout=IDLE_S)
                except queue.Empty:
                    with self._threads_lock:  # stop, unless something arrived meanwhile
                        if self._queue.empty():
                            self._thread = None
                            return
                    continue
                if first is _STOP:
                    return
                group = [first]
                while len(group) < MAX_GROUP:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is _STOP:
                        self._queue.put(_STOP)  # stop after this group
                        break
                    group.append(item)
                with self._lock:
                    try:
                        self._commit(db, group)
                    except BaseException as exc:  # never leave a caller waiting for ever
                        if db.conn.in_transaction:
                            db.conn.execute("ROLLBACK")
                        _deliver([(f, loop, None, exc) for _, f, loop in group])
                        if not isinstance(exc, Exception):
                            raise
                self._committed()
        finally:
            db.close()

    def _commit(self, db: Database, group: list) -> None:
        try:
            ids = _rows_at_once(db, [write for write, _, _ in group])
        except sqlite3.Error:  # one of them is refused: each alone, to fail only that one
            ids = None
        if ids is not None:
            _deliver([(f, loop, *_done(w, i)) for (w, f, loop), i in zip(group, ids, strict=True)])
            return
        conn = db.conn
        outcomes: list[tuple[Any, Any, Any, BaseException | None]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for write, future, loop in group:
                conn.execute("SAVEPOINT ims_write")
                try:
                    result = write_now(write, db)
                except BaseException as exc:  # handed to the caller waiting for it
                    conn.execute("ROLLBACK TO ims_write")
                    conn.execute("RELEASE ims_write")
                    outcomes.append((future, loop, None, exc))
                else:
                    conn.execute("RELEASE ims_write")
                    outcomes.append((future, loop, result, None))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:  # the transaction itself failed: nothing was written
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            outcomes = [(future, loop, None, exc) for _, future, loop in group]
        _deliver(outcomes)

    def _committed(self) -> None:
        self._commits += 1
        if self._commits % CHECKPOINT_EVERY == 0:
            self._start("_checkpointer", self._checkpoint_loop, "ims-checkpoint")
            self._checkpoint_due.set()

    def _checkpoint_loop(self) -> None:
        db = connect(self.path)
        try:
            while self._checkpoint_due.wait(timeout=IDLE_S):
                self._checkpoint_due.clear()
                with contextlib.suppress(sqlite3.Error):  # busy: the next one catches up
                    db.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    with self._lock:  # the frames committed meanwhile, and no new ones
                        db.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            with self._threads_lock:
                self._checkpointer = None
            db.close()


def _deliver(outcomes: list[tuple[Any, Any, Any, BaseException | None]]) -> None:
    """Complete the futures: a thread's at once, an event loop's in one call on that loop."""
    loops: dict[Any, list] = {}
    for future, loop, result, exc in outcomes:
        if loop is None:
            _settle([(future, result, exc)])
        else:
            loops.setdefault(loop, []).append((future, result, exc))
    for loop, settled in loops.items():
        with contextlib.suppress(RuntimeError):  # its loop is closed: nobody awaits them
            loop.call_soon_threadsafe(_settle, settled)


def _settle(settled: list[tuple[Any, Any, BaseException | None]]) -> None:
    for future, result, exc in settled:
        if isinstance(future, Future):  # a thread's: claimed first, so no cancel slips in
            if not future.set_running_or_notify_cancel():
                continue
        elif future.done():  # an event loop's (settled on its own thread): cancelled
            continue
        if exc is None:
            future.set_result(result)
        else:
            future.set_exception(exc)


def write_now(write: Write, db: Database) -> Any:
    """Run ``write`` on ``db`` at once, in the transaction open there (if any)."""
    if isinstance(write, Row):
        sql = _values(write.insert, len(write.values), 1)
        return write.done(db.conn.execute(sql, write.values).lastrowid)
    return write(db)


def _run_one(write: Write, db: Database) -> Any:
    """One write, committed: a row on its own, anything else in a transaction."""
    if isinstance(write, Row):
        return write_now(write, db)
    with immediate(db):
        return write(db)


def _done(row: Row, row_id: int) -> tuple[Any, BaseException | None]:
    try:
        return row.done(row_id), None
    except Exception as exc:  # the row is written; its caller hears what went wrong after
        return None, exc


def _rows_at_once(db: Database, writes: list) -> list[int] | None:
    """Rows of one INSERT, in as few multi-row statements as SQLite's limit on parameters
    allows (one for a whole group of usage rows): their ids, or None when the writes are not
    all such rows. Several statements run in one transaction."""
    first = writes[0]
    if not isinstance(first, Row):
        return None
    width = len(first.values)
    if not all(isinstance(w, Row) and w.insert == first.insert and len(w.values) == width
               for w in writes):  # fmt: skip
        return None
    conn = db.conn
    per_statement = max(1, conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // width)
    chunks = [writes[i : i + per_statement] for i in range(0, len(writes), per_statement)]
    ids: list[int] = []
    with immediate(db) if len(chunks) > 1 else contextlib.nullcontext():
        for chunk in chunks:
            flat = [v for w in chunk for v in w.values]
            last = conn.execute(_values(first.insert, width, len(chunk)), flat).lastrowid
            ids += range(last - len(chunk) + 1, last + 1)  # consecutive: one statement
    return ids


@functools.lru_cache(maxsize=64)
def _values(insert: str, width: int, rows: int) -> str:
    one = f"({', '.join('?' * width)})"
    return f"{insert} VALUES {', '.join([one] * rows)}"


_WRITERS: dict[tuple[int, str], Writer] = {}
_WRITERS_LOCK = threading.Lock()


def writer_for(path: str | os.PathLike) -> Writer:
    """The writer of ``path`` in this process (a forked child gets its own)."""
    key = (os.getpid(), str(Path(path).resolve()))
    with _WRITERS_LOCK:
        writer = _WRITERS.get(key)
        if writer is None:
            writer = _WRITERS[key] = Writer(Path(key[1]))
        return writer


@atexit.register
def _stop_all() -> None:
    for writer in list(_WRITERS.values()):
        writer.stop()
