"""Folding the control and status topics: last value per key wins, a tombstone removes, a bad
record changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiokafka.structs import ConsumerRecord

from vigil.cluster.control import DesiredStreams, encode_spec
from vigil.cluster.status import StatusBoard, StreamReport, WorkerStatus
from vigil.config import KafkaSettings
from vigil.specs import StreamSpec

KAFKA = KafkaSettings(bootstrap_servers="127.0.0.1:9")


def record(key: bytes, value: bytes | None, partition: int = 0, offset: int = 0) -> ConsumerRecord:
    return ConsumerRecord("t", partition, offset, 0, 0, key, value, None, len(key), 0, ())


def spec(stream_id: str, url: str = "test://pattern") -> StreamSpec:
    return StreamSpec(id=stream_id, url=url)


def test_desired_when_a_key_is_written_twice_then_the_last_value_wins_and_listeners_hear():
    desired = DesiredStreams(KAFKA, "t")
    heard: list[tuple[str, int]] = []
    desired.listeners.append(lambda sid, p: heard.append((sid, p)))
    desired._apply(record(b"a", encode_spec(spec("a")), 3, 0))
    desired._apply(record(b"a", encode_spec(spec("a", "test://pattern?fps=2")), 3, 1))
    desired._apply(record(b"a", encode_spec(spec("a", "test://pattern?fps=2")), 3, 2))
    assert desired.streams["a"].spec.url == "test://pattern?fps=2"
    assert desired.streams["a"].offset == 2
    assert heard == [("a", 3), ("a", 3)]  # the same spec again changes nothing
    assert desired.weights() == {3: 1}
    assert desired.of_partitions({3}) == {"a": spec("a", "test://pattern?fps=2")}
    assert desired.of_partitions({1, 2}) == {}


def test_desired_when_a_tombstone_comes_then_the_stream_is_gone():
    desired = DesiredStreams(KAFKA, "t")
    desired._apply(record(b"a", encode_spec(spec("a")), 1))
    desired._apply(record(b"b", encode_spec(spec("b")), 1))
    desired._apply(record(b"a", None, 1, 2))
    assert set(desired.streams) == {"b"}
    assert desired.weights() == {1: 1}
    desired._apply(record(b"zzz", None, 1, 3))  # a tombstone of nothing: no error


def test_desired_when_a_record_is_bad_then_it_is_counted_and_changes_nothing():
    desired = DesiredStreams(KAFKA, "t")
    desired._apply(record(b"a", encode_spec(spec("a"))))
    desired._apply(record(b"a", b"{not json"))
    desired._apply(record(b"a", b'{"id": "a", "url": "ftp://x"}'))
    desired._apply(record(b"other", encode_spec(spec("a", "test://pattern?fps=9"))))
    desired._apply(record(b"\xff", encode_spec(spec("a"))))
    assert desired.streams["a"].spec == spec("a")
    assert sum(desired.rejected.values()) == 4


def test_desired_when_the_broker_lost_the_topic_then_everything_is_forgotten_and_heard():
    desired = DesiredStreams(KAFKA, "t")
    heard: list[str] = []
    desired.listeners.append(lambda sid, _p: heard.append(sid))
    desired._apply(record(b"a", encode_spec(spec("a"))))
    heard.clear()
    desired._reset()
    assert desired.streams == {}
    assert heard == ["a"]


def status(worker: str, at: datetime, streams: list[str]) -> bytes:
    return (
        WorkerStatus(
            worker=worker,
            at=at,
            partitions=[0],
            streams=[StreamReport(id=s, state="running") for s in streams],
            model="m:1",
            leader=False,
            rebalances=1,
        )
        .model_dump_json()
        .encode()
    )


def test_status_board_when_a_worker_is_stale_or_gone_then_it_is_left_out():
    board = StatusBoard(KAFKA, "s", stale_s=6)
    now = datetime.now(UTC)
    board._apply(record(b"w1", status("w1", now - timedelta(seconds=30), ["a"])))
    board._apply(record(b"w2", status("w2", now, ["a", "b"])))
    board._apply(record(b"w3", status("w3", now, ["c"])))
    board._apply(record(b"w3", None))  # w3 left cleanly
    board._apply(record(b"w4", b"garbage"))
    assert [w.worker for w in board.workers(now)] == ["w2"]
    owner = board.owner("a")
    assert owner is not None
    assert owner[0].worker == "w2"
    assert board.owner("c") is None
