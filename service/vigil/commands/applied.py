"""A persistent set of the cloud-to-device command ids already applied (at-most-once).

The usual pattern, safe against a crash between the two steps (the command is then skipped, not
applied twice)::

    applied = AppliedCommands(Path("/var/lib/vigil/applied.db"))
    if applied.claim(command.id):  # marks it and says whether it was new
        apply(command)

``seen`` then ``mark`` also works when only one thread handles commands; ``claim`` does both
atomically.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Literal

from vigil.sqlite_file import SqliteFile, check_application, transaction, translate_errors

_SCHEMA = """
CREATE TABLE IF NOT EXISTS applied_commands (
    n          INTEGER PRIMARY KEY AUTOINCREMENT,  -- insertion order, for retention
    command_id TEXT    NOT NULL UNIQUE,
    applied_at REAL    NOT NULL
)
"""


class AppliedCommands(SqliteFile):
    """Command ids marked as applied, the newest ``max_entries`` of them kept across restarts.

    Its own SQLite file (WAL, exclusive locking: one owning process, like ``Outbox``); one
    instance is thread-safe. Durability is that of ``Outbox`` with the same ``synchronous``:
    ``"full"`` (the default here, since marks are rare) survives power loss, ``"normal"`` only a
    crash of the process.

    Args:
        path: The SQLite file; it and its directory are created if needed.
        max_entries: How many ids to remember; the oldest marks are forgotten beyond that, so a
            command replayed after that many newer ones would be applied again.
        synchronous: ``"normal"`` or ``"full"``.

    Raises:
        SqliteFileCorruptError: The file exists but is not a usable Vigil file.
        SqliteFileLockedError: Another process has it open.
        SqliteFileError: It could not be opened for another reason.
    """

    _what = "the command-id store"

    def __init__(
        self,
        path: Path,
        *,
        max_entries: int = 100_000,
        synchronous: Literal["normal", "full"] = "full",
    ) -> None:
        if max_entries <= 0:
            raise ValueError(f"max_entries must be positive, not {max_entries}")
        self.max_entries = max_entries
        self._open(path, synchronous)
        try:
            with translate_errors(self.path, "open"), transaction(self._conn):
                check_application(self._conn, self.path)
                self._conn.execute(_SCHEMA)
                count = self._conn.execute("SELECT count(*) FROM applied_commands").fetchone()[0]
                # max_entries may have been lowered since the last run.
                count -= self._prune(self._conn, count)
        except BaseException:
            self._conn.close()
            self._conn = None
            raise
        self._count: int = count

    def seen(self, command_id: str) -> bool:
        """Whether ``command_id`` was marked (and not yet forgotten by retention)."""
        with self._lock:
            conn = self._require_open()
            with translate_errors(self.path, "seen"):
                row = conn.execute(
                    "SELECT 1 FROM applied_commands WHERE command_id = ?", (command_id,)
                ).fetchone()
            return row is not None

    def mark(self, command_id: str) -> None:
        """Remember ``command_id`` (durably when this returns); marking twice is harmless."""
        self.claim(command_id)

    def claim(self, command_id: str) -> bool:
        """Mark ``command_id`` and say whether it was new, atomically.

        Returns:
            True if the caller should apply the command, False if it was already marked.
        """
        if not isinstance(command_id, str):
            raise TypeError(f"command_id must be str, not {type(command_id).__name__}")
        with self._lock:
            conn = self._require_open()
            with translate_errors(self.path, "mark"), transaction(conn):
                cursor = conn.execute(
                    "INSERT OR IGNORE INTO applied_commands (command_id, applied_at) VALUES (?, ?)",
                    (command_id, time.time()),
                )
                new = cursor.rowcount == 1
                pruned = self._prune(conn, self._count + 1) if new else 0
            self._count += new - pruned
            return new

    def __len__(self) -> int:
        with self._lock:
            return self._count

    def _prune(self, conn: sqlite3.Connection, count: int) -> int:
        """Forget the oldest ids beyond ``max_entries``; returns how many."""
        excess = count - self.max_entries
        if excess <= 0:
            return 0
        return conn.execute(
            "DELETE FROM applied_commands WHERE n IN"
            " (SELECT n FROM applied_commands ORDER BY n LIMIT ?)",
            (excess,),
        ).rowcount
