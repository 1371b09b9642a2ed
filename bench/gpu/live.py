"""The GPU benchmark's paced and unpaced live runs: the real-time search (how many 1080p30
streams are processed at 30 fps each) and the cost curve (frames/s, CPU cores and GPU memory
per stream count). Imported by bench.py (which sets up ``sys.path``)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np

from bench.gpu.emit_timer import EmitTimer
from bench.gpu.meter import (
    Meter,
    cores_between,
    gil_wait_probe,
    ring_occupancy,
    thread_cpu_seconds,
)
from bench.gpu.runs import model_busy, model_statistics, with_batch_timeout
from bench.gpu.stats import Row
from vigil.config import Settings
from vigil.job_workers import WorkerJob
from vigil.pipeline.pipeline import Pipeline
from vigil.pipeline.stream_state import StreamStatus
from vigil.runtime import Runtime, open_runtime
from vigil.specs import StreamSpec
from vigil.triton_connection import TritonConnection


class _Running:
    """Streams running in this process or in worker processes: each stream's processed
    frames with the time they were counted at, and its status."""

    def __init__(self, runtime: Runtime | None, job: WorkerJob | None) -> None:
        self.runtime, self.job = runtime, job

    def statuses(self) -> list[StreamStatus]:
        if self.job is not None:
            return list(self.job.statuses.values())
        assert self.runtime is not None
        return self.runtime.streams.statuses()

    def counts(self, counter: str = "frames_processed") -> dict[str, tuple[float, int]]:
        """Stream → (monotonic time, its ``counter`` by then: frames processed, decoded...)."""
        if self.job is not None:
            at = self.job.reported_at
            return {
                s.stream_id: (at[s.stream_id], getattr(s.stats, counter)) for s in self.statuses()
            }
        now = time.monotonic()
        return {s.stream_id: (now, getattr(s.stats, counter)) for s in self.statuses()}


@contextlib.asynccontextmanager
async def _running(
    settings: Settings,
    triton: TritonConnection,
    specs: list[StreamSpec],
    workers: int,
    *,
    before: Any = None,
) -> AsyncIterator[_Running]:
    """Run ``specs`` (in this process when ``workers`` is 1, else in worker processes) until
    the block exits; yields once every stream has processed a frame (NVDEC sessions open one
    after another; up to 60 s). ``before()`` is awaited before the streams start (in this
    process: once the runtime is open)."""
    if workers == 1:
        async with open_runtime(settings, connection=triton) as runtime:
            if before:
                await before()
            for spec in specs:
                await runtime.streams.add(spec, trusted=True)
            running = _Running(runtime, None)
            await _first_frames(running, None)
            yield running
        return
    if before:
        await before()
    job = WorkerJob(settings, specs, workers, report_s=0.1)
    run = asyncio.create_task(job.run(triton))
    try:
        running = _Running(None, job)
        await _first_frames(running, run)
        yield running
    finally:
        job.stop()
        await run


async def _first_frames(running: _Running, run: asyncio.Task[Any] | None) -> None:
    for _ in range(1200):
        statuses = running.statuses()
        if statuses and all(s.stats.frames_processed for s in statuses):
            return
        if run is not None and run.done():
            run.result()
            raise RuntimeError("the workers ended before every stream delivered a frame")
        await asyncio.sleep(0.05)


def _rates(
    before: dict[str, tuple[float, int]], after: dict[str, tuple[float, int]]
) -> list[float]:
    return [
        (after[sid][1] - n) / (after[sid][0] - t) if after[sid][0] > t else 0.0
        for sid, (t, n) in before.items()
    ]


async def realtime_check(
    settings: Settings,
    triton: TritonConnection,
    uri: str,
    streams: int,
    seconds: float,
    workers: int = 1,
    settle_s: float = 30.0,
) -> dict[str, Any]:
    """Play ``streams`` copies of the clip (``file://`` URI) at 30 fps each, in this process
    or over ``workers`` processes; per-stream processed rate over a window of ``seconds``
    that starts once the start-up backlog is processed (:func:`_start_up_over`, which says
    when; at most ``settle_s``, else ``settled`` is 0 and the window measures a backlog
    draining), and latency."""
    specs = [StreamSpec(id=f"rt-{i}", url=uri, max_fps=30.0) for i in range(streams)]
    probe: dict[str, float] = {}
    trace: list[str] = []
    async with (
        _running(settings, triton, specs, workers) as running,
        _traced(running, triton, settings.model.name, trace),
    ):
        # traced from the first frames on: the start-up, then "||" where the window begins
        settled_s, settled = await _start_up_over(running, settle_s)
        trace.append("||")
        # decoded against processed: did the sources deliver 30 fps, or the pipeline fall
        # behind? (in this process; the workers report processed frames)
        in_process = running.runtime is not None
        decoded0 = running.counts("frames_decoded") if in_process else {}
        before = running.counts()
        model0 = await model_statistics(triton, settings.model.name)
        clock0, t0 = thread_cpu_seconds(), time.perf_counter()
        with gil_wait_probe(probe):
            await asyncio.sleep(seconds)
        after = running.counts()
        # the model over the window: busy share, frames per execution (paced requests come
        # one at a time; does Triton still group them?), queue time
        served = model_busy(
            model0, await model_statistics(triton, settings.model.name), time.perf_counter() - t0
        )
        decoded1 = running.counts("frames_decoded") if in_process else {}
        cores = cores_between(clock0, thread_cpu_seconds(), time.perf_counter() - t0)
        rates = _rates(before, after)
        statuses = running.statuses()  # in this process: gone from the runtime once closed
        window = _window_latencies(statuses, before, after) if running.job is None else []
        depths = list(running.runtime.pipeline.queue_depths().values()) if running.runtime else []
    if running.job is not None:  # a worker's latency window comes with its result
        statuses = running.statuses()
    p99 = max((s.stats.latency_percentile_ms(99) or 0 for s in statuses), default=0.0)
    check: dict[str, Any] = {
        "streams": float(streams),
        "workers": float(workers),
        "min_stream_fps": min(rates),
        "mean_stream_fps": float(np.mean(rates)),
        "latency_p99_ms": p99,
        "window_after_s": round(settled_s, 2),
        "settled": float(settled),
    }
    if decoded0 and decoded1:
        decode_rates = _rates(decoded0, decoded1)
        check["min_decoded_fps"] = min(decode_rates)
        check["mean_decoded_fps"] = float(np.mean(decode_rates))
    if depths:
        check["mean_queue_depth"] = float(np.mean(depths))
    check |= {k: round(v, 2) for k, v in probe.items()}
    check |= {k: round(v, 2) for k, v in served.items()}
    if workers == 1:  # the workers' threads are in other processes
        check["thread_cores"] = str(cores)
    if trace:
        check["trace"] = " | ".join(trace)
    if window:
        check["window_p50_ms"] = float(np.percentile(window, 50) * 1000)
        check["window_p99_ms"] = float(np.percentile(window, 99) * 1000)
    return check


@contextlib.asynccontextmanager
async def _traced(
    running: _Running, triton: TritonConnection, model: str, out: list[str]
) -> AsyncIterator[None]:
    """In this process: :func:`_trace` into ``out`` and the emit chain timed
    (:class:`EmitTimer`) until the block exits, on every exit path."""
    if running.runtime is None:
        yield
        return
    timer = EmitTimer()
    with timer.installed(running.runtime.pipeline):
        sampler = asyncio.create_task(_trace(running, triton, model, out, timer))
        try:
            yield
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler


async def _trace(
    running: _Running,
    triton: TritonConnection,
    model: str,
    out: list[str],
    timer: EmitTimer,
    step_s: float = 0.5,
) -> None:
    """Every ``step_s`` of a real-time check (in this process), one entry: frames
    processed per second, frames waiting per stream, ring slots in use / requests sent and
    not emitted / of them done, objects detected per frame (``d``), the model's frames per
    execution and busy share, the cores of the stage thread and the event loop, and the emit
    chain's per-batch timings (:class:`EmitTimer`). Where a check falls behind, this says
    whether the model waited for Vigil or Vigil for the model, and what the emit chain waited
    for."""
    assert running.runtime is not None
    pipeline = running.runtime.pipeline
    last_t, last_n = time.perf_counter(), sum(n for _, n in running.counts().values())
    last_model, last_clock = await model_statistics(triton, model), thread_cpu_seconds()
    last_found = _objects_found(running)
    while True:
        await asyncio.sleep(step_s)
        now, n = time.perf_counter(), sum(n for _, n in running.counts().values())
        found = _objects_found(running)
        model_now, clock = await model_statistics(triton, model), thread_cpu_seconds()
        served = model_busy(last_model, model_now, now - last_t)
        cores = cores_between(last_clock, clock, now - last_t)
        depths = list(pipeline.queue_depths().values())
        held = ring_occupancy(pipeline)
        occupancy = "?" if held is None else "/".join(map(str, held))
        out.append(
            f"{(n - last_n) / (now - last_t):.0f} fps q{np.mean(depths) if depths else 0:.1f} "
            f"s{occupancy} d{(found - last_found) / max(n - last_n, 1):.1f} "
            f"f{served.get('frames_per_execution', 0):.0f} "
            f"b{served.get('model_busy', 0):.2f} "
            f"st{cores.get('stages', 0):.2f} mt{cores.get('MainThread', 0):.2f} "
            f"{timer.take()}"
        )
        last_t, last_n, last_model, last_clock = now, n, model_now, clock
        last_found = found


def _objects_found(running: _Running) -> int:
    """Objects detected so far over the running streams (the parser's output, counted per
    frame before tracking): per processed frame, the work the stages get."""
    return sum(sum(s.stats.detections.values()) for s in running.statuses())


async def _start_up_over(running: _Running, limit_s: float) -> tuple[float, bool]:
    """Wait until the streams' start-up backlog is processed; seconds waited (at least 2),
    and whether it was (False: ``limit_s`` ran out first).

    Every stream starts with frames that queued while the NVDEC sessions were created (~65 ms
    each, one after another, during which the other streams' frames wait). In this process
    the start-up is over once every stream's newest frame was processed within a second of
    its capture and the queues hold under a frame per stream on average; at most
    ``limit_s``. Worker processes: 2 s."""
    started = time.perf_counter()
    await asyncio.sleep(2.0)
    if running.runtime is None:
        return 2.0, True
    pipeline = running.runtime.pipeline
    while time.perf_counter() - started < limit_s:
        newest = [s.stats.latencies_s.values()[-1:] for s in running.statuses()]
        depths = list(pipeline.queue_depths().values())
        if depths and float(np.mean(depths)) < 1.0 and all(n and n[0] < 1.0 for n in newest):
            return time.perf_counter() - started, True
        await asyncio.sleep(0.25)
    return time.perf_counter() - started, False


def _window_latencies(
    statuses: list[StreamStatus],
    before: dict[str, tuple[float, int]],
    after: dict[str, tuple[float, int]],
) -> list[float]:
    """In this process: the latencies (s) of the frames processed inside the check's window,
    the newest of each stream's latency window (``latency_p99_ms`` covers each stream's whole
    run, its start-up backlog included)."""
    latencies: list[float] = []
    for status in statuses:
        sid = status.stream_id
        new = after[sid][1] - before[sid][1] if sid in before and sid in after else 0
        if new > 0:
            latencies.extend(status.stats.latencies_s.values()[-new:])
    return latencies


async def cost_point(
    settings: Settings,
    triton: TritonConnection,
    meter: Meter,
    uri: str,
    streams: int,
    args: argparse.Namespace,
    workers: int = 1,
) -> dict[str, float]:
    """One point of the cost curve: ``streams`` copies of the clip, unpaced, in this process
    or over ``workers`` processes; over a window after every stream delivered its first
    frame (+1 s): frames/s of all streams, CPU cores (Vigil, its workers and Triton), GPU
    memory in use on the device (NVML) and what the streams added to it (against the
    runtime with no stream; this includes the pipeline's first-batch allocations, so the
    marginal cost between two points is the cleaner per-stream figure) per stream, and how
    the model was served (:func:`model_busy`)."""
    specs = [StreamSpec(id=f"cost-{i}", url=uri) for i in range(streams)]
    memory0 = 0

    async def before() -> None:
        nonlocal memory0
        await asyncio.sleep(0.5)
        memory0 = meter.gpu_memory_used()  # Triton's instances (and our ring); no stream yet

    async with _running(settings, triton, specs, workers, before=before) as running:
        await asyncio.sleep(1.0)
        row = Row("", 0, 0)
        with meter.measure(row):
            counted = running.counts()
            model0, t0 = await model_statistics(triton, settings.model.name), time.perf_counter()
            await asyncio.sleep(args.cost_seconds)
            fps = sum(_rates(counted, running.counts()))
            memory = meter.gpu_memory_used()
            served = model_busy(
                model0,
                await model_statistics(triton, settings.model.name),
                time.perf_counter() - t0,
            )
    return {k: round(v, 2) for k, v in served.items()} | {
        "streams": float(streams),
        "workers": float(workers),
        "fps": fps,
        "cpu_cores": row.cpu_cores or 0.0,
        "gpu_util": row.gpu_util or 0.0,
        "gpu_mib_used": memory / 2**20,
        "gpu_mib_per_stream": (memory - memory0) / streams / 2**20,
    }


async def realtime_search(
    settings: Settings, triton: TritonConnection, uri: str, start: int, args: argparse.Namespace
) -> dict[str, Any]:
    """The most 1080p30 streams sustained in real time: from ``start``, 10 % fewer until
    every stream is processed at ≥ 29.5 fps, then that count checked ``repeats - 1`` more
    times; it counts as sustained only when every check passes (else the search goes on below
    it). ``args.rt_tries`` checks in all at most."""
    tries: list[dict[str, Any]] = []
    streams = start
    while len(tries) < args.rt_tries:
        checks = []
        for _ in range(args.repeats):
            if len(tries) >= args.rt_tries:
                break
            rt = await realtime_check(
                settings, triton, uri, streams, args.rt_seconds, args.rt_workers, args.rt_settle_s
            )
            print(f"# real-time check: {rt}", flush=True)
            tries.append(rt)
            checks.append(rt)
            if rt["min_stream_fps"] < 29.5:
                break
        if all(c["min_stream_fps"] >= 29.5 for c in checks) and len(checks) == args.repeats:
            return {"sustained": streams, "tries": tries, "checks": checks}
        streams = max(1, math.floor(streams * 0.9))
    return {"sustained": 0, "tries": tries, "checks": []}


async def realtime_at(
    settings: Settings, triton: TritonConnection, uri: str, args: argparse.Namespace
) -> list[dict[str, Any]]:
    """One real-time check at each of ``args.rt_at``'s points, in order, whatever each gives
    (a diagnosis beside the search: how the pipeline and the model behave just below and
    above the target). A point is a stream count with options joined by ``+``: ``overlap``
    (:attr:`Pipeline.overlap_stages`), ``switch=S`` (the interpreter's GIL switch interval,
    5 ms by default), ``seconds=S`` (the window; else ``args.rt_seconds``, 5 s when that is
    0), ``workers=N`` (worker processes; else ``args.rt_workers``), ``timeout=MS`` (the
    batch timeout). Example: ``66,66+switch=0.02,66+seconds=30,66+workers=2+timeout=40``."""
    checks = []
    for point in args.rt_at:
        count, *options = point.split("+")
        values = dict(option.partition("=")[::2] for option in options)
        window_s = float(values.get("seconds") or args.rt_seconds or 5.0)
        workers = int(values.get("workers") or args.rt_workers)
        point_settings = with_batch_timeout(settings, float(values.get("timeout") or 0))
        switch = sys.getswitchinterval()
        Pipeline.overlap_stages = "overlap" in values
        if values.get("switch"):
            sys.setswitchinterval(float(values["switch"]))
        try:
            rt: dict[str, Any] = await realtime_check(
                point_settings, triton, uri, int(count), window_s, workers, args.rt_settle_s
            )
        finally:
            Pipeline.overlap_stages = False
            sys.setswitchinterval(switch)
        rt["point"] = point
        print(f"# real-time check at {point}: {rt}", flush=True)
        checks.append(rt)
    return checks
