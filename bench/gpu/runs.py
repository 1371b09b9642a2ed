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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from bench.gpu.meter import Meter
from bench.gpu.stats import Row
from vigil.config import Settings
from vigil.infer import cuda_shm
from vigil.jobs import run_streams
from vigil.pipeline.stream_state import StreamStatus
from vigil.runtime import Runtime, open_runtime
from vigil.specs import StreamSpec
from vigil.triton_connection import TritonConnection

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
    occupancy: list[tuple[int, int, int]] = []  # (slots in use, requests awaiting emit, done)
    tasks: list[asyncio.Task[None]] = []
    runtimes: list[Any] = []
    timeline: dict[str, float] = {}

    def on_start(runtime: Any) -> None:
        runtimes.append(runtime)
        statuses = [m.status for m in runtime.streams.list()]
        pipeline = runtime.pipeline

        async def sample() -> None:
            while True:
                total = sum(s.stats.frames_processed for s in statuses)
                samples.append((time.perf_counter(), total))
                for _ in range(20):  # where the ring's slots are, every 5 ms
                    with contextlib.suppress(Exception):  # internals: never stop the sampler
                        ring = pipeline.route.ring
                        pending = [p for p in pipeline._pending._queue if p is not None]
                        done = sum(1 for p in pending if p.task is not None and p.task.done())
                        occupancy.append((len(ring.slots) - ring.free_slots, len(pending), done))
                    await asyncio.sleep(0.005)

        tasks.append(asyncio.create_task(sample()))

    bytes0, copies0 = cuda_shm.TRANSFERS.bytes, cuda_shm.TRANSFERS.copies
    result = await run_streams(settings, specs, connection=triton, on_start=on_start)
    for task in tasks:
        task.cancel()
    processed = sum(s.stats.frames_processed for s in result.streams.values())
    failed = [f"{s.stream_id}: {s.reason}" for s in result.failed]
    if failed:
        raise RuntimeError(f"streams failed: {failed}")
    window_frames, window_s = _steady_window(samples, processed)
    steady = window_frames / window_s if window_s else 0.0
    if samples:  # seconds from the first sample until 1 %, 10 %, … of the frames were done
        t0 = samples[0][0]
        for share in (0.01, 0.1, 0.5, 0.9, 0.99, 1.0):
            hit = next((t for t, n in samples if n >= share * processed), samples[-1][0])
            timeline[f"t{share:.0%}"] = round(hit - t0, 2)
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


def _histogram_sum_count(histogram: Any) -> tuple[float, float]:
    values = {s.name: s.value for m in histogram.collect() for s in m.samples}
    return next((v for k, v in values.items() if k.endswith("_sum")), 0.0), next(
        (v for k, v in values.items() if k.endswith("_count")), 0.0
    )


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


async def _add_and_settle(
    runtime: Runtime, specs: list[StreamSpec], *, poll_s: float, settle_s: float
) -> list[StreamStatus]:
    """Add ``specs`` to ``runtime``; once every stream has processed a frame (NVDEC
    sessions open one after another; polled every ``poll_s`` for up to 30 s), ``settle_s``
    more. Returns the streams' statuses."""
    for spec in specs:
        await runtime.streams.add(spec, trusted=True)
    statuses = [m.status for m in runtime.streams.list()]
    for _ in range(round(30 / poll_s)):
        if all(s.stats.frames_processed for s in statuses):
            break
        await asyncio.sleep(poll_s)
    await asyncio.sleep(settle_s)
    return statuses


async def realtime_check(
    settings: Settings, triton: TritonConnection, uri: str, streams: int, seconds: float
) -> dict[str, float]:
    """Play ``streams`` copies of the clip (``file://`` URI) at 30 fps each; per-stream
    processed rate over the last part of the window, and latency."""
    specs = [StreamSpec(id=f"rt-{i}", url=uri, max_fps=30.0) for i in range(streams)]
    async with open_runtime(settings, connection=triton) as runtime:
        statuses = await _add_and_settle(runtime, specs, poll_s=0.1, settle_s=2.0)
        before = [s.stats.frames_processed for s in statuses]
        t0 = time.perf_counter()
        await asyncio.sleep(seconds)
        elapsed = time.perf_counter() - t0
        after = [s.stats.frames_processed for s in statuses]
        rates = [(b - a) / elapsed for a, b in zip(before, after, strict=True)]
        p99 = max(s.stats.latency_percentile_ms(99) or 0 for s in statuses)
    return {
        "streams": float(streams),
        "min_stream_fps": min(rates),
        "mean_stream_fps": float(np.mean(rates)),
        "latency_p99_ms": p99,
    }


async def cost_point(
    settings: Settings,
    triton: TritonConnection,
    meter: Meter,
    uri: str,
    streams: int,
    args: argparse.Namespace,
) -> dict[str, float]:
    """One point of the cost curve: ``streams`` copies of the clip, unpaced; over a window
    after every stream delivered its first frame (+1 s): frames/s of all streams, CPU cores
    (Vigil + Triton), GPU memory in use on the device (NVML) and what the streams added to it
    (against the runtime with no stream; this includes the pipeline's first-batch
    allocations, so the marginal cost between two points is the cleaner per-stream figure)
    per stream."""
    specs = [StreamSpec(id=f"cost-{i}", url=uri) for i in range(streams)]
    async with open_runtime(settings, connection=triton) as runtime:
        await asyncio.sleep(0.5)
        memory0 = meter.gpu_memory_used()  # Triton's instances, the ring; no stream yet
        statuses = await _add_and_settle(runtime, specs, poll_s=0.05, settle_s=1.0)
        row = Row("", 0, 0)
        with meter.measure(row):
            before = sum(s.stats.frames_processed for s in statuses)
            t0 = time.perf_counter()
            await asyncio.sleep(args.cost_seconds)
            elapsed = time.perf_counter() - t0
            after = sum(s.stats.frames_processed for s in statuses)
            memory = meter.gpu_memory_used()
    return {
        "streams": float(streams),
        "fps": (after - before) / elapsed,
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
            rt = await realtime_check(settings, triton, uri, streams, args.rt_seconds)
            print(f"# real-time check: {rt}", flush=True)
            tries.append(rt)
            checks.append(rt)
            if rt["min_stream_fps"] < 29.5:
                break
        if all(c["min_stream_fps"] >= 29.5 for c in checks) and len(checks) == args.repeats:
            return {"sustained": streams, "tries": tries, "checks": checks}
        streams = max(1, math.floor(streams * 0.9))
    return {"sustained": 0, "tries": tries, "checks": []}
