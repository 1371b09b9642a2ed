"""NVML and CPU-time sampling for the GPU benchmark (no torch here)."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from bench.gpu.stats import Row


class Meter:
    """GPU (and NVDEC) utilization sampled by NVML, and CPU time of this process tree."""

    def __init__(self, device_id: int) -> None:
        import pynvml

        pynvml.nvmlInit()
        self._nvml = pynvml
        self._handle = pynvml.nvmlDeviceGetHandleByIndex(device_id)
        self.device_name = pynvml.nvmlDeviceGetName(self._handle)
        self.driver = pynvml.nvmlSystemGetDriverVersion()

    def gpu_memory_used(self) -> int:
        """Bytes of GPU memory in use on the device (every process)."""
        return int(self._nvml.nvmlDeviceGetMemoryInfo(self._handle).used)

    def _cpu_seconds(self) -> float:
        import psutil  # on the GPU machine; the thread clock below needs only /proc

        total = 0.0
        me = psutil.Process()
        for proc in [me, *me.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                t = proc.cpu_times()
                total += t.user + t.system
        return total

    @contextlib.contextmanager
    def measure(self, row: Row) -> Iterator[None]:
        """Sample while the block runs; fill ``row``'s utilization and CPU figures."""
        gpu: list[float] = []
        dec: list[float] = []

        def sample(stop: threading.Event) -> None:
            while not stop.wait(0.1):
                gpu.append(self._nvml.nvmlDeviceGetUtilizationRates(self._handle).gpu)
                with contextlib.suppress(self._nvml.NVMLError):
                    dec.append(self._nvml.nvmlDeviceGetDecoderUtilization(self._handle)[0])

        cpu0, wall0 = self._cpu_seconds(), time.perf_counter()
        try:
            with _beside(sample, "nvml-sample"):
                yield
        finally:
            wall = time.perf_counter() - wall0
            row.cpu_cores = (self._cpu_seconds() - cpu0) / wall if wall else None
            row.gpu_util = float(np.mean(gpu)) if gpu else None
            row.nvdec_util = float(np.mean(dec)) if dec else None


_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def thread_cpu_seconds() -> dict[str, float]:
    """CPU seconds used so far by each group of this process's threads.

    Python threads are grouped by name (``stages_0`` → ``stages``, ``decode-cam-3`` →
    ``decode``); threads Python did not start (PyNvVideoCodec's, CUDA's, gRPC's) are summed as
    ``native``. A thread waiting for the GIL sleeps, so a group near 1.0 core over a window
    was running the whole window: it is the one that bounds a GIL-bound pipeline.
    """
    names = {t.native_id: _group(t.name) for t in threading.enumerate()}
    seconds: dict[str, float] = {}
    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError, ValueError):
            with open(f"/proc/self/task/{tid}/stat") as f:
                # after "pid (comm)": field 14/15 of the line are utime/stime in clock ticks
                fields = f.read().rpartition(")")[2].split()
            group = names.get(int(tid), "native")
            seconds[group] = seconds.get(group, 0.0) + (int(fields[11]) + int(fields[12])) * _TICK_S
    return seconds


def ring_occupancy(pipeline: Any) -> tuple[int, int, int] | None:
    """What a running :class:`~vigil.pipeline.pipeline.Pipeline` holds: ring slots in use,
    requests sent and not yet emitted, and of those the ones Triton has finished (many
    finished ones waiting: the emit chain, not the model, sets the pace). It reads the
    engine's internals, so None when they are not as expected: a sampler never stops on it."""
    try:
        ring = pipeline.route.ring
        pending = [p for p in pipeline._pending._queue if p is not None]
        done = sum(1 for p in pending if p.task is not None and p.task.done())
        return len(ring.slots) - ring.free_slots, len(pending), done
    except Exception:
        return None


def _group(name: str) -> str:
    if name.startswith("decode-"):
        return "decode"
    if name.startswith("Thread-") and "(" in name:  # Thread-3 (sample) → sample
        return name[name.index("(") + 1 : name.rindex(")")]
    head, _, tail = name.rpartition("_")
    return head if head and tail.isdigit() else name


def cores_between(
    before: dict[str, float], after: dict[str, float], seconds: float
) -> dict[str, float]:
    """Cores each thread group used between two :func:`thread_cpu_seconds` snapshots (groups
    under 0.02 cores left out), busiest first."""
    if seconds <= 0:
        return {}
    used = {g: round((after[g] - before.get(g, 0.0)) / seconds, 2) for g in after}
    return dict(sorted(((g, c) for g, c in used.items() if c >= 0.02), key=lambda x: -x[1]))


@contextlib.contextmanager
def gil_wait_probe(result: dict[str, float]) -> Iterator[None]:
    """While the block runs, a thread sleeps 2 ms over and over and notes how late it wakes:
    the time it waits to get the GIL back (plus the scheduler's own, ~0.1 ms on an idle
    host). On exit, ``result`` gets ``gil_wait_p50_ms`` and ``gil_wait_p99_ms``. A pipeline
    whose threads queue for the GIL shows it here before any thread's CPU share does."""
    late: list[float] = []

    def probe(stop: threading.Event) -> None:
        while not stop.is_set():
            start = time.perf_counter()
            time.sleep(0.002)
            late.append(time.perf_counter() - start - 0.002)

    try:
        with _beside(probe, "gil-probe"):
            yield
    finally:
        if late:
            result["gil_wait_p50_ms"] = float(np.percentile(late, 50) * 1000)
            result["gil_wait_p99_ms"] = float(np.percentile(late, 99) * 1000)


@contextlib.contextmanager
def _beside(work: Callable[[threading.Event], None], name: str) -> Iterator[None]:
    """Run ``work(stop)`` in a thread of its own while the block runs; then set ``stop`` and
    wait for the thread."""
    stop = threading.Event()
    thread = threading.Thread(target=work, args=(stop,), name=name, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
