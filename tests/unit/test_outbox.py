"""The durable outbox (SQLite, WAL) and the applied-commands set."""

import logging
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from vigil.commands.applied import AppliedCommands
from vigil.events.outbox import FullPolicy, Outbox, record_size
from vigil.sqlite_file import SqliteFileClosedError, SqliteFileCorruptError, SqliteFileLockedError

TOPIC = "t"  # 1 byte, so that a record of value length n costs n + 1 (+ key)


def rec(i: int, size: int = 100) -> tuple[str, bytes | None, bytes]:
    """A record whose value starts with its number; costs exactly `size` bytes."""
    value = f"{i}:".encode()
    return (TOPIC, None, value + b"x" * (size - len(TOPIC) - len(value)))


def number(value: bytes) -> int:
    return int(value.split(b":", 1)[0])


def numbers(box: Outbox, limit: int = 1_000_000) -> list[int]:
    return [number(r.value) for r in box.peek(limit)]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "spool" / "outbox.db"


@pytest.fixture
def box(path: Path):
    with Outbox(path, max_bytes=1_000_000) as b:
        yield b


# -- order, peek, ack ---------------------------------------------------------------------------


def test_outbox_when_appended_peek_returns_records_in_order_with_their_fields(box: Outbox):
    before = time.time()
    assert box.append([("a", b"k1", b"v1"), ("bb", None, b"v2")]) == 2
    assert box.append([("a", b"k3", b"v3")]) == 1
    records = box.peek(10)
    assert [(r.topic, r.key, r.value) for r in records] == [
        ("a", b"k1", b"v1"),
        ("bb", None, b"v2"),
        ("a", b"k3", b"v3"),
    ]
    assert [r.seq for r in records] == sorted({r.seq for r in records})
    assert all(before <= r.created_at <= time.time() for r in records)
    assert box.depth() == 3
    assert box.bytes_used() == 5 + 4 + 5
    assert box.peek(10) == records, "peek does not consume"


def test_outbox_when_a_subset_is_acked_the_rest_stays_in_order(box: Outbox):
    box.append([rec(i) for i in range(10)])
    seqs = [r.seq for r in box.peek(10)]
    assert box.ack([seqs[0], seqs[3], seqs[4], seqs[9]]) == 4
    assert numbers(box) == [1, 2, 5, 6, 7, 8]
    assert box.ack(seqs[1:3]) == 2  # contiguous run
    assert numbers(box) == [5, 6, 7, 8]
    assert box.depth() == 4
    assert box.bytes_used() == 400
    assert box.stats.acked == 6


def test_outbox_when_acking_unknown_or_repeated_seqs_counts_only_deleted(box: Outbox):
    box.append([rec(i) for i in range(3)])
    seqs = [r.seq for r in box.peek(3)]
    assert box.ack([seqs[0], seqs[0], 10_000]) == 1
    assert box.ack([seqs[0]]) == 0
    assert box.ack([]) == 0
    assert box.depth() == 2
    assert box.stats.acked == 1


def test_outbox_when_acking_many_scattered_seqs_chunks_the_delete(box: Outbox):
    box.append([rec(i, 10) for i in range(3000)])
    seqs = [r.seq for r in box.peek(3000)]
    assert box.ack(seqs[::2]) == 1500
    assert numbers(box) == list(range(1, 3000, 2))
    assert box.bytes_used() == 1500 * 10


@pytest.mark.parametrize(
    ("limit", "max_bytes", "expected"),
    [
        (3, None, [0, 1, 2]),
        (10, 250, [0, 1]),  # a third would make 300
        (10, 300, [0, 1, 2]),
        (2, 10_000, [0, 1]),
        (10, 50, [0]),  # the first record even though it alone exceeds max_bytes
        (0, None, []),
    ],
)
def test_outbox_peek_when_limited_by_count_or_bytes(
    box: Outbox, limit: int, max_bytes: int | None, expected: list[int]
):
    box.append([rec(i) for i in range(5)])
    assert [number(r.value) for r in box.peek(limit, max_bytes)] == expected


