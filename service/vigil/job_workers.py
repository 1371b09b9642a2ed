"""A job's streams dealt over worker processes that share one Triton (``vigil run --workers``).

Why: one interpreter runs every stream's decoding, batching and per-frame post-processing
(parse, tracking, analytics, events) under one GIL. On a fast GPU that, not the model, bounds
a job (``docs/benchmarks.md``, "GPU path"). Worker processes each own a disjoint share of the
streams — the architecture's data-plane workers, on one host — so each has its own GIL,
decoder threads and stage chain. They share the parent's Triton (embedded or external) and
one loaded model: the first worker loads it by the usual rules and the others are pinned to
the version it loaded, which Triton already serves, so none reloads it.

Protocol (JSON lines on the worker's stdin and stdout; its log goes to stderr): the parent
writes the job; the worker opens its runtime, says ``ready`` and waits for ``go``, so every
worker's streams start together and a whole-run rate means what it means in one process. It
then reports its streams every ``report_s`` and ends with a ``result`` (or an ``error``).
``stop`` on stdin, stdin closing (the parent is gone) or SIGTERM stop its streams early.
Workers die with the parent even when it is killed (``PR_SET_PDEATHSIG``); the parent sweeps
what a killed worker leaves (shared-memory segments, Triton registrations).
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import json
import logging
import os
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vigil.accel import choose_acceleration
from vigil.children import death_signal_prefix
from vigil.config import Settings
from vigil.jobs import JobResult, run_streams
from vigil.pipeline.stream_state import StreamState, StreamStatus
from vigil.runtime import Runtime
from vigil.shm_segments import remove_stale_segments
from vigil.specs import StreamSpec
from vigil.triton_connection import TritonConnection, connect

log = logging.getLogger(__name__)

#: How long stopped workers get to close their streams before they are killed.
STOP_GRACE_S = 15.0
#: The directory holding the ``vigil`` package (the workers' import path starts there).
_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)
#: A result line carries every stream's latency window (4,096 floats each).
_LINE_LIMIT = 256 << 20


class JobWorkerError(RuntimeError):
    """A worker could not run its share (it names the worker and what it said)."""


@dataclass
class WorkerProgress:
    """Frames processed by all workers together, after each report.

    Attributes:
        samples: ``(time.monotonic(), frames)`` after each worker's report; monotonic time
            is host-wide on Linux, so the workers' clocks agree with the parent's.
    """

    samples: list[tuple[float, int]] = field(default_factory=list)
    _latest: dict[int, int] = field(default_factory=dict)

    def add(self, worker: int, at: float, frames: int) -> None:
        """Record one worker's report."""
        self._latest[worker] = frames
        self.samples.append((at, sum(self._latest.values())))


