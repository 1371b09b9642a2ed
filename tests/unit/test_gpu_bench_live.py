"""The GPU benchmark's real-time logic (bench/gpu/live.py) and emit-chain timer
(bench/gpu/emit_timer.py), which need no GPU: how checks are chosen and configured, and what
the timer records. The checks themselves are faked here; they run on the GPU machine."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import pytest

from bench.gpu import live
from bench.gpu.emit_timer import EmitTimer
from bench.gpu.meter import ring_occupancy
from vigil.config import Settings
from vigil.pipeline import pipeline as pipeline_module
from vigil.pipeline.pipeline import Pipeline


def args(**values: Any) -> argparse.Namespace:
    defaults = {"rt_at": [], "rt_seconds": 5.0, "rt_workers": 1, "rt_settle_s": 30.0}
    defaults |= {"rt_tries": 6, "repeats": 3}
    return argparse.Namespace(**(defaults | values))


@pytest.fixture
def checks(monkeypatch):
    """Replace the check with a fake whose slowest stream gets ``capacity / streams`` fps;
    record each call's arguments and the pipeline settings it ran under."""
    calls: list[dict[str, Any]] = []
    capacity = {"fps": 2000.0}

    async def fake(settings, triton, uri, streams, seconds, workers=1, settle_s=30.0):
        calls.append(
            {
                "streams": streams,
                "seconds": seconds,
                "settle_s": settle_s,
                "overlap": Pipeline.overlap_stages,
                "switch": sys.getswitchinterval(),
                "workers": workers,
                "timeout_ms": settings.pipeline.batch_timeout_ms if settings else None,
            }
        )
        return {"streams": float(streams), "min_stream_fps": capacity["fps"] / streams}

    monkeypatch.setattr(live, "realtime_check", fake)
    return calls, capacity


async def test_points_carry_their_options_and_restore_the_settings(checks):
    calls, _ = checks
    switch = sys.getswitchinterval()
    done = await live.realtime_at(
        None, None, "file:///clip.mp4",
        args(rt_at=["66", "66+overlap+switch=0.02", "72+seconds=20"], rt_seconds=0.0),
    )  # fmt: skip
    assert [c["point"] for c in done] == ["66", "66+overlap+switch=0.02", "72+seconds=20"]
    assert [(c["streams"], c["seconds"]) for c in calls] == [(66, 5.0), (66, 5.0), (72, 20.0)]
    assert [c["overlap"] for c in calls] == [False, True, False]
    assert calls[1]["switch"] == pytest.approx(0.02)
    assert calls[0]["switch"] == calls[2]["switch"] == switch
    assert all(c["settle_s"] == 30.0 for c in calls)
    assert Pipeline.overlap_stages is False
    assert sys.getswitchinterval() == switch
    assert all(c["workers"] == 1 for c in calls)


async def test_points_choose_worker_processes_and_the_batch_timeout(checks):
    calls, _ = checks
    settings = Settings()
    done = await live.realtime_at(
        settings, None, "file:///clip.mp4", args(rt_at=["66+workers=2+timeout=40", "66"])
    )
    assert len(done) == 2
    assert [(c["workers"], c["timeout_ms"]) for c in calls] == [
        (2, 40.0),
        (1, settings.pipeline.batch_timeout_ms),
    ]
    assert settings.pipeline.batch_timeout_ms != 40.0  # the caller's settings untouched


async def test_the_search_confirms_a_count_with_every_check_or_goes_10_percent_lower(checks):
    calls, capacity = checks
    capacity["fps"] = 66 * 29.6  # 66 passes (29.6 fps), 72 does not (27.1)
    found = await live.realtime_search(None, None, "file:///clip.mp4", 72, args(rt_tries=6))
    assert found["sustained"] == 64  # 72 fails once; 72 × 0.9 = 64 passes 3 checks
    assert [c["streams"] for c in calls] == [72, 64, 64, 64]
    capacity["fps"] = 100.0
    calls.clear()
    found = await live.realtime_search(None, None, "file:///clip.mp4", 10, args(rt_tries=2))
    assert found["sustained"] == 0
    assert len(found["tries"]) == 2


class FakeSlot:
    pass


class FakeClient:
    async def infer(self, model: Any, slot: Any, batch: int) -> None:
        await asyncio.sleep(0.01)


class FakeBatch:
    def __init__(self, slot: Any) -> None:
        self.slot = slot


async def test_emit_timer_times_a_batch_from_its_request_end_and_unwraps_on_exit(monkeypatch):
    """The wait from a request's end to its parse, and the parse's wall time, per batch; the
    pipeline's functions and the client's infer are the originals again after the block."""
    parsed = []
    monkeypatch.setattr(
        pipeline_module, "parse_and_release", lambda loop, batch: parsed.append(batch) or []
    )
    monkeypatch.setattr(pipeline_module, "run_stages", lambda chain, taps, route, results: [])
    original = pipeline_module.parse_and_release
    pipeline = argparse.Namespace(client=FakeClient())
    timer = EmitTimer()
    slot = FakeSlot()
    with timer.installed(pipeline):
        assert pipeline_module.parse_and_release is not original
        await pipeline.client.infer(None, slot, 32)
        await asyncio.sleep(0.02)
        pipeline_module.parse_and_release(None, FakeBatch(slot))
        pipeline_module.run_stages(None, None, None, [])
        text = timer.take()
    assert pipeline_module.parse_and_release is original
    assert "infer" not in vars(pipeline.client)  # the instance's wrapper is gone again
    assert len(parsed) == 1
    parse = text.split("parse ")[1].split()[0]
    wait_ms = float(parse.split("/")[0])
    assert 15.0 <= wait_ms < 1000.0, text
    assert "stages " in text
    assert timer.take() == ""


async def test_ring_occupancy_counts_slots_sent_and_finished_requests_and_never_raises():
    loop = asyncio.get_running_loop()
    finished, running = loop.create_future(), loop.create_future()
    finished.set_result(None)
    sent = [argparse.Namespace(task=finished), argparse.Namespace(task=running), None]
    ring = argparse.Namespace(slots=[0] * 9, free_slots=7)
    queue = argparse.Namespace(_queue=sent)
    pipeline = argparse.Namespace(route=argparse.Namespace(ring=ring), _pending=queue)
    assert ring_occupancy(pipeline) == (2, 2, 1)
    assert ring_occupancy(argparse.Namespace()) is None  # internals changed: no sample