def test_outbox_peek_after_seq_reads_the_next_batch(box: Outbox):
    box.append([rec(i) for i in range(6)])
    first = box.peek(2)
    second = box.peek(2, after_seq=first[-1].seq)
    assert [number(r.value) for r in second] == [2, 3]


def test_outbox_when_empty_peek_returns_nothing(box: Outbox):
    assert box.peek(10) == []
    assert box.depth() == 0
    assert box.bytes_used() == 0


def test_outbox_record_size_counts_topic_key_and_value_bytes():
    assert record_size("é", b"ab", b"xyz") == 2 + 2 + 3
    assert record_size("t", None, b"") == 1


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ((1, None, b"v"), "topic must be str"),
        (("t", None, "v"), "value must be bytes"),
        (("t", "k", b"v"), "key must be bytes"),
    ],
)
def test_outbox_append_when_types_are_wrong_raises_and_stores_nothing(
    box: Outbox, record: tuple, message: str
):
    with pytest.raises(TypeError, match=message):
        box.append([rec(0), record])
    assert box.depth() == 0


# -- budget -------------------------------------------------------------------------------------


def test_outbox_when_full_with_drop_oldest_deletes_oldest_and_counts(path: Path):
    with Outbox(path, max_bytes=1000, full_policy=FullPolicy.DROP_OLDEST) as box:
        assert box.append([rec(i) for i in range(8)]) == 8
        assert box.append([rec(i) for i in range(8, 12)]) == 4
        assert numbers(box) == list(range(2, 12))
        assert box.bytes_used() == 1000
        stats = box.stats
        assert (stats.appended, stats.dropped_oldest, stats.rejected_new) == (12, 2, 0)
        assert stats.depth == 10
        # A bigger record frees as many small ones as it needs.
        assert box.append([rec(12, 250)]) == 1
        assert numbers(box) == [*range(5, 12), 12]
        assert box.bytes_used() == 950
        assert box.stats.dropped_oldest == 5


def test_outbox_when_one_batch_exceeds_the_budget_drop_oldest_keeps_its_newest(path: Path):
    with Outbox(path, max_bytes=1000, full_policy=FullPolicy.DROP_OLDEST) as box:
        box.append([rec(i) for i in range(3)])
        assert box.append([rec(i) for i in range(100, 115)]) == 10
        assert numbers(box) == list(range(105, 115))
        assert box.stats.dropped_oldest == 3 + 5


def test_outbox_when_full_with_reject_new_keeps_a_prefix_and_counts(path: Path):
    with Outbox(path, max_bytes=1000, full_policy=FullPolicy.REJECT_NEW) as box:
        assert box.append([rec(i) for i in range(8)]) == 8
        assert box.append([rec(i) for i in range(8, 12)]) == 2
        assert box.append([rec(12)]) == 0
        assert numbers(box) == list(range(10))
        assert box.bytes_used() == 1000
        stats = box.stats
        assert (stats.appended, stats.dropped_oldest, stats.rejected_new) == (10, 0, 3)
        box.ack([box.peek(1)[0].seq])
        assert box.append([rec(13)]) == 1
        assert numbers(box)[-1] == 13


@pytest.mark.parametrize("policy", list(FullPolicy))
def test_outbox_when_a_record_exceeds_max_bytes_alone_rejects_it_under_either_policy(
    path: Path, policy: FullPolicy, caplog: pytest.LogCaptureFixture
):
    with Outbox(path, max_bytes=1000, full_policy=policy) as box:
        box.append([rec(0)])
        assert box.append([rec(1), rec(2, 1001), rec(3)]) == 2
        assert box.append([rec(4, 5000)]) == 0
        assert numbers(box) == [0, 1, 3]
        assert box.stats.rejected_new == 2
        assert box.stats.dropped_oldest == 0
        assert box.bytes_used() == 300
    assert sum("larger than the whole budget" in r.message for r in caplog.records) == 1


