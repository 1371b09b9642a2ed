"""A durable local outbox between the pipeline and the Kafka producer.

Events are stored in SQLite (WAL mode) before they are sent and deleted once the broker has
acknowledged them, so an event survives a crash of the process (``kill -9`` included) and is sent
again on the next start: delivery is at-least-once, and consumers must tolerate duplicates.

The typical loop of a producer::

    outbox = Outbox(Path("/var/lib/vigil/outbox.db"), max_bytes=512 << 20)
    outbox.append([("vigil.events", b"cam-1", payload)])  # from the pipeline
    ...
    batch = outbox.peek(500, max_bytes=1 << 20)  # from the producer task
    await send_all(batch)  # wait for the broker's acks
    outbox.ack(r.seq for r in batch)

Every method is synchronous and thread-safe; call them through ``asyncio.to_thread``.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Literal

from vigil.sqlite_file import SqliteFile, check_application, transaction, translate_errors

log = logging.getLogger(__name__)

# SQLite's default limit on the number of ``?`` in one statement is 32766; stay well below it.
_ACK_CHUNK = 500
_OVERSIZE_LOG_INTERVAL_S = 60.0


@dataclass(frozen=True)
class OutboxRecord:
    """One stored event.

    Attributes:
        seq: Position in insertion order; strictly increasing, never reused, also across restarts.
        topic: Kafka topic.
        key: Kafka key, or None.
        value: Kafka value.
        created_at: When it was appended (``time.time()``).
    """

    seq: int
    topic: str
    key: bytes | None
    value: bytes
    created_at: float

    @property
    def size(self) -> int:
        """Bytes this record counts against the budget: topic (UTF-8) + key + value."""
        return record_size(self.topic, self.key, self.value)


class FullPolicy(StrEnum):
    """What ``append`` does when the new records do not fit in ``max_bytes``."""

    DROP_OLDEST = "drop_oldest"
    """Make room by deleting the oldest records (counted in ``dropped_oldest``)."""
    REJECT_NEW = "reject_new"
    """Refuse the new records that do not fit (counted in ``rejected_new``)."""


@dataclass(frozen=True)
class OutboxStats:
    """A consistent snapshot of an outbox's counters.

    The counters count since this ``Outbox`` was opened; ``depth`` and ``bytes_used`` describe
    the file and so include records left by a previous run.

    Attributes:
        appended: Records stored by ``append``.
        acked: Records deleted by ``ack``.
        dropped_oldest: Records lost to ``FullPolicy.DROP_OLDEST`` (stored ones deleted to make
            room, and new ones when a single batch is larger than the whole budget).
        rejected_new: Records refused by ``FullPolicy.REJECT_NEW``, plus records larger than
            ``max_bytes`` on their own (refused under either policy).
        depth: Records stored now.
        bytes_used: Budgeted bytes stored now (see ``record_size``).
        max_bytes: The budget.
        warn_ratio: Fraction of the budget above which the outbox is ``near_full``.
    """

    appended: int
    acked: int
    dropped_oldest: int
    rejected_new: int
    depth: int
    bytes_used: int
    max_bytes: int
    warn_ratio: float

    @property
    def near_full(self) -> bool:
        """Whether ``bytes_used >= warn_ratio * max_bytes``."""
        return self.bytes_used >= self.warn_ratio * self.max_bytes


def record_size(topic: str, key: bytes | None, value: bytes) -> int:
    """Bytes a record counts against ``max_bytes``: len(topic as UTF-8) + len(key) + len(value).

    SQLite's own overhead (row headers, index, free pages, the WAL) is not counted: leave
    headroom on the disk, roughly 1.3 x ``max_bytes`` plus the WAL's size limit (64 MiB).
    """
    return len(topic.encode()) + (len(key) if key is not None else 0) + len(value)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,  -- AUTOINCREMENT: never reused after deletes
    topic      TEXT    NOT NULL,
    key        BLOB,
    value      BLOB    NOT NULL,
    created_at REAL    NOT NULL,
    size       INTEGER NOT NULL                    -- record_size(), kept for cheap accounting
)
"""
_INSERT = "INSERT INTO outbox (topic, key, value, created_at, size) VALUES (?, ?, ?, ?, ?)"


