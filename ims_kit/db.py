"""Where the SQLite file lives and how it is opened: WAL, a busy timeout, migrations applied.

Only this module knows the path; only ``migrations`` changes the schema.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ims_kit.errors import StoreError

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


def now_iso() -> str:
    """The current UTC time as ISO-8601, the format of every timestamp column."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def sqlite_utils():
    """The sqlite_utils module, imported without pandas and numpy.

    sqlite-utils imports pandas and numpy at import time when they are installed, only to
    map DataFrame column types, which ims_kit never inserts: that would cost every
    ``ims`` command and every call-making process about 80 MB and 0.3 s. They are hidden
    during that one import (not when the caller has already imported them), and load
    normally later when a frame or chart asks for them.
    """
    if "sqlite_utils" not in sys.modules:
        hidden = [name for name in ("pandas", "numpy") if name not in sys.modules]
        for name in hidden:
            sys.modules[name] = None  # type: ignore[assignment]  # makes `import name` fail
        try:
            import sqlite_utils as module  # noqa: F401
        finally:
            for name in hidden:
                del sys.modules[name]
    return sys.modules["sqlite_utils"]


def open_db(
    path: str | os.PathLike | None = None, *, migrate: bool = True, create: bool = True
) -> Database:
    """Open the database at ``path`` and bring its schema up to date.

    ``create=False`` is for readers (``ims status``, the dashboard, ``ims gemini``): a
    missing file, or one without ims_kit's tables, is a StoreError saying to run
    ``ims init``, and nothing is created. The write lock is taken only when a migration is
    pending, so opening an up-to-date file never waits for a busy writer.
    Returns a ``ThreadLocalDatabase``: each thread that uses it gets its own connection.
    Raises StoreError with the path when the file is not a usable SQLite database.
    """
    target = Path(path).expanduser() if path is not None else default_path()
    if not create and not target.exists():
        raise StoreError(f"no database at {target}: run `ims init`")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        db = _connect(target)
        if not create and not db.table("models").exists():
            db.close()
            raise StoreError(f"{target} has no ims_kit tables: run `ims init`")
        if migrate:
            from ims_kit.migrations import migrate as apply_migrations
            from ims_kit.migrations import migrations

            if migrations.pending(db):
                with immediate(db):  # re-checks under the lock: two openers race safely
                    apply_migrations(db)
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"cannot use {target} as an ims_kit database: {exc}") from exc
    except OSError as exc:
        raise StoreError(f"cannot open {target}: {exc.strerror or exc}") from exc
    return ThreadLocalDatabase(target, db)  # type: ignore[return-value]


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
    """Path, size on disk, journal mode and schema version, for `ims status` and health checks."""
    from ims_kit.migrations import schema_version

    path = Path(db.conn.execute("PRAGMA database_list").fetchone()[2])
    size = sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
    mode = db.conn.execute("PRAGMA journal_mode").fetchone()[0]
    return {
        "path": str(path),
        "size_bytes": size,
        "journal_mode": mode,
        "schema_version": schema_version(db),
    }