def test_outbox_warns_once_when_crossing_warn_ratio_and_again_after_draining(
    path: Path, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.WARNING, logger="vigil.events.outbox")

    def near_full_warnings() -> int:
        return sum("full (" in r.message and "Kafka" in r.message for r in caplog.records)

    with Outbox(path, max_bytes=1000, warn_ratio=0.5) as box:
        box.append([rec(i) for i in range(4)])
        assert not box.near_full
        assert near_full_warnings() == 0
        box.append([rec(4)])
        assert box.near_full
        assert box.stats.near_full
        for i in range(5, 10):
            box.append([rec(i)])
        assert near_full_warnings() == 1, "one warning per crossing, not per append"
        box.ack([r.seq for r in box.peek(6)])
        assert not box.near_full
        box.append([rec(10), rec(11)])
        assert near_full_warnings() == 2
    assert all(r.levelno == logging.WARNING for r in caplog.records)


@pytest.mark.parametrize("policy", list(FullPolicy))
def test_outbox_when_policy_acts_many_times_logs_one_warning_per_burst(
    path: Path, policy: FullPolicy, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, logger="vigil.events.outbox")

    def burst_warnings() -> int:
        return sum("is losing records" in r.message for r in caplog.records)

    with Outbox(path, max_bytes=1000, full_policy=policy) as box:
        for i in range(100):
            box.append([rec(i), rec(1000 + i)])
        stats = box.stats
        assert stats.dropped_oldest + stats.rejected_new == 190
        assert burst_warnings() == 1
        box.ack([r.seq for r in box.peek(5)])  # 50%: drained below warn_ratio, burst over
        assert any("190 records were lost" in r.message for r in caplog.records)
        for i in range(10):
            box.append([rec(i)])
        assert burst_warnings() == 2


# -- persistence --------------------------------------------------------------------------------


def test_outbox_when_reopened_restores_records_order_and_byte_count(path: Path):
    with Outbox(path, max_bytes=1_000_000) as box:
        box.append([rec(i, 50 + i) for i in range(20)])
        box.ack([r.seq for r in box.peek(5)])
        seqs, used = [r.seq for r in box.peek(100)], box.bytes_used()
    with Outbox(path, max_bytes=1_000_000) as box:
        assert [r.seq for r in box.peek(100)] == seqs
        assert numbers(box) == list(range(5, 20))
        assert box.bytes_used() == used == sum(50 + i for i in range(5, 20))
        assert box.depth() == 15
        assert box.stats.appended == 0, "counters count since this open"


def test_outbox_seq_keeps_increasing_after_deleting_everything_and_reopening(path: Path):
    with Outbox(path, max_bytes=1_000_000) as box:
        box.append([rec(i) for i in range(5)])
        last = box.peek(10)[-1].seq
        box.ack(r.seq for r in box.peek(10))
        assert box.depth() == 0
    with Outbox(path, max_bytes=1_000_000) as box:
        box.append([rec(5)])
        assert box.peek(1)[0].seq > last


def test_outbox_when_the_directory_is_missing_creates_it(tmp_path: Path):
    path = tmp_path / "a" / "b" / "outbox.db"
    with Outbox(path, max_bytes=100):
        assert path.is_file()


def test_outbox_when_the_file_is_open_elsewhere_raises_locked(path: Path):
    with Outbox(path, max_bytes=1000), pytest.raises(SqliteFileLockedError, match=str(path)):
        Outbox(path, max_bytes=1000)


def test_outbox_when_the_file_is_not_a_database_raises_corrupt_naming_it(path: Path):
    path.parent.mkdir(parents=True)
    path.write_bytes(b"this is not SQLite" * 1000)
    with pytest.raises(SqliteFileCorruptError, match=str(path)) as info:
        Outbox(path, max_bytes=1000)
    assert info.value.path == path


