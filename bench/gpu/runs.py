"""The GPU benchmark's full-pipeline measurements: (c) through ``vigil run``'s code path, its
diagnostics (CUPTI copies, py-spy, cProfile), the real-time check and the cost curve. Imported
by bench.py (which sets up ``sys.path``)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from bench.gpu.meter import Meter, cores_between, gil_wait_probe, thread_cpu_seconds
from bench.gpu.stats import Row
from vigil.config import Settings
from vigil.infer import cuda_shm
from vigil.job_workers import WorkerJob
from vigil.jobs import run_streams
from vigil.pipeline.stream_state import StreamStatus
from vigil.runtime import Runtime, open_runtime
from vigil.sources.nvdec_pool import DECODERS
from vigil.specs import StreamSpec
from vigil.triton_connection import TritonConnection


def with_slots(settings: Settings, slots: int | None) -> Settings:
    """``settings`` with ``slots`` requests in flight (ring slots); None: unchanged."""
    if slots is None:
        return settings
    pipeline = settings.pipeline.model_copy(update={"inflight_requests": slots})
    return settings.model_copy(update={"pipeline": pipeline})


# --- (c) the full pipeline ------------------------------------------------------------------


def pipeline_settings(base: Settings, args: argparse.Namespace, events: Path) -> Settings:
    return base.model_copy(
        update={
            "pipeline": base.pipeline.model_copy(
                update={
                    "max_batch_size": args.batch,
                    "inflight_requests": args.inflight,
                    "queue_size": args.queue,
                    "batch_timeout_ms": 20.0,
                }
            ),
            "events": base.events.model_copy(update={"jsonl_path": events}),
        }
    )


async def full_pipeline(
    settings: Settings, triton: TritonConnection, specs: list[StreamSpec]
) -> tuple[Row, dict[str, float | str]]:
    """``vigil run``'s code path on the streams; frames/s over the whole run and the steady
    part (from 10 % to 90 % of the frames)."""
    samples: list[tuple[float, int]] = []
    clocks: list[tuple[float, dict[str, float]]] = []  # CPU seconds per thread group, every 0.5 s
    occupancy: list[tuple[int, int, int]] = []  # (slots in use, requests awaiting emit, done)
    # start-up: seconds from the first sample until each stream decoded / was processed
    first_decoded: dict[str, float] = {}
    first_processed: dict[str, float] = {}
    tasks: list[asyncio.Task[None]] = []
    runtimes: list[Any] = []

    def on_start(runtime: Any) -> None:
        runtimes.append(runtime)
        statuses = [m.status for m in runtime.streams.list()]
        pipeline = runtime.pipeline

        async def sample() -> None:
            t0 = time.perf_counter()
            while True:
                total = sum(s.stats.frames_processed for s in statuses)
                samples.append((time.perf_counter(), total))
                if len(samples) % 5 == 1:
                    clocks.append((time.perf_counter(), thread_cpu_seconds()))
                for _ in range(20):  # where the ring's slots are, every 5 ms
                    if len(first_processed) < len(statuses):
                        _firsts(statuses, time.perf_counter() - t0, first_decoded, first_processed)
                    with contextlib.suppress(Exception):  # internals: never stop the sampler
                        ring = pipeline.route.ring
                        pending = [p for p in pipeline._pending._queue if p is not None]
                        done = sum(1 for p in pending if p.task is not None and p.task.done())
                        occupancy.append((len(ring.slots) - ring.free_slots, len(pending), done))
                    await asyncio.sleep(0.005)

        tasks.append(asyncio.create_task(sample()))

    bytes0, copies0 = cuda_shm.TRANSFERS.bytes, cuda_shm.TRANSFERS.copies
    reused0 = DECODERS.reused
    model_stats0 = await _model_statistics(triton, settings.model.name)
    result = await run_streams(settings, specs, connection=triton, on_start=on_start)
    model_stats = await _model_statistics(triton, settings.model.name)
    for task in tasks:
        task.cancel()
    processed = sum(s.stats.frames_processed for s in result.streams.values())
    failed = [f"{s.stream_id}: {s.reason}" for s in result.failed]
    if failed:
        raise RuntimeError(f"streams failed: {failed}")
    window_frames, window_s = _steady_window(samples, processed)
    steady = window_frames / window_s if window_s else 0.0
    timeline = _timeline(samples, processed)
    p50 = max(s.stats.latency_percentile_ms(50) or 0 for s in result.streams.values())
    p99 = max(s.stats.latency_percentile_ms(99) or 0 for s in result.streams.values())
    d2h = cuda_shm.TRANSFERS.bytes - bytes0
    extra: dict[str, float | str] = {
        "steady_fps": steady,
        "steady_frames": float(window_frames),
        "steady_seconds": window_s,
        "events": float(result.events_written),
        "latency_p50_ms": p50,
        "latency_p99_ms": p99,
        "d2h_bytes_per_frame": d2h / max(processed, 1),
        "d2h_copies": float(cuda_shm.TRANSFERS.copies - copies0),
    }
    extra["timeline"] = str(timeline)
    extra |= _steady_thread_cores(samples, clocks, processed)
    extra |= _model_busy(model_stats0, model_stats, result.elapsed_s)
    if first_processed:
        extra["startup"] = (
            f"start-up: streams decoding from {min(first_decoded.values()):.2f} s, all by "
            f"{max(first_decoded.values()):.2f} s; first processed at "
            f"{min(first_processed.values()):.2f} s, all by {max(first_processed.values()):.2f} s"
            # a run after the first finds the decoders of the run before idle (nvdec_pool)
            f"; NVDEC decoders reused {DECODERS.reused - reused0} of {len(specs)}"
        )
    if occupancy:
        in_use, waiting, done = (float(np.mean(column)) for column in zip(*occupancy, strict=True))
        extra |= {"slots_busy": in_use, "requests_queued": waiting, "requests_done": done}
    if runtimes:
        metrics = runtimes[0].metrics
        for name, histogram in (
            ("request_ms", metrics.request_seconds),
            ("batch", metrics.batch_size),
        ):
            total, count = _histogram_sum_count(histogram)
            scale = 1000.0 if name == "request_ms" else 1.0
            extra[f"mean_{name}"] = total / count * scale if count else 0.0
    row = Row(
        f"(c) full Vigil pipeline ({len(specs)} streams → events)",
        processed,
        result.elapsed_s,
        extra=extra,
    )
    return row, extra


def _firsts(
    statuses: list[StreamStatus],
    now: float,
    decoded: dict[str, float],
    processed: dict[str, float],
) -> None:
    """Note ``now`` for every stream that has just decoded / had processed its first frame."""
    for status in statuses:
        sid = status.stream_id
        if sid not in decoded and status.stats.frames_decoded:
            decoded[sid] = now
        if sid not in processed and status.stats.frames_processed:
            processed[sid] = now


def _histogram_sum_count(histogram: Any) -> tuple[float, float]:
    values = {s.name: s.value for m in histogram.collect() for s in m.samples}
    return next((v for k, v in values.items() if k.endswith("_sum")), 0.0), next(
        (v for k, v in values.items() if k.endswith("_count")), 0.0
    )


async def full_pipeline_workers(
    settings: Settings, triton: TritonConnection, specs: list[StreamSpec], workers: int
) -> tuple[Row, dict[str, float | str]]:
    """(c) as ``vigil run --workers`` runs it: the streams dealt over ``workers`` processes
    sharing this process's Triton; frames/s over the whole run (from the moment every
    worker's streams start together) and the steady part, from the workers' reports."""
    job = WorkerJob(settings, specs, workers, report_s=0.1)
    result = await job.run(triton)
    processed = sum(s.stats.frames_processed for s in result.streams.values())
    failed = [f"{s.stream_id}: {s.reason}" for s in result.failed]
    if failed:
        raise RuntimeError(f"streams failed: {failed}")
    samples = job.progress.samples
    statuses = list(result.streams.values())
    window_frames, window_s = _steady_window(samples, processed)
    extra: dict[str, float | str] = {
        "workers": float(len(job.shares)),
        "steady_fps": window_frames / window_s if window_s else 0.0,
        "steady_frames": float(window_frames),
        "steady_seconds": window_s,
        "events": float(result.events_written),
        "latency_p50_ms": max(s.stats.latency_percentile_ms(50) or 0 for s in statuses),
        "latency_p99_ms": max(s.stats.latency_percentile_ms(99) or 0 for s in statuses),
        "timeline": str(_timeline(samples, processed)),
    }
    name = f"(c) full pipeline ({len(specs)} streams, {workers} worker processes)"
    return Row(name, processed, result.elapsed_s, extra=extra), extra


def _steady_thread_cores(
    samples: list[tuple[float, int]], clocks: list[tuple[float, dict[str, float]]], total: int
) -> dict[str, str]:
    """Cores each thread group used over the snapshots nearest the steady window (10 % → 90 %
    of the frames): which thread is saturated while the model is fed."""
    lo = next((t for t, n in samples if n >= 0.1 * total), None)
    hi = next((t for t, n in samples if n >= 0.9 * total), None)
    if lo is None or hi is None or len(clocks) < 2:
        return {}
    first = min(clocks, key=lambda c: abs(c[0] - lo))
    last = min(clocks, key=lambda c: abs(c[0] - hi))
    if last[0] <= first[0]:
        return {}
    return {"thread_cores": str(cores_between(first[1], last[1], last[0] - first[0]))}


async def _model_statistics(triton: TritonConnection, name: str) -> dict[str, Any]:
    with contextlib.suppress(Exception):  # diagnostics only
        stats = await triton.client.statistics(name)
        return dict(stats["model_stats"][0])
    return {}


def _model_busy(before: dict[str, Any], after: dict[str, Any], wall_s: float) -> dict[str, float]:
    """From Triton's statistics over the run: the share of the wall time the model was
    executing (one instance), and frames per execution (3 full requests: 96). Nothing when
    the model was loaded again during the run (its counts restart)."""
    if not before or not after or not wall_s:
        return {}

    def delta(*path: str) -> float:
        a, b = before, after
        for key in path:
            a, b = a.get(key, {}), b.get(key, {})
        return float(b or 0) - float(a or 0)

    executions, requests = delta("execution_count"), delta("inference_stats", "success", "count")
    if executions <= 0 or requests <= 0:
        return {}
    return {
        # every request of an execution is charged the execution's compute time
        "model_busy": delta("inference_stats", "compute_infer", "ns")
        / 1e9
        * (executions / requests)
        / wall_s,
        "model_queue_ms": delta("inference_stats", "queue", "ns")
        / 1e6
        / max(delta("inference_stats", "queue", "count"), 1),
        "frames_per_execution": delta("inference_count") / executions if executions else 0.0,
    }


def _timeline(samples: list[tuple[float, int]], total: int) -> dict[str, float]:
    """Seconds from the first sample until 1 %, 10 %, … of the frames were done."""
    timeline: dict[str, float] = {}
    if samples:
        t0 = samples[0][0]
        for share in (0.01, 0.1, 0.5, 0.9, 0.99, 1.0):
            hit = next((t for t, n in samples if n >= share * total), samples[-1][0])
            timeline[f"t{share:.0%}"] = round(hit - t0, 2)
    return timeline


def _steady_window(samples: list[tuple[float, int]], total: int) -> tuple[int, float]:
    """Frames and seconds from 10 % to 90 % of the frames (start and teardown left out)."""
    lo = next((s for s in samples if s[1] >= 0.1 * total), None)
    hi = next((s for s in samples if s[1] >= 0.9 * total), None)
    if lo is None or hi is None or hi[0] <= lo[0]:
        return 0, 0.0
    return hi[1] - lo[1], hi[0] - lo[0]


async def cupti_copies(
    settings: Settings, triton: TritonConnection, specs: list[StreamSpec], trace: Path
) -> dict[str, float]:
    """Every CUDA memcpy in this process during a short pipeline run, by direction (CUPTI
    through torch.profiler): proof that no pixels go device → host."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        result = await run_streams(settings, specs, connection=triton)
    prof.export_chrome_trace(str(trace))
    frames = sum(s.stats.frames_processed for s in result.streams.values())
    totals: dict[str, float] = {"frames": float(frames)}
    for event in json.loads(trace.read_text()).get("traceEvents", []):  # noqa: ASYNC240
        if event.get("cat") != "gpu_memcpy":
            continue
        name = event.get("name", "")
        kind = next((k for k in ("DtoH", "HtoD", "DtoD", "HtoH", "PtoP") if k in name), name)
        totals[f"{kind}_bytes"] = totals.get(f"{kind}_bytes", 0.0) + float(
            event.get("args", {}).get("bytes", 0)
        )
    return totals


