"""The GPU benchmark's full-pipeline measurements: (c) through ``vigil run``'s code path and
its diagnostics (CUPTI copies, py-spy, cProfile); the paced runs are in ``live.py``. Imported
by bench.py (which sets up ``sys.path``)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
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

from bench.gpu.emit_timer import EmitTimer
from bench.gpu.meter import cores_between, ring_occupancy, thread_cpu_seconds
from bench.gpu.stats import Row
from vigil.config import Settings
from vigil.infer import cuda_shm
from vigil.job_workers import WorkerJob
from vigil.jobs import run_streams
from vigil.pipeline.stream_state import StreamStatus
from vigil.sources.nvdec_pool import DECODERS
from vigil.specs import StreamSpec
from vigil.triton_connection import TritonConnection


def with_slots(settings: Settings, slots: int | None) -> Settings:
    """``settings`` with ``slots`` requests in flight (ring slots); None: unchanged."""
    if slots is None:
        return settings
    return _with_pipeline(settings, inflight_requests=slots)


def with_batch_timeout(settings: Settings, timeout_ms: float) -> Settings:
    """``settings`` with a batch timeout of ``timeout_ms``; 0: unchanged. Paced cameras over
    worker processes want about one frame interval (DeepStream's ``batched-push-timeout``):
    each worker's batch then leaves full."""
    if not timeout_ms:
        return settings
    return _with_pipeline(settings, batch_timeout_ms=timeout_ms)


def _with_pipeline(settings: Settings, **changes: object) -> Settings:
    return settings.model_copy(update={"pipeline": settings.pipeline.model_copy(update=changes)})


# --- (c) the full pipeline ------------------------------------------------------------------


def pipeline_settings(base: Settings, args: argparse.Namespace, events: Path) -> Settings:
    return base.model_copy(
        update={
            "pipeline": base.pipeline.model_copy(
                update={
                    "max_batch_size": args.batch,
                    "inflight_requests": args.inflight,
                    "queue_size": args.queue,
                    "batch_timeout_ms": args.batch_timeout_ms,
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
    # the emit chain's per-batch timings over the run, to set beside the real-time traces'
    timer, timing = EmitTimer(), contextlib.ExitStack()

    def on_start(runtime: Any) -> None:
        runtimes.append(runtime)
        timing.enter_context(timer.installed(runtime.pipeline))
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
                    if (held := ring_occupancy(pipeline)) is not None:
                        occupancy.append(held)
                    await asyncio.sleep(0.005)

        tasks.append(asyncio.create_task(sample()))

    bytes0, copies0 = cuda_shm.TRANSFERS.bytes, cuda_shm.TRANSFERS.copies
    reused0 = DECODERS.reused
    model_stats0 = await model_statistics(triton, settings.model.name)
    with timing:
        result = await run_streams(settings, specs, connection=triton, on_start=on_start)
    model_stats = await model_statistics(triton, settings.model.name)
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
    extra["emit_chain"] = timer.take()
    extra |= _steady_thread_cores(samples, clocks, processed)
    extra |= model_busy(model_stats0, model_stats, result.elapsed_s)
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
    bounds = _steady_bounds(samples, total)
    if bounds is None or len(clocks) < 2:
        return {}
    (lo, _), (hi, _) = bounds
    first = min(clocks, key=lambda c: abs(c[0] - lo))
    last = min(clocks, key=lambda c: abs(c[0] - hi))
    if last[0] <= first[0]:
        return {}
    return {"thread_cores": str(cores_between(first[1], last[1], last[0] - first[0]))}


async def model_statistics(triton: TritonConnection, name: str) -> dict[str, Any]:
    with contextlib.suppress(Exception):  # diagnostics only
        stats = await triton.client.statistics(name)
        return dict(stats["model_stats"][0])
    return {}


def model_busy(before: dict[str, Any], after: dict[str, Any], wall_s: float) -> dict[str, float]:
    """From Triton's statistics over the run: the share of the wall time the model was
    executing (one instance), frames per execution (3 full requests: 96) and one execution's
    compute time. Nothing when the model was loaded again during the run (its counts
    restart)."""
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
        "frames_per_execution": delta("inference_count") / executions,
        # one execution's compute: slower executions (the GPU shared with decoding) against
        # fewer frames per execution tell apart why the model serves less
        "execute_ms": delta("inference_stats", "compute_infer", "ns") / 1e6 / requests,
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
    bounds = _steady_bounds(samples, total)
    if bounds is None:
        return 0, 0.0
    (t0, n0), (t1, n1) = bounds
    return n1 - n0, t1 - t0


def _steady_bounds(
    samples: list[tuple[float, int]], total: int
) -> tuple[tuple[float, int], tuple[float, int]] | None:
    """The samples (time, frames done) where 10 % and 90 % of the frames were done; None
    when the run was too short to tell them apart."""
    lo = next((s for s in samples if s[1] >= 0.1 * total), None)
    hi = next((s for s in samples if s[1] >= 0.9 * total), None)
    if lo is None or hi is None or hi[0] <= lo[0]:
        return None
    return lo, hi


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