def test_outbox_when_the_file_is_another_database_raises_corrupt(path: Path):
    path.parent.mkdir(parents=True)
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE other (x)")
    conn.close()
    with pytest.raises(SqliteFileCorruptError, match="not a Vigil file"):
        Outbox(path, max_bytes=1000)


def test_outbox_when_closed_close_is_idempotent_and_use_raises(path: Path):
    box = Outbox(path, max_bytes=1000)
    box.close()
    box.close()
    assert box.closed
    with pytest.raises(SqliteFileClosedError):
        box.append([rec(0)])
    with pytest.raises(SqliteFileClosedError):
        box.peek(1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_bytes": 0}, "max_bytes"),
        ({"max_bytes": 10, "warn_ratio": 0.0}, "warn_ratio"),
        ({"max_bytes": 10, "warn_ratio": 1.5}, "warn_ratio"),
        ({"max_bytes": 10, "synchronous": "off"}, "synchronous"),
    ],
)
def test_outbox_when_arguments_are_invalid_raises(path: Path, kwargs: dict, message: str):
    with pytest.raises(ValueError, match=message):
        Outbox(path, **kwargs)


def test_outbox_when_shared_by_threads_delivers_every_record_once_in_per_thread_order(path: Path):
    writers, batches, per_batch = 4, 50, 10
    delivered: list[bytes] = []
    with Outbox(path, max_bytes=100_000_000) as box:
        done = threading.Event()

        def write(w: int) -> None:
            for b in range(batches):
                box.append(
                    [(TOPIC, f"{w}".encode(), f"{b}:{i}".encode()) for i in range(per_batch)]
                )

        def consume() -> None:
            while True:
                finished = done.is_set()
                batch = box.peek(37)
                delivered.extend((r.key or b"") + b"/" + r.value for r in batch)
                box.ack(r.seq for r in batch)
                if finished and not batch:
                    return

        consumer = threading.Thread(target=consume)
        consumer.start()
        threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        done.set()
        consumer.join(30)
        assert box.depth() == 0
        assert box.bytes_used() == 0
    assert len(delivered) == len(set(delivered)) == writers * batches * per_batch
    for w in range(writers):
        mine = [d for d in delivered if d.startswith(f"{w}/".encode())]
        expected = [f"{w}/{b}:{i}".encode() for b in range(batches) for i in range(per_batch)]
        assert mine == expected