class WorkerJob:
    """Run ``specs`` to their end over ``workers`` processes (streams dealt round-robin).

    Attributes:
        statuses: Every stream's status, refreshed from the workers' reports (for progress
            displays and benchmarks); final once :meth:`run` returns.
        reported_at: Stream → when (``time.monotonic()`` in its worker) its status was
            last reported.
        progress: Frames processed by all workers over time.
        report_s: How often workers report.
    """

    def __init__(
        self,
        settings: Settings,
        specs: Sequence[StreamSpec],
        workers: int,
        *,
        report_s: float = 0.5,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers}")
        if not specs:
            raise ValueError("a job needs at least one stream")
        count = min(workers, len(specs))
        self.settings = settings
        self.shares = [list(specs[i::count]) for i in range(count)]
        self.statuses = {s.id: StreamStatus(s.id, s.url) for s in specs}
        self.reported_at: dict[str, float] = {}
        self.progress = WorkerProgress()
        self.report_s = report_s
        self._procs: list[asyncio.subprocess.Process] = []
        self._results: dict[int, dict[str, Any]] = {}

    async def run(self, connection: TritonConnection | None = None) -> JobResult:
        """Start the workers, wait for their results, merge their event files.

        Args:
            connection: An open Triton connection whose server the workers use (default:
                connect per settings; an embedded Triton then lives as long as the job).

        Raises:
            JobWorkerError: a worker failed before its streams started (model load, Triton).
            TritonServerError: the embedded Triton died.
        """
        if connection is None:
            async with connect(self.settings, choose_acceleration(self.settings.gpu)) as triton:
                return await self._run(triton)
        return await self._run(connection)

    @property
    def pids(self) -> list[int]:
        """The worker processes' pids (once :meth:`run` has started them)."""
        return [p.pid for p in self._procs]

    def stop(self) -> None:
        """Ask every worker to stop its streams now (the results still come)."""
        for proc in self._procs:
            if proc.stdin is not None and not proc.stdin.is_closing():
                with contextlib.suppress(OSError):
                    proc.stdin.write(b"stop\n")

    async def _run(self, triton: TritonConnection) -> JobResult:
        url = triton.server.grpc_url if triton.server else self.settings.triton.url
        assert url, "an external Triton has a URL"
        try:
            self._procs = [await _spawn() for _ in self.shares]
            # The first worker loads the model by the usual rules (a remembered swap, the
            # configured version); the others are pinned to what it loaded.
            model = await self._start(0, self._worker_settings(0, url, None))
            await asyncio.gather(
                *(
                    self._start(i, self._worker_settings(i, url, model))
                    for i in range(1, len(self.shares))
                )
            )
            started = time.monotonic()
            for proc in self._procs:
                _write(proc, "go")
            await self._follow(triton)
            ended = time.monotonic()
        finally:
            await self._end_workers()
            remove_stale_segments()  # those of a worker that was killed
            with contextlib.suppress(Exception):
                await triton.client.unregister_stale_regions()
        written = self._merge_events()
        return JobResult(
            streams=dict(self.statuses),
            model=model[0],
            events_written=written,
            elapsed_s=ended - started,
        )

    def _worker_settings(self, index: int, url: str, model: tuple[str, int] | None) -> Settings:
        settings = self.settings
        triton = settings.triton.model_copy(update={"url": url})
        # disjoint track ids: worker i of n hands out i, i + n, i + 2n, ...
        tracking = settings.tracking.model_copy(
            update={"id_first": index + 1, "id_step": len(self.shares)}
        )
        update: dict[str, Any] = {"triton": triton, "tracking": tracking}
        if model is not None:
            name, version = model
            update["model"] = settings.model.model_copy(update={"name": name, "version": version})
        if settings.events.jsonl_path is not None:
            update["events"] = settings.events.model_copy(
                update={"jsonl_path": _part(settings.events.jsonl_path, index)}
            )
        outbox = settings.kafka.outbox
        own = _part(outbox.path or settings.data_dir / "outbox.db", index)
        update["kafka"] = settings.kafka.model_copy(
            update={"outbox": outbox.model_copy(update={"path": own})}
        )
        return settings.model_copy(update=update)

    async def _start(self, index: int, settings: Settings) -> tuple[str, int]:
        proc = self._procs[index]
        job = {
            "worker": index + 1,
            "settings": settings.model_dump(mode="json"),
            "specs": [s.model_dump(mode="json") for s in self.shares[index]],
            "report_s": self.report_s,
        }
        _write(proc, json.dumps(job))
        message = await self._next_message(index)
        if message.get("type") != "ready":
            said = message.get("message", "exited before it was ready")
            raise JobWorkerError(f"worker {index + 1}: {said}")
        return message["model"], int(message["version"])

    async def _next_message(self, index: int) -> dict[str, Any]:
        proc = self._procs[index]
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            message = json.loads(line)
            if message.get("type") != "progress":
                return message
            self._take_report(index, message)
        return {}

    def _take_report(self, index: int, message: dict[str, Any]) -> None:
        statuses = [StreamStatus.restored(d) for d in message["streams"]]
        for status in statuses:
            self.statuses[status.stream_id] = status
            self.reported_at[status.stream_id] = message["at"]
        frames = sum(s.stats.frames_processed for s in statuses)
        self.progress.add(index, message["at"], frames)

    async def _follow(self, triton: TritonConnection) -> None:
        """Read every worker's reports until its result; fail fast if Triton dies."""

        async def follow(index: int) -> None:
            message = await self._next_message(index)
            if message.get("type") == "result":
                self._take_report(index, message)
                self._results[index] = message
                return
            code = await self._procs[index].wait()
            reason = message.get("message") or f"its worker process exited with code {code}"
            for spec in self.shares[index]:  # those that had not ended (or failed) already
                self.statuses[spec.id].try_transition(
                    StreamState.ERROR, f"worker {index + 1}: {reason}"
                )
            log.error("worker %d ended without a result: %s", index + 1, reason)

        async def watch() -> None:
            while True:
                triton.check_alive()
                await asyncio.sleep(0.5)

        followers = asyncio.gather(*(follow(i) for i in range(len(self._procs))))
        watchdog = asyncio.create_task(watch())
        try:
            await asyncio.wait({followers, watchdog}, return_when=asyncio.FIRST_COMPLETED)
            if watchdog.done():
                watchdog.result()  # Triton died: raise it
            await followers
        finally:
            watchdog.cancel()
            followers.cancel()
            await asyncio.gather(watchdog, followers, return_exceptions=True)

    async def _end_workers(self) -> None:
        """Close the workers' input (those still running stop their streams) and wait for
        them; kill any that has not exited after :data:`STOP_GRACE_S`."""
        live = [p for p in self._procs if p.returncode is None]
        if not live:
            return
        for proc in live:
            if proc.stdin is not None:
                proc.stdin.close()
        waits = [asyncio.create_task(p.wait()) for p in live]
        await asyncio.wait(waits, timeout=STOP_GRACE_S)
        for proc in live:
            if proc.returncode is None:
                log.warning("worker process %d did not stop; killing it", proc.pid)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
        await asyncio.gather(*waits)

    def _merge_events(self) -> int:
        """Concatenate the workers' event files into the job's, worker by worker."""
        path = self.settings.events.jsonl_path
        written = sum(int(r.get("events_written", 0)) for r in self._results.values())
        if path is None:
            return written
        with path.open("wb") as out:
            for index in range(len(self.shares)):
                part = _part(path, index)
                if part.exists():
                    with part.open("rb") as source:
                        shutil.copyfileobj(source, out, 1 << 20)
                    part.unlink()
        return written


