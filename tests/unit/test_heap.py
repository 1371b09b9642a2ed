import asyncio
import threading
from pathlib import Path

import numpy as np
import pytest

from vigil import heap


def _rss_mb() -> float:
    status = Path("/proc/self/status").read_text()
    line = next(x for x in status.splitlines() if x.startswith("VmRSS"))
    return int(line.split()[1]) / 1024


@pytest.mark.skipif(heap._TRIM is None, reason="no glibc malloc_trim here")
def test_trim_heap_gives_back_the_pages_of_freed_frames():
    """What a burst of frames leaves behind in a thread's arena is released by the trim."""
    seen: dict[str, float] = {}

    def burst() -> None:
        np.ones(1_300_000, np.uint8)  # freed: glibc raises its mmap threshold past a frame
        frames = [np.ones(1_300_000, np.uint8) for _ in range(64)]  # now from the arena
        last = frames[-1]  # the arena's top stays in use, as in a running pipeline
        del frames
        seen["before"] = _rss_mb()
        seen["released"] = heap.trim_heap()
        seen["after"] = _rss_mb()
        del last

    thread = threading.Thread(target=burst)
    thread.start()
    thread.join()
    assert seen["released"] is True
    assert seen["before"] - seen["after"] > 40, seen  # 63 freed frames are 82 MB


def test_trim_heap_is_a_no_op_without_glibc(monkeypatch):
    monkeypatch.setattr(heap, "_TRIM", None)
    assert heap.trim_heap() is False


def test_heap_trimmer_trims_periodically_and_stops():
    async def run() -> int:
        trimmer = heap.HeapTrimmer(0.01)
        trimmer.start()
        await asyncio.sleep(0.2)
        await trimmer.close()
        after = trimmer.trims
        await asyncio.sleep(0.05)
        assert trimmer.trims == after  # stopped
        return after

    trims = asyncio.run(run())
    assert trims >= (3 if heap._TRIM is not None else 0)