@contextlib.contextmanager
def sampled_by_pyspy(output: Path | None) -> Iterator[None]:
    """Sample every thread of this process with py-spy while the block runs (``output``:
    collapsed stacks, only samples holding the GIL, per thread); nothing when ``None``.

    The GIL-holding samples show where the Python time of a GIL-bound pipeline goes, across
    the decoder threads, the event loop and the preprocessing thread (cProfile sees one).
    """
    if output is None:
        yield
        return
    binary = shutil.which("py-spy") or str(Path(sys.prefix) / "bin" / "py-spy")
    # let a child trace us under Yama's ptrace_scope=1 (PR_SET_PTRACER, any process)
    import ctypes

    ctypes.CDLL(None).prctl(0x59616D61, ctypes.c_ulong(-1), 0, 0, 0)
    command = [binary, "record", "--pid", str(os.getpid()), "--gil", "--threads", "--nonblocking"]
    command += ["--rate", "200", "--format", "raw", "--output", str(output)]
    spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        try:
            _, err = spy.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            spy.kill()
            _, err = spy.communicate()
        print(f"# py-spy: {err.strip().splitlines()[-1:] or 'done'} → {output}", flush=True)


async def profile_pipeline(
    settings: Settings, triton: TritonConnection, specs: list[StreamSpec]
) -> list[str]:
    """Where the event loop's time goes during a (c) run (cProfile of this thread only: the
    decoder threads are not in it); the 25 functions with the most own time."""
    import cProfile
    import io
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    await run_streams(settings, specs, connection=triton)
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(25)
    lines = [line for line in text.getvalue().splitlines() if line.strip()]
    print("\n".join(lines[:40]), flush=True)
    return lines


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

    def counts(self) -> dict[str, tuple[float, int]]:
        """Stream → (monotonic time, frames processed by then)."""
        if self.job is not None:
            at = self.job.reported_at
            return {
                s.stream_id: (at[s.stream_id], s.stats.frames_processed) for s in self.statuses()
            }
        now = time.monotonic()
        return {s.stream_id: (now, s.stats.frames_processed) for s in self.statuses()}


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
) -> dict[str, float]:
    """Play ``streams`` copies of the clip (``file://`` URI) at 30 fps each, in this process
    or over ``workers`` processes; per-stream processed rate over a window that starts 2 s
    after every stream delivered a frame, and latency."""
    specs = [StreamSpec(id=f"rt-{i}", url=uri, max_fps=30.0) for i in range(streams)]
    probe: dict[str, float] = {}
    async with _running(settings, triton, specs, workers) as running:
        await asyncio.sleep(2.0)
        before, decoded0 = running.counts(), _decoded(running)
        clock0, t0 = thread_cpu_seconds(), time.perf_counter()
        with gil_wait_probe(probe):
            await asyncio.sleep(seconds)
        after, decoded1 = running.counts(), _decoded(running)
        cores = cores_between(clock0, thread_cpu_seconds(), time.perf_counter() - t0)
        rates = _rates(before, after)
        statuses = running.statuses()  # in this process: gone from the runtime once closed
        window = _window_latencies(statuses, before, after) if running.job is None else []
        depths = list(running.runtime.pipeline.queue_depths().values()) if running.runtime else []
    if running.job is not None:  # a worker's latency window comes with its result
        statuses = running.statuses()
    p99 = max((s.stats.latency_percentile_ms(99) or 0 for s in statuses), default=0.0)
    check = {
        "streams": float(streams),
        "workers": float(workers),
        "min_stream_fps": min(rates),
        "mean_stream_fps": float(np.mean(rates)),
        "latency_p99_ms": p99,
    }
    if decoded0 and decoded1:  # did the sources deliver 30 fps, or the pipeline fall behind?
        decode_rates = _rates(decoded0, decoded1)
        check["min_decoded_fps"] = min(decode_rates)
        check["mean_decoded_fps"] = float(np.mean(decode_rates))
    if depths:
        check["mean_queue_depth"] = float(np.mean(depths))
    check |= {k: round(v, 2) for k, v in probe.items()}
    if workers == 1:  # the workers' threads are in other processes
        check["thread_cores"] = str(cores)
    if window:
        check["window_p50_ms"] = float(np.percentile(window, 50) * 1000)
        check["window_p99_ms"] = float(np.percentile(window, 99) * 1000)
    return check


def _decoded(running: _Running) -> dict[str, tuple[float, int]]:
    """In this process: (now, frames decoded) per stream, like ``running.counts()``."""
    if running.runtime is None:
        return {}
    now = time.perf_counter()
    return {s.stream_id: (now, s.stats.frames_decoded) for s in running.statuses()}


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
    marginal cost between two points is the cleaner per-stream figure) per stream."""
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
            await asyncio.sleep(args.cost_seconds)
            fps = sum(_rates(counted, running.counts()))
            memory = meter.gpu_memory_used()
    return {
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
    tries: list[dict[str, float]] = []
    streams = start
    while len(tries) < args.rt_tries:
        checks = []
        for _ in range(args.repeats):
            if len(tries) >= args.rt_tries:
                break
            rt = await realtime_check(
                settings, triton, uri, streams, args.rt_seconds, args.rt_workers
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
