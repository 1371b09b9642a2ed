import threading
import time

import numpy as np
import pytest

from vigil.frame import Frame
from vigil.pipeline.queues import DropPolicy, FrameQueue


def frame(n: int, stream: str = "s") -> Frame:
    return Frame(stream, n, None, 0.0, time.monotonic(), np.zeros((2, 2, 3), np.uint8))


def test_queue_drop_oldest_when_full_counts_drops_and_keeps_newest():
    q = FrameQueue(2, DropPolicy.DROP_OLDEST)
    for i in range(5):
        assert q.put(frame(i))
    assert q.dropped == 3
    assert [q.get_nowait().frame_number, q.get_nowait().frame_number] == [3, 4]
    assert q.get_nowait() is None


def test_queue_block_when_full_waits_for_room_and_drops_nothing():
    q = FrameQueue(1, DropPolicy.BLOCK)
    q.put(frame(0))
    done = threading.Event()

    def producer():
        q.put(frame(1))
        done.set()

    t = threading.Thread(target=producer)
    t.start()
    assert not done.wait(0.1), "put must block while the queue is full"
    assert q.get_nowait().frame_number == 0
    assert done.wait(2)
    t.join()
    assert q.get_nowait().frame_number == 1
    assert q.dropped == 0


def test_queue_abort_releases_a_blocked_producer():
    q = FrameQueue(1, DropPolicy.BLOCK)
    q.put(frame(0))
    result = []
    t = threading.Thread(target=lambda: result.append(q.put(frame(1))))
    t.start()
    time.sleep(0.05)
    q.abort()
    t.join(2)
    assert result == [False]


def test_queue_finished_only_when_closed_and_empty():
    q = FrameQueue(2, DropPolicy.BLOCK)
    q.put(frame(0))
    q.close()
    assert not q.finished
    q.get_nowait()
    assert q.finished


def test_queue_notifies_on_put_and_close():
    calls = []
    q = FrameQueue(2, DropPolicy.BLOCK, lambda: calls.append(1))
    q.put(frame(0))
    q.close()
    assert len(calls) == 2


def test_queue_rejects_zero_size():
    with pytest.raises(ValueError, match="maxsize"):
        FrameQueue(0, DropPolicy.BLOCK)
