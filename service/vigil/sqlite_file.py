"""Vigil's own SQLite files: opened by one process, stamped as Vigil's, errors that name the file.

The Kafka outbox (:class:`~vigil.events.outbox.Outbox`) and the store of applied command ids
(:class:`~vigil.commands.applied.AppliedCommands`) are both such a file: WAL mode with exclusive
locking (the lock goes with the process), ``PRAGMA application_id`` checked on open, and every
``sqlite3`` error translated into a :class:`SqliteFileError` that names the file.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal, Self

#: ``PRAGMA application_id`` of the SQLite files Vigil creates ("VIGL").
APPLICATION_ID = 0x5649474C
_SCHEMA_VERSION = 1


class SqliteFileError(RuntimeError):
    """A Vigil SQLite file (the outbox, the applied-command ids) could not be opened or used.

    Attributes:
        path: The SQLite file.
        reason: What went wrong.
    """

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class SqliteFileCorruptError(SqliteFileError):
    """The file is not a SQLite database, is damaged, or belongs to another application.

    The file is left as it is: move it aside (what it holds may be recoverable with
    ``sqlite3 FILE .recover``) and start with a new one.
    """


class SqliteFileLockedError(SqliteFileError):
    """Another process has the file open; only one process may own such a file."""


class SqliteFileClosedError(SqliteFileError):
    """The file was used after ``close()``."""


def connect(path: Path, synchronous: Literal["normal", "full"]) -> sqlite3.Connection:
    """Open (creating it and its directory if needed) a SQLite file owned by this process.

    WAL mode with exclusive locking: no ``-shm`` file, no other process can open the file while
    this connection lives, and the lock is released by the OS if the process dies.

    Raises:
        SqliteFileLockedError: Another process has the file open.
        SqliteFileCorruptError: The file is not a usable SQLite database.
        SqliteFileError: Anything else (permissions, full disk...).
    """
    if synchronous not in ("normal", "full"):
        raise ValueError(f"synchronous must be 'normal' or 'full', not {synchronous!r}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SqliteFileError(path, f"cannot create the directory: {e}") from e
    with translate_errors(path, "open"):
        # isolation_level=None: we issue BEGIN/COMMIT ourselves.
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=0)
    try:
        with translate_errors(path, "open"):
            # Must precede the switch to WAL, so that SQLite keeps the WAL index in the heap.
            conn.execute("PRAGMA locking_mode=EXCLUSIVE")
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise SqliteFileError(path, f"cannot switch to WAL mode (journal_mode={mode})")
            conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
            # Truncate the WAL back to this size after each checkpoint instead of letting it
            # keep its high-water mark.
            conn.execute("PRAGMA journal_size_limit=67108864")
            conn.execute("PRAGMA foreign_keys=OFF")
    except BaseException:
        conn.close()
        raise
    return conn


def check_application(conn: sqlite3.Connection, path: Path) -> None:
    """Stamp a new file as ours, or check that an existing one is ours and of a known version.

    Call inside a write transaction, before creating tables.
    """
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    tables = {
        r[0]
        for r in conn.execute("SELECT name FROM sqlite_schema WHERE type='table'")
        if not r[0].startswith("sqlite_")
    }
    if app_id == 0 and not tables:
        conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
        return
    if app_id != APPLICATION_ID:
        raise SqliteFileCorruptError(
            path, f"not a Vigil file (application_id={app_id:#x}, tables={sorted(tables)})"
        )
    if version != _SCHEMA_VERSION:
        raise SqliteFileError(path, f"schema version {version}, this build knows {_SCHEMA_VERSION}")


@contextmanager
def translate_errors(path: Path, action: str) -> Iterator[None]:
    """Turn ``sqlite3`` errors into ``SqliteFileError`` subclasses that name the file."""
    try:
        yield
    except sqlite3.Error as e:
        code = getattr(e, "sqlite_errorname", "")
        reason = f"{action} failed: {e} ({code})" if code else f"{action} failed: {e}"
        if code.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
            raise SqliteFileCorruptError(path, reason) from e
        if code.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
            raise SqliteFileLockedError(
                path, f"{reason}; is another Vigil process using it?"
            ) from e
        raise SqliteFileError(path, reason) from e


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class SqliteFile:
    """A Vigil SQLite file with one connection behind a lock; closed idempotently.

    Subclasses call :meth:`_open` in ``__init__`` and use the connection from
    :meth:`_require_open` with ``self._lock`` held.
    """

    path: Path
    _what = "the file"

    def _open(self, path: Path, synchronous: Literal["normal", "full"]) -> sqlite3.Connection:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = connect(self.path, synchronous)
        return self._conn

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called."""
        return self._conn is None

    def close(self) -> None:
        """Close the file (idempotent); what it stores stays for the next open."""
        with self._lock:
            if self._conn is not None:
                conn, self._conn = self._conn, None
                with translate_errors(self.path, "close"):
                    conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _require_open(self) -> sqlite3.Connection:
        if self._conn is None:
            raise SqliteFileClosedError(self.path, f"{self._what} is closed")
        return self._conn
