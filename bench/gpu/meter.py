"""NVML and CPU-time sampling for the GPU benchmark (no torch here)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import numpy as np
import psutil

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
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.1):
                gpu.append(self._nvml.nvmlDeviceGetUtilizationRates(self._handle).gpu)
                with contextlib.suppress(self._nvml.NVMLError):
                    dec.append(self._nvml.nvmlDeviceGetDecoderUtilization(self._handle)[0])

        thread = threading.Thread(target=sample, daemon=True)
        cpu0, wall0 = self._cpu_seconds(), time.perf_counter()
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
            wall = time.perf_counter() - wall0
            row.cpu_cores = (self._cpu_seconds() - cpu0) / wall if wall else None
            row.gpu_util = float(np.mean(gpu)) if gpu else None
            row.nvdec_util = float(np.mean(dec)) if dec else None
