"""How the hot path's writes (a usage row with its event and budget settlement) reach the file:
one at a time per process, grouped when they come together, never on an event loop.

Threads that each committed their own rows waited for SQLite's write lock in turn (its busy
handler sleeps), and, holding it, for the GIL: at 50 threads a commit took 0.6 s at p99; on
an event loop every commit blocked every other call. So each file has, per process, one lock
and one writer thread:

- a caller that finds the lock free writes at once on its own connection (a sequential
  program pays no hand-off);
- otherwise it hands the write to the writer thread, which runs everything queued in one
  transaction, each write in its own savepoint (one that fails is rolled back alone);
- async code always hands over (``submit``) and awaits the Future, so the loop never waits
  for SQLite.

Either way a write is acknowledged only once committed, so a process killed afterwards has
lost nothing it acknowledged. WAL checkpoints, which stall the connection that runs them for
10-20 ms every few hundred commits, are taken off the callers: ims_kit's connections do not
checkpoint on commit, and a background thread runs a passive checkpoint (which never blocks a
writer) every ``CHECKPOINT_EVERY`` commits. Idle threads stop after ``IDLE_S``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlite_utils import Database

MAX_GROUP = 512  # writes in one transaction at most
CHECKPOINT_EVERY = 256  # commits between two passive checkpoints
IDLE_S = 5.0  # an idle thread stops (closing its connection); the next write restarts it
_STOP = object()
Write = Callable[["Database"], Any]


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
                conn = db.conn
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = write(db)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            finally:
                self._lock.release()
            self._committed()
            return result
        return self.submit(write).result()

    def submit(self, write: Write) -> Future:
        """Queue ``write(db)`` for the writer thread; its Future completes with what it
        returned once its group's transaction is committed (or with its exception)."""
        future: Future = Future()
        self._queue.put((write, future))
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
        from ims_kit.db import connect

        db = connect(self.path)
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
                    self._commit(db, group)
                self._committed()
        finally:
            db.close()

    def _commit(self, db: Database, group: list) -> None:
        conn = db.conn
        outcomes: list[tuple[Future, Any, BaseException | None]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for write, future in group:
                conn.execute("SAVEPOINT ims_write")
                try:
                    result = write(db)
                except BaseException as exc:  # handed to the caller waiting for it
                    conn.execute("ROLLBACK TO ims_write")
                    conn.execute("RELEASE ims_write")
                    outcomes.append((future, None, exc))
                else:
                    conn.execute("RELEASE ims_write")
                    outcomes.append((future, result, None))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:  # the transaction itself failed: nothing was written
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            for _, future in group:
                future.set_exception(exc)
            return
        for future, result, exc in outcomes:
            if exc is None:
                future.set_result(result)
            else:
                future.set_exception(exc)

    def _committed(self) -> None:
        self._commits += 1
        if self._commits % CHECKPOINT_EVERY == 0:
            self._start("_checkpointer", self._checkpoint_loop, "ims-checkpoint")
            self._checkpoint_due.set()

    def _checkpoint_loop(self) -> None:
        from ims_kit.db import connect

        db = connect(self.path)
        try:
            while self._checkpoint_due.wait(timeout=IDLE_S):
                self._checkpoint_due.clear()
                with contextlib.suppress(sqlite3.Error):  # busy: the next one catches up
                    db.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            with self._threads_lock:
                self._checkpointer = None
            db.close()


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
