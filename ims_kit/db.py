"""Where the SQLite file lives and how it is opened: WAL, a busy timeout, migrations applied.

Only this module knows the path; only ``migrations`` changes the schema. A file that is not
ims_kit's database (not SQLite, or another program's SQLite file) is refused, never written.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from pathlib import Path
from typing import TYPE_CHECKING

from ims_kit import migrations
from ims_kit.errors import StoreError
from ims_kit.sqlite_lib import sqlite_utils

if TYPE_CHECKING:
    from sqlite_utils import Database

BUSY_TIMEOUT_S = 30.0


def default_path() -> Path:
    """``IMS_DB`` if set, else the per-user data directory (``~/.local/share/ims_kit/ims.db``)."""
    env = os.environ.get("IMS_DB")
    if env:
        return Path(env).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "ims_kit" / "ims.db"


def open_db(
    path: str | os.PathLike | None = None, *, migrate: bool = True, create: bool = True
) -> Database:
    """Open the database at ``path`` and bring its schema up to date.

    ``create=False`` is for commands that need an existing database (every ``ims`` command
    but ``init``, the dashboard, ``ims status``): a missing file, or one without ims_kit's
    tables, is a StoreError saying to run ``ims init``, and nothing is created. The write
    lock is taken only when a migration is pending, so opening an up-to-date file never
    waits for a busy writer. Returns a ``ThreadLocalDatabase``: each thread that uses it
    gets its own connection. Raises StoreError with the path and what to do when the file
    cannot be ims_kit's database (not SQLite, another program's tables, a folder in the way).
    """
    target = Path(path).expanduser() if path is not None else default_path()
    if target.is_dir():
        raise StoreError(f"{target} is a folder: point IMS_DB at a file such as {target}/ims.db")
    if not create and not target.exists():
        raise StoreError(f"no database at {target}: run `ims init` to create it")
    if not create and target.stat().st_size == 0:  # opening would write SQLite's header
        raise StoreError(f"{target} has no ims_kit tables yet: run `ims init`")
    try:
        if create:
            _make_parent(target)
        db = _connect(target)
        tables = set(db.table_names())
        if tables and not tables & {"_sqlite_migrations", "models"}:
            db.close()
            raise StoreError(
                f"{target} is another program's SQLite database (tables: "
                f"{', '.join(sorted(tables)[:5])}): ims_kit never writes into it;"
                " set IMS_DB to a new file"
            )
        if not create and "models" not in tables:
            db.close()
            raise StoreError(f"{target} has no ims_kit tables yet: run `ims init`")
        if migrate and migrations.migrations.pending(db):
            with immediate(db):  # re-checks under the lock: two openers race safely
                migrations.migrate(db)
    except sqlite3.DatabaseError as exc:
        if "not a database" in str(exc):
            raise StoreError(
                f"{target} is not an SQLite database: move it aside (ims_kit never"
                " overwrites a file that is not its database) or set IMS_DB to another path"
            ) from None
        raise StoreError(f"cannot use {target} as an ims_kit database: {exc}") from exc
    except OSError as exc:
        raise StoreError(f"cannot open {target}: {exc.strerror or exc}") from exc
    return ThreadLocalDatabase(target, db)  # type: ignore[return-value]


def _make_parent(target: Path) -> None:
    """Create the folders above ``target``; a file where a folder should be is named."""
    for folder in reversed(target.parents):
        if folder.exists() and not folder.is_dir():
            raise StoreError(f"cannot create {target}: {folder} is a file, not a folder")
    target.parent.mkdir(parents=True, exist_ok=True)


def connect(target: Path) -> Database:
    """A new connection to an existing ims_kit file, set up like every other (WAL, timeout)."""
    return _connect(target)


def _connect(target: Path) -> Database:
    # isolation_level=None: no implicit transactions; every write outside an explicit
    # transaction commits at once, and transactions that read then write say BEGIN IMMEDIATE.
    conn = sqlite3.connect(
        target, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
    )
    db = sqlite_utils().Database(conn, execute_plugins=False)
    db.execute("PRAGMA journal_mode=WAL")
    # NORMAL is durable against a killed process in WAL mode (only power loss can lose the
    # last commits), and it keeps a committed usage row to well under a millisecond.
    db.execute("PRAGMA synchronous=NORMAL")
    # No checkpoint on commit: it would stall the committing call for 10-20 ms every few
    # hundred commits; ims_kit.writer runs passive checkpoints in the background instead, and
    # the last connection to close checkpoints what is left.
    db.execute("PRAGMA wal_autocheckpoint=0")
    db.execute("PRAGMA foreign_keys=ON")
    return db


class ThreadLocalDatabase:
    """The calling thread's sqlite-utils ``Database``, all on one file.

    A sqlite3 connection has one transaction at a time: shared by threads (a Streamlit
    app's sessions, a thread pool), one thread's statements would land inside another's
    transaction. So each thread gets its own connection; attributes are forwarded to it.
    """

    def __init__(self, path: Path, first: Database):
        self.path = path
        self._local = threading.local()
        self._local.db = first
        self._opened = [first]
        self._lock = threading.Lock()

    @property
    def current(self) -> Database:
        """This thread's connection, opened on first use."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = _connect(self.path)
            with self._lock:
                self._opened.append(db)
        return db

    def __getattr__(self, name: str):
        return getattr(self.current, name)

    def __getitem__(self, table: str):
        return self.current[table]

    def close(self) -> None:
        """Close every thread's connection."""
        with self._lock:
            opened, self._opened = self._opened, []
        for db in opened:
            db.close()


_MOVES: dict[str, int] = {}  # per file: how often this process changed its cached tables
FRESH_S = 0.005  # the state version read from the file is trusted this long


class Generation:
    """What the registry, the breakers and the set of budgets are at: stores cache those
    tables keyed on it, since they change rarely and calls read them many times.

    It is this process's own count of changes (``moved()``, bumped by every store that writes
    them: seen at once by every Kit on the file here) with the file's ``state_version``
    (moved by triggers, whoever writes), read again once it is ``FRESH_S`` old: a change by
    another process or program is seen within 5 ms. Between ``pin()`` and ``unpin()`` it stays
    fixed, for a step's several checks (the pin belongs to the running thread or task).
    """

    def __init__(self, db: Database):
        self._db = db
        self._key = str(getattr(db, "path", id(db)))
        self._file: tuple[float, int] | None = None  # (when read, value)
        self._pinned: ContextVar[tuple | None] = ContextVar(f"pinned-{id(self)}", default=None)

    def current(self) -> tuple[int, int]:
        value = self._pinned.get()
        return self._now() if value is None else value

    def pin(self) -> Token | None:
        """Fix the version for this thread or task until ``unpin(token)``; None (nothing to
        undo) when an outer step already pinned it. A pair of calls, not a context manager:
        recovery pins around every step of every attempt."""
        if self._pinned.get() is not None:
            return None
        return self._pinned.set(self._now())

    def unpin(self, token: Token | None) -> None:
        if token is not None:
            self._pinned.reset(token)

    def moved(self) -> None:
        """A store of this process changed a cached table: every cache here reloads."""
        _MOVES[self._key] = _MOVES.get(self._key, 0) + 1
        self._file = None
        if self._pinned.get() is not None:
            self._pinned.set(self._now())

    def _now(self) -> tuple[int, int]:
        clock = time.monotonic()
        known = self._file
        if known is None or clock - known[0] > FRESH_S:
            value = self._db.conn.execute("SELECT n FROM state_version").fetchone()[0]
            known = self._file = (clock, value)
        return known[1], _MOVES.get(self._key, 0)


@contextmanager
def immediate(db: Database) -> Iterator[Database]:
    """A write transaction that takes the write lock up front (``BEGIN IMMEDIATE``).

    A deferred ``BEGIN`` that reads and then writes can fail at once with "database is
    locked" when another process writes in between, whatever the busy timeout; this cannot.
    Nested use becomes a savepoint.
    """
    conn = db.conn
    if conn.in_transaction:
        with db.atomic():
            yield db
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def file_info(db: Database) -> dict:
    """Path, size on disk, journal mode, schema version and pending steps, for health checks."""
    path = Path(db.conn.execute("PRAGMA database_list").fetchone()[2])
    size = sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
    mode = db.conn.execute("PRAGMA journal_mode").fetchone()[0]
    return {
        "path": str(path),
        "size_bytes": size,
        "journal_mode": mode,
        "schema_version": migrations.schema_version(db),
        "pending_migrations": [m.name for m in migrations.migrations.pending(db)],
    }