def _part(path: Path, index: int) -> Path:
    """Worker ``index``'s own file beside ``path``: ``events.jsonl`` → ``events.worker-1.jsonl``."""
    return path.with_name(f"{path.stem}.worker-{index + 1}{path.suffix}")


async def _spawn() -> asyncio.subprocess.Process:
    command = [*death_signal_prefix(), sys.executable, "-m", "vigil.job_workers"]
    # the worker imports this very package, even when the parent found it on a sys.path it
    # set up itself (a benchmark, a test runner) rather than through an installation
    paths = [_PACKAGE_ROOT, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        limit=_LINE_LIMIT,
        env=os.environ | {"PYTHONPATH": os.pathsep.join(paths)},
    )


def _write(proc: asyncio.subprocess.Process, line: str) -> None:
    if proc.stdin is not None and not proc.stdin.is_closing():
        with contextlib.suppress(OSError):
            proc.stdin.write(line.encode() + b"\n")


# --- the worker process -----------------------------------------------------------------------


class _Worker:
    """One worker process: runs its share with :func:`run_streams`, reporting to stdout."""

    def __init__(self, job: dict[str, Any], commands: asyncio.StreamReader) -> None:
        self.index = int(job["worker"])
        self.settings = Settings.model_validate(job["settings"])
        self.specs = [StreamSpec.model_validate(s) for s in job["specs"]]
        self.report_s = float(job["report_s"])
        self.commands = commands
        self.runtime: Runtime | None = None
        self.statuses: list[StreamStatus] = []  # once the streams are added
        self.go = asyncio.Event()
        self.stopping = asyncio.Event()

    async def work(self) -> int:
        reader = asyncio.create_task(self._read_commands())
        run = asyncio.create_task(
            run_streams(
                self.settings, self.specs, before_streams=self._ready, on_start=self._started
            )
        )
        stopper = asyncio.create_task(self.stopping.wait())
        reporter = asyncio.create_task(self._report())
        try:
            await asyncio.wait({run, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if not run.done():
                run.cancel()
            result = await asyncio.gather(run, return_exceptions=True)
        finally:
            for task in (reader, stopper, reporter):
                task.cancel()
        outcome = result[0]
        if isinstance(outcome, asyncio.CancelledError) and self.runtime is not None:
            # stopped early: the runtime marked the streams stopped as it closed
            _send(self._result(self.runtime.jsonl.written if self.runtime.jsonl else 0))
            return 0
        if isinstance(outcome, BaseException):
            _send({"type": "error", "message": f"{type(outcome).__name__}: {outcome}"})
            return 1
        _send(self._result(outcome.events_written))
        return 0

    async def _ready(self, runtime: Runtime) -> None:
        self.runtime = runtime
        model = runtime.model
        _send({"type": "ready", "model": model.name, "version": model.version})
        await self.go.wait()

    def _started(self, runtime: Runtime) -> None:
        self.statuses = runtime.streams.statuses()

    async def _read_commands(self) -> None:
        while line := await self.commands.readline():
            if line.strip() == b"go":
                self.go.set()
            elif line.strip() == b"stop":
                self.stopping.set()
        self.stopping.set()  # end of input: the parent is gone or gave up on us

    async def _report(self) -> None:
        while True:
            await asyncio.sleep(self.report_s)
            if self.statuses:
                snapshots = [s.snapshot() for s in self.statuses]
                _send({"type": "progress", "at": time.monotonic(), "streams": snapshots})

    def _result(self, events_written: int) -> dict[str, Any]:
        streams = [s.snapshot(latencies=True) for s in self.statuses]
        return {
            "type": "result",
            "at": time.monotonic(),
            "streams": streams,
            "events_written": events_written,
        }


def _send(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def _worker_main() -> int:
    loop = asyncio.get_running_loop()
    commands = asyncio.StreamReader(limit=_LINE_LIMIT)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
    line = await commands.readline()
    if not line:
        return 0  # the parent went away before sending the job
    worker = _Worker(json.loads(line), commands)
    logging.basicConfig(
        level=worker.settings.log_level,
        format=f"%(asctime)s %(levelname)s [worker {worker.index}] %(name)s: %(message)s",
        stream=sys.stderr,
    )
    loop.add_signal_handler(signal.SIGTERM, worker.stopping.set)
    return await worker.work()


def main() -> int:
    """Entry point of a worker process (``python -m vigil.job_workers``)."""
    faulthandler.enable()
    # Ctrl-C reaches the whole process group; the parent decides how its workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return asyncio.run(_worker_main())


if __name__ == "__main__":
    sys.exit(main())