# -- crash durability ---------------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from vigil.events.outbox import Outbox

    path, synchronous, start = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    box = Outbox(path, max_bytes=1 << 32, synchronous=synchronous)
    print("open", flush=True)
    batch = start
    while True:
        box.append(
            [("t", str(batch).encode(), f"{batch}:{i}:".encode() + b"x" * 1000) for i in range(20)]
        )
        print(batch, flush=True)  # committed: append returned
        batch += 1
    """
)


@pytest.mark.parametrize("synchronous", ["normal", "full"])
def test_outbox_when_the_writer_is_killed_keeps_every_committed_batch_in_order(
    path: Path, synchronous: str
):
    per_batch, next_batch = 20, 0
    for round_ in range(3):  # kill, reopen and go on: recovery of a recovered file too
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path), synchronous, str(next_batch)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout.readline().strip() == "open"
            committed = []
            while len(committed) < 30 + 10 * round_:
                line = child.stdout.readline()
                assert line, "the child died on its own"
                committed.append(int(line))
            child.send_signal(signal.SIGKILL)  # while it is writing the next batches
            child.wait(10)
            committed += [int(line) for line in child.stdout.read().split()]
        finally:
            child.kill()
            child.wait()
            child.stdout.close()
        assert child.returncode == -signal.SIGKILL

        with Outbox(path, max_bytes=1 << 32) as box:
            records = box.peek(1_000_000)
        stored = [tuple(int(p) for p in r.value.split(b":")[:2]) for r in records]
        assert [r.seq for r in records] == sorted(r.seq for r in records)
        assert len(stored) % per_batch == 0, "a batch is one transaction: all or nothing"
        n_batches = len(stored) // per_batch
        # Every batch reported committed is there, in order, complete; at most the batch being
        # written at the kill may be there too (committed but not yet reported).
        assert stored == [(b, i) for b in range(n_batches) for i in range(per_batch)]
        assert committed[-1] < n_batches <= committed[-1] + 2
        next_batch = n_batches


# -- throughput ---------------------------------------------------------------------------------


@pytest.mark.parametrize("synchronous", ["normal", "full"])
def test_outbox_throughput_of_append_peek_ack(path: Path, synchronous: str):
    total, per_frame, value = 40_000 if synchronous == "normal" else 8_000, 32, b"v" * 1024
    frames = [
        [("vigil.events", f"cam-{f % 8}".encode(), value) for _ in range(per_frame)]
        for f in range(total // per_frame)
    ]
    with Outbox(path, max_bytes=1 << 30, synchronous=synchronous) as box:
        start = time.perf_counter()
        for i, frame in enumerate(frames):
            box.append(frame)
            if i % 16 == 15:  # the producer drains every 16 frames, 512 records per peek
                while batch := box.peek(512, 1 << 20):
                    box.ack(r.seq for r in batch)
        while batch := box.peek(512, 1 << 20):
            box.ack(r.seq for r in batch)
        elapsed = time.perf_counter() - start
        assert box.depth() == 0
    rate = total / elapsed
    print(
        f"\noutbox synchronous={synchronous}: {total} records of 1 KiB in frames of {per_frame} "
        f"appended+peeked+acked in {elapsed:.2f} s = {rate:,.0f} records/s"
    )
    assert rate > 2_000


# -- applied commands ---------------------------------------------------------------------------


def test_applied_commands_when_marked_are_seen_also_after_reopening(tmp_path: Path):
    path = tmp_path / "state" / "applied.db"
    with AppliedCommands(path) as applied:
        assert not applied.seen("c1")
        applied.mark("c1")
        applied.mark("c1")
        assert applied.seen("c1")
        assert not applied.seen("c2")
        assert len(applied) == 1
    with AppliedCommands(path) as applied:
        assert applied.seen("c1")
        assert not applied.seen("c2")


def test_applied_commands_claim_is_true_only_the_first_time(tmp_path: Path):
    with AppliedCommands(tmp_path / "applied.db") as applied:
        assert applied.claim("c1")
        assert not applied.claim("c1")
        applied.mark("c2")
        assert not applied.claim("c2")


def test_applied_commands_keep_only_the_newest_max_entries(tmp_path: Path):
    path = tmp_path / "applied.db"
    with AppliedCommands(path, max_entries=3) as applied:
        for i in range(5):
            applied.mark(f"c{i}")
        assert [applied.seen(f"c{i}") for i in range(5)] == [False, False, True, True, True]
        assert len(applied) == 3
    with AppliedCommands(path, max_entries=2) as applied:  # lowered: pruned at open
        assert [applied.seen(f"c{i}") for i in range(5)] == [False, False, False, True, True]
        assert len(applied) == 2


def test_applied_commands_when_claimed_concurrently_exactly_one_thread_wins(tmp_path: Path):
    wins: list[int] = []
    with AppliedCommands(tmp_path / "applied.db", synchronous="normal") as applied:
        barrier = threading.Barrier(8)

        def claim(t: int) -> None:
            barrier.wait()
            for i in range(50):
                if applied.claim(f"cmd-{i}"):
                    wins.append(t)

        threads = [threading.Thread(target=claim, args=(t,)) for t in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(applied) == 50
    assert len(wins) == 50


def test_applied_commands_when_closed_close_is_idempotent_and_use_raises(tmp_path: Path):
    applied = AppliedCommands(tmp_path / "applied.db")
    applied.close()
    applied.close()
    with pytest.raises(SqliteFileClosedError):
        applied.seen("c1")