class Outbox(SqliteFile):
    """A bounded, durable FIFO of Kafka records in one SQLite file.

    Durability: the file is in WAL mode and every ``append`` is one transaction. With
    ``synchronous="normal"`` (the default) a committed append survives a crash of the process
    (exception, OOM kill, ``kill -9``) but the last transactions before a power loss or kernel
    crash may be lost (never corrupted); with ``synchronous="full"`` each commit is fsync'ed and
    survives power loss too, at the price of one fsync per append (about 10x slower on most
    disks).

    Ownership: the file is opened in exclusive locking mode, so a second process (or a second
    ``Outbox`` on the same file) gets ``SqliteFileLockedError``. Within the process, one instance is
    safe to share between threads (one connection behind a lock). Only one consumer should peek
    and ack; two would send the same records twice.

    Budget: ``bytes_used`` (see ``record_size``) never exceeds ``max_bytes``. A warning is logged
    once when it crosses ``warn_ratio * max_bytes`` upwards, once when the full policy starts
    dropping or rejecting, and the burst ends (with an info line giving the count) only when the
    outbox has drained below ``warn_ratio`` again. Each loss is counted in ``stats``.

    Args:
        path: The SQLite file; it and its directory are created if needed. An existing outbox is
            reopened with its records (that is how records survive a restart).
        max_bytes: Budget for the stored records' topics, keys and values.
        full_policy: What to do when an append does not fit.
        warn_ratio: Fraction of ``max_bytes`` above which ``near_full`` is true; in (0, 1].
        synchronous: ``"normal"`` or ``"full"``, see above.

    Raises:
        SqliteFileCorruptError: The file exists but is not a usable Vigil outbox.
        SqliteFileLockedError: Another process has it open.
        SqliteFileError: It could not be opened for another reason (permissions, full disk...).
    """

    _what = "the outbox"

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int,
        full_policy: FullPolicy = FullPolicy.DROP_OLDEST,
        warn_ratio: float = 0.8,
        synchronous: Literal["normal", "full"] = "normal",
    ) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, not {max_bytes}")
        if not 0.0 < warn_ratio <= 1.0:
            raise ValueError(f"warn_ratio must be in (0, 1], not {warn_ratio}")
        self.max_bytes = max_bytes
        self.full_policy = FullPolicy(full_policy)
        self.warn_ratio = warn_ratio
        self._appended = self._acked = self._dropped_oldest = self._rejected_new = 0
        self._near_full_warned = False
        self._burst_losses = 0  # > 0 while a policy burst is under way
        self._oversize_unlogged = 0
        self._oversize_logged_at = -_OVERSIZE_LOG_INTERVAL_S
        self._open(path, synchronous)
        try:
            with translate_errors(self.path, "open"), transaction(self._conn):
                check_application(self._conn, self.path)
                self._conn.execute(_SCHEMA)
                count, total = self._conn.execute(
                    "SELECT count(*), coalesce(sum(size), 0) FROM outbox"
                ).fetchone()
        except BaseException:
            self._conn.close()
            self._conn = None
            raise
        self._depth: int = count
        self._bytes_used: int = total
        self._check_near_full()

    # -- public API ---------------------------------------------------------------------------

    def append(self, records: Sequence[tuple[str, bytes | None, bytes]]) -> int:
        """Store records (topic, key, value) in one transaction, after applying the budget.

        Under ``DROP_OLDEST`` the oldest stored records are deleted to make room (in the same
        transaction); if the batch alone exceeds the budget, its own oldest records are dropped.
        Under ``REJECT_NEW`` the longest prefix of the batch that fits is stored and the rest is
        refused. A record larger than ``max_bytes`` is refused under either policy.

        Returns:
            How many records were stored (committed to the file when this returns).

        Raises:
            TypeError: A topic is not a str, or a key or value is not bytes.
            SqliteFileError: The write failed; nothing of the batch was stored.
        """
        if not records:
            return 0
        now = time.time()
        rows: list[tuple[str, bytes | None, bytes, float, int]] = []
        oversize = 0
        for i, (topic, key, value) in enumerate(records):
            if not isinstance(topic, str):
                raise TypeError(f"records[{i}]: topic must be str, not {type(topic).__name__}")
            if not isinstance(value, bytes | bytearray):
                raise TypeError(f"records[{i}]: value must be bytes, not {type(value).__name__}")
            if key is not None and not isinstance(key, bytes | bytearray):
                raise TypeError(f"records[{i}]: key must be bytes, not {type(key).__name__}")
            size = record_size(topic, key, value)
            if size > self.max_bytes:
                oversize += 1
            else:
                rows.append((topic, key, value, now, size))

        with self._lock:
            conn = self._require_open()
            if oversize:
                self._rejected_new += oversize
                self._log_oversize(oversize)
            if not rows:
                return 0
            new_bytes = sum(r[4] for r in rows)
            dropped_new = rejected = dropped_stored = freed = 0
            if self._bytes_used + new_bytes > self.max_bytes:
                if self.full_policy is FullPolicy.REJECT_NEW:
                    room = self.max_bytes - self._bytes_used
                    keep = 0
                    while keep < len(rows) and rows[keep][4] <= room:
                        room -= rows[keep][4]
                        keep += 1
                    rejected = len(rows) - keep
                    rows = rows[:keep]
                else:
                    while new_bytes > self.max_bytes:  # the batch alone is over budget
                        new_bytes -= rows[dropped_new][4]
                        dropped_new += 1
                    rows = rows[dropped_new:]
                new_bytes = sum(r[4] for r in rows)
            need = self._bytes_used + new_bytes - self.max_bytes
            if rows:
                with translate_errors(self.path, "append"), transaction(conn):
                    if need > 0:  # only under DROP_OLDEST: REJECT_NEW kept what fits
                        dropped_stored, freed = self._delete_oldest(conn, need)
                    conn.executemany(_INSERT, rows)
            self._depth += len(rows) - dropped_stored
            self._bytes_used += new_bytes - freed
            self._appended += len(rows)
            self._dropped_oldest += dropped_new + dropped_stored
            self._rejected_new += rejected
            self._check_near_full()
            self._note_losses(dropped_new + dropped_stored + rejected)
            return len(rows)

    def peek(
        self, limit: int, max_bytes: int | None = None, *, after_seq: int = 0
    ) -> list[OutboxRecord]:
        """The oldest records, in ``seq`` order, without removing them.

        Args:
            limit: At most this many records.
            max_bytes: Stop before the total ``record_size`` would exceed this; the first record
                is returned even if it alone is larger, so that the outbox always makes progress.
            after_seq: Only records with ``seq > after_seq``; lets a producer read the next
                batch while the previous one is still waiting for its acks.

        Raises:
            SqliteFileError: The read failed.
        """
        if limit <= 0:
            return []
        out: list[OutboxRecord] = []
        with self._lock:
            conn = self._require_open()
            with translate_errors(self.path, "peek"):
                cursor = conn.execute(
                    "SELECT seq, topic, key, value, created_at, size FROM outbox"
                    " WHERE seq > ? ORDER BY seq LIMIT ?",
                    (after_seq, limit),
                )
                total = 0
                for seq, topic, key, value, created_at, size in cursor:
                    total += size
                    if max_bytes is not None and out and total > max_bytes:
                        break
                    out.append(OutboxRecord(seq, topic, key, value, created_at))
                cursor.close()
        return out

    def ack(self, seqs: Iterable[int]) -> int:
        """Delete records the broker has acknowledged.

        Unknown seqs (already acked, or dropped by ``DROP_OLDEST`` while in flight) are ignored.

        Returns:
            How many records were deleted.

        Raises:
            SqliteFileError: The delete failed; nothing was deleted.
        """
        wanted = sorted(set(seqs))
        if not wanted:
            return 0
        with self._lock:
            conn = self._require_open()
            deleted = freed = 0
            with translate_errors(self.path, "ack"), transaction(conn):
                if wanted[-1] - wanted[0] + 1 == len(wanted):  # one contiguous run: the usual case
                    chunks = [("seq BETWEEN ? AND ?", (wanted[0], wanted[-1]))]
                else:
                    chunks = [
                        (f"seq IN ({','.join('?' * len(c))})", c)
                        for c in (
                            wanted[i : i + _ACK_CHUNK] for i in range(0, len(wanted), _ACK_CHUNK)
                        )
                    ]
                for where, params in chunks:
                    sizes = conn.execute(
                        f"DELETE FROM outbox WHERE {where} RETURNING size", params
                    ).fetchall()
                    deleted += len(sizes)
                    freed += sum(s for (s,) in sizes)
            self._depth -= deleted
            self._bytes_used -= freed
            self._acked += deleted
            self._check_near_full()
            if self._burst_losses and not self._is_near_full():
                log.info(
                    "outbox %s drained below %.0f%%; %d records were lost to %s while it was full",
                    self.path,
                    100.0 * self.warn_ratio,
                    self._burst_losses,
                    self.full_policy.value,
                )
                self._burst_losses = 0
            return deleted

    def depth(self) -> int:
        """How many records are stored."""
        with self._lock:
            return self._depth

    def bytes_used(self) -> int:
        """Sum of ``record_size`` over the stored records (kept up to date, not scanned)."""
        with self._lock:
            return self._bytes_used

    @property
    def stats(self) -> OutboxStats:
        """A consistent snapshot of the counters."""
        with self._lock:
            return OutboxStats(
                appended=self._appended,
                acked=self._acked,
                dropped_oldest=self._dropped_oldest,
                rejected_new=self._rejected_new,
                depth=self._depth,
                bytes_used=self._bytes_used,
                max_bytes=self.max_bytes,
                warn_ratio=self.warn_ratio,
            )

    @property
    def near_full(self) -> bool:
        """Whether ``bytes_used() >= warn_ratio * max_bytes``."""
        with self._lock:
            return self._bytes_used >= self.warn_ratio * self.max_bytes

    def __repr__(self) -> str:
        return (
            f"Outbox({str(self.path)!r}, depth={self._depth}, bytes_used={self._bytes_used}, "
            f"max_bytes={self.max_bytes}, full_policy={self.full_policy.value})"
        )

    # -- internals (called with self._lock held) ----------------------------------------------

    def _delete_oldest(self, conn: sqlite3.Connection, need: int) -> tuple[int, int]:
        """Delete the oldest records until ``need`` bytes are freed; returns (count, bytes)."""
        count = freed = 0
        last = None
        cursor = conn.execute("SELECT seq, size FROM outbox ORDER BY seq")
        for seq, size in cursor:
            count += 1
            freed += size
            last = seq
            if freed >= need:
                break
        cursor.close()
        if last is not None:
            conn.execute("DELETE FROM outbox WHERE seq <= ?", (last,))
        return count, freed

    def _is_near_full(self) -> bool:
        return self._bytes_used >= self.warn_ratio * self.max_bytes

    def _check_near_full(self) -> None:
        near = self._is_near_full()
        if near and not self._near_full_warned:
            self._near_full_warned = True
            log.warning(
                "outbox %s is %.0f%% full (%d of %d bytes, %d records): is Kafka reachable?",
                self.path,
                100.0 * self._bytes_used / self.max_bytes,
                self._bytes_used,
                self.max_bytes,
                self._depth,
            )
        elif not near:
            self._near_full_warned = False

    def _note_losses(self, losses: int) -> None:
        """One warning per burst of losses; ``ack`` ends the burst when below ``warn_ratio``."""
        if not losses:
            return
        if not self._burst_losses:
            log.warning(
                "outbox %s is full (%d bytes): %s is losing records; further losses are only "
                "counted (stats) until it drains below %.0f%%",
                self.path,
                self.max_bytes,
                self.full_policy.value,
                100.0 * self.warn_ratio,
            )
        self._burst_losses += losses

    def _log_oversize(self, count: int) -> None:
        self._oversize_unlogged += count
        now = time.monotonic()
        if now - self._oversize_logged_at >= _OVERSIZE_LOG_INTERVAL_S:
            log.warning(
                "outbox %s: rejected %d record(s) larger than the whole budget (%d bytes)",
                self.path,
                self._oversize_unlogged,
                self.max_bytes,
            )
            self._oversize_unlogged = 0
            self._oversize_logged_at = now
