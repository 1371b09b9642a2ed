import asyncio
import threading
import time

import pytest

from tests.unit.fakes import ScriptedSource
from vigil.pipeline.queues import DropPolicy, FrameQueue
from vigil.pipeline.stream_state import StreamState, StreamStatus
from vigil.pipeline.worker import Pacing, ReconnectPolicy, StreamWorker

FAST = ReconnectPolicy(initial_delay_s=0.01, max_delay_s=0.02)


def drain(queue: FrameQueue) -> list[int]:
    out = []
    while (frame := queue.get_nowait()) is not None:
        out.append(frame.frame_number)
    return out


def run(sources, *, policy=FAST, pacing=None, maxsize=100):
    pacing = pacing or Pacing()
    sources = list(sources)
    made = []

    def make():
        made.append(sources.pop(0))
        return made[-1]

    status = StreamStatus("s", "fake://s")
    queue = FrameQueue(maxsize, DropPolicy.BLOCK)
    worker = StreamWorker(make, status, queue, policy, pacing)
    worker.start()
    assert worker.join(5)
    return status, queue, made


def test_file_source_ends_stopped_with_all_frames():
    status, queue, made = run([ScriptedSource(frames=5)])
    assert status.state is StreamState.STOPPED
    assert status.reason == "end of stream"
    assert drain(queue) == [0, 1, 2, 3, 4]
    assert queue.finished
    assert made[0].closed


def test_file_source_error_marks_stream_error_without_retry():
    status, _, made = run([ScriptedSource(fail_open="no such file")])
    assert status.state is StreamState.ERROR
    assert "no such file" in status.reason
    assert len(made) == 1


def test_live_source_reconnects_with_backoff_then_runs():
    sources = [
        ScriptedSource(live=True, frames=2, fail_after="stream ended (disconnected)"),
        ScriptedSource(live=True, fail_open="cannot connect"),
        ScriptedSource(live=True, frames=2),
    ]
    status, queue, made = run(sources, policy=ReconnectPolicy(initial_delay_s=0.01, max_attempts=5))
    assert len(made) == 3
    assert status.stats.reconnects == 2
    assert status.last_error.endswith("cannot connect")
    assert drain(queue) == [0, 1, 0, 1]


def test_live_source_gives_up_after_max_attempts():
    sources = [ScriptedSource(live=True, fail_open="cannot connect") for _ in range(3)]
    status, _, made = run(sources, policy=ReconnectPolicy(initial_delay_s=0.01, max_attempts=2))
    assert status.state is StreamState.ERROR
    assert len(made) == 3


@pytest.mark.parametrize(("attempt", "delay"), [(0, 0.5), (1, 1.0), (2, 2.0), (10, 2.0)])
def test_backoff_is_exponential_and_capped(attempt, delay):
    assert ReconnectPolicy().delay_s(attempt) == delay


def test_inference_interval_keeps_every_nth_frame():
    status, queue, _ = run([ScriptedSource(frames=7)], pacing=Pacing(inference_interval=3))
    assert drain(queue) == [0, 3, 6]
    assert status.stats.frames_skipped == 4
    assert status.stats.frames_decoded == 7


def test_max_fps_paces_a_file():
    start = time.monotonic()
    _, queue, _ = run([ScriptedSource(frames=6)], pacing=Pacing(max_fps=50))
    assert time.monotonic() - start >= 0.09
    assert len(drain(queue)) == 6


def test_a_paced_file_frame_is_captured_when_it_is_due_not_when_decoded():
    """Frames decoded in a burst and played at 50 fps: each frame's capture time is its turn,
    so its latency does not include the wait for it."""

    class BurstSource(ScriptedSource):
        """Decodes all its frames at once, as an NVDEC fetch does."""

        def frames(self):
            yield from list(super().frames())

    before = time.monotonic()
    _, queue, _ = run([BurstSource(frames=6)], pacing=Pacing(max_fps=50))
    stamps = []
    while (frame := queue.get_nowait()) is not None:
        stamps.append(frame.decoded_monotonic_s)
    assert len(stamps) == 6
    assert stamps == sorted(stamps)
    assert stamps[-1] - stamps[0] >= 5 * 0.02 * 0.9  # 5 periods of 20 ms apart
    assert stamps[0] >= before


def test_max_fps_skips_frames_of_a_live_source():
    source = ScriptedSource(live=True, frames=20, delay_s=0.005)
    status, queue, _ = run(
        [source], policy=ReconnectPolicy(enabled=False), pacing=Pacing(max_fps=20)
    )
    kept = drain(queue)
    assert 1 <= len(kept) < 10
    assert status.stats.frames_skipped == 20 - len(kept)


def test_stop_ends_a_blocked_worker():
    status = StreamStatus("s", "fake://s")
    queue = FrameQueue(1, DropPolicy.BLOCK)
    worker = StreamWorker(lambda: ScriptedSource(frames=100), status, queue, FAST, Pacing())
    worker.start()
    time.sleep(0.05)
    assert worker.alive
    worker.stop()
    assert worker.join(2)
    assert status.state is StreamState.STOPPED


def test_ended_waits_for_the_thread_without_an_executor_thread():
    async def scenario() -> None:
        status = StreamStatus("s", "fake://s")
        queue = FrameQueue(1, DropPolicy.BLOCK)
        worker = StreamWorker(
            lambda: ScriptedSource(frames=1000, delay_s=0.01), status, queue, FAST, Pacing()
        )
        worker.start()
        waiting = asyncio.ensure_future(worker.ended())
        await asyncio.sleep(0.05)
        assert not waiting.done()  # the thread is still reading
        before = threading.active_count()
        worker.stop()
        await asyncio.wait_for(waiting, 2)
        assert status.state is StreamState.STOPPED
        assert threading.active_count() <= before  # nothing was started to wait for it
        await asyncio.wait_for(worker.ended(), 0.1)  # already ended: returns at once

    asyncio.run(scenario())


def test_live_stream_when_queue_is_full_counts_each_dropped_frame():
    status = StreamStatus("s", "fake://s")
    queue = FrameQueue(2, DropPolicy.DROP_OLDEST)
    source = ScriptedSource(live=True, frames=10)
    worker = StreamWorker(lambda: source, status, queue, ReconnectPolicy(enabled=False), Pacing())
    worker.start()
    assert worker.join(5)
    assert drain(queue) == [8, 9]
    assert status.stats.dropped["queue_full"] == 8
    assert status.stats.frames_dropped == 8


def test_tracked_stream_passes_frames_between_inferences_marked_not_inferred():
    status, queue, _ = run(
        [ScriptedSource(frames=6)], pacing=Pacing(inference_interval=3, pass_skipped=True)
    )
    frames = []
    while (frame := queue.get_nowait()) is not None:
        frames.append((frame.frame_number, frame.infer))
    assert frames == [(0, True), (1, False), (2, False), (3, True), (4, False), (5, False)]
    assert status.stats.frames_skipped == 4


def test_drop_frame_interval_keeps_every_nth_frame_only():
    status, queue, _ = run([ScriptedSource(frames=7)], pacing=Pacing(drop_frame_interval=3))
    assert drain(queue) == [0, 3, 6]
    assert status.stats.frames_skipped == 4
