"""Where a finished request's batch waits before its frames count as processed (GPU bench).

The real-time traces of 2026-12-06 showed episodes in which 7 of 9 ring slots held requests
Triton had finished while the stage thread used under half a core: the emit chain was
waiting, not working. This timer says on what. It wraps, for the duration of a check, the
pipeline's hand-over functions and the client's ``infer`` (bench-only; the service is not
changed) and keeps, per batch:

- ``wait``: from the request's end until its parse starts in the stage thread (the emitter
  busy with the batches before it, the event loop's hops, the thread's queue);
- ``parse``: the parse's wall time and its thread CPU time, and of that wall time the
  outputs' device → host copy (``copy``; a CUDA stream synchronize, GIL released);
- ``stages``: the stage chain's wall and CPU time (tracking, analytics, events).

Wall time above CPU time, outside the copy, is time spent waiting for the GIL.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import vigil.infer.cuda_shm as cuda_shm_module
import vigil.pipeline.pipeline as pipeline_module


class EmitTimer:
    """Per-batch timings of the emit chain, collected while :meth:`installed` is active."""

    def __init__(self) -> None:
        self._done: dict[int, float] = {}  # id(slot) → when its request ended
        self.records: list[tuple[str, float, float, float]] = []  # (kind, wait, wall, cpu)
        self.copies: list[float] = []

    @contextmanager
    def installed(self, pipeline: Any) -> Iterator[None]:
        """Wrap the pipeline module's hand-over functions and ``pipeline.client.infer``."""
        saved = {
            name: getattr(pipeline_module, name)
            for name in ("parse_and_release", "finish_batch", "run_stages")
        }
        to_host = cuda_shm_module.CudaSharedMemoryRegion.to_host
        client = pipeline.client
        own_infer = "infer" in vars(client)  # else the class's method: unwrap by deleting
        infer = client.infer
        pipeline_module.parse_and_release = self._timed("parse", saved["parse_and_release"], 1)
        pipeline_module.finish_batch = self._timed("finish", saved["finish_batch"], 3)
        pipeline_module.run_stages = self._timed("stages", saved["run_stages"], None)
        cuda_shm_module.CudaSharedMemoryRegion.to_host = self._timed_copy(to_host)
        client.infer = self._timed_infer(infer)
        try:
            yield
        finally:
            for name, function in saved.items():
                setattr(pipeline_module, name, function)
            cuda_shm_module.CudaSharedMemoryRegion.to_host = to_host
            if own_infer:
                client.infer = infer
            else:
                del client.infer

    def take(self) -> str:
        """The records since the last call, as ``kind wait/wall/cpu`` means in ms."""
        records, self.records = self.records, []
        copies, self.copies = self.copies, []
        parts = []
        for kind in ("parse", "finish", "stages"):
            rows = [r for r in records if r[0] == kind]
            if rows:
                columns = zip(*(r[1:] for r in rows), strict=True)
                wait, wall, cpu = (1000 * sum(column) / len(rows) for column in columns)
                parts.append(f"{kind} {wait:.1f}/{wall:.1f}/{cpu:.1f}")
        if copies:
            parts.append(f"copy {1000 * sum(copies) / len(copies):.1f}")
        return " ".join(parts)

    def _timed(self, kind: str, function: Callable[..., Any], batch_arg: int | None) -> Any:
        def timed(*args: Any) -> Any:
            started, cpu = time.perf_counter(), time.thread_time()
            wait = 0.0
            if batch_arg is not None and args[batch_arg].slot is not None:
                wait = started - self._done.pop(id(args[batch_arg].slot), started)
            try:
                return function(*args)
            finally:
                wall = time.perf_counter() - started
                self.records.append((kind, wait, wall, time.thread_time() - cpu))

        return timed

    def _timed_copy(self, to_host: Callable[..., Any]) -> Any:
        def timed(region: Any, view: Any) -> Any:
            started = time.perf_counter()
            try:
                return to_host(region, view)
            finally:
                self.copies.append(time.perf_counter() - started)

        return timed

    def _timed_infer(self, infer: Callable[..., Any]) -> Any:
        async def timed(model: Any, slot: Any, batch: int) -> Any:
            try:
                return await infer(model, slot, batch)
            finally:
                self._done[id(slot)] = time.perf_counter()

        return timed
