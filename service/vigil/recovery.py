"""Recovery from a Triton failure without restarting Vigil.

Triton restarts are routine in production (out of memory, a crashing backend, a sidecar
upgrade). While streams run, :class:`TritonRecovery` watches the server: an embedded one
that exits, or any server that stops answering its liveness check, is an *outage*. Then:

1. the pipeline pauses — it takes no more batches; requests in flight fail and are counted
   as lost; live streams keep decoding and drop their oldest frames (counted), files wait;
2. an embedded server is restarted (with backoff, at most ``max_restarts`` failures in a
   row); an external one is waited for (as long as ``max_outage_s`` allows);
3. the client gives the server back what it had: the shared-memory regions are registered
   again and the same model versions loaded (primary, kept previous, secondary);
4. the serving route runs one warm-up request, and the pipeline resumes; the tracker bridges
   the gap, so objects keep their ids.

Meanwhile ``/api/v1/ready`` answers 503 with the reason. Events are never sent twice: the
frames of failed requests are dropped, not retried. If recovery gives up, the pipeline
fails as it would without recovery and ``vigil`` exits with code 2.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field

from vigil.config import RecoverySettings
from vigil.infer.client import TritonClient, cancelled_under_us
from vigil.infer.errors import InferError
from vigil.pipeline.pipeline import Pipeline
from vigil.pipeline.stream_state import StreamStatus
from vigil.triton.errors import TritonDiedError, TritonServerError
from vigil.triton_connection import TritonConnection

log = logging.getLogger(__name__)

#: How long one attempt polls an external server for readiness.
EXTERNAL_WAIT_S = 2.0

#: Drop reasons that count as frames lost to an outage.
LOST_REASONS = ("infer_error", "queue_full")


class RecoveryFailedError(RuntimeError):
    """Triton could not be brought back within the limits; the pipeline stops."""


@dataclass
class Outage:
    """One period with Triton down.

    Attributes:
        reason: What was noticed (first line).
        started_s: Wall-clock start (Unix time).
        ended_s: Wall-clock end, once inference resumed.
        attempts: Restarts (embedded) or readiness waits (external) that failed.
        lost_frames: Per stream, frames dropped during the outage (requests that failed
            and frames pushed out of full queues).
        phases_s: How long the last attempt's steps took: ``server`` (restart or wait until
            ready), ``restore`` (regions and models), ``warm_up``.
    """

    reason: str
    started_s: float
    ended_s: float | None = None
    attempts: int = 0
    lost_frames: dict[str, int] = field(default_factory=dict)
    phases_s: dict[str, float] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        """How long it lasted (so far)."""
        return (self.ended_s or time.time()) - self.started_s


class TritonRecovery:
    """Watches Triton while the pipeline runs and brings it back after a failure.

    Args:
        connection: The Triton connection (embedded server or external URL).
        settings: Check interval, backoff and limits.
        pipeline: The engine to pause and resume.
        statuses: The streams' statuses (for the lost-frame counts).
        lock: Held during recovery, so no model swap runs meanwhile (the model lifecycle's).
    """

    def __init__(
        self,
        connection: TritonConnection,
        settings: RecoverySettings,
        pipeline: Pipeline,
        statuses: Callable[[], Iterable[StreamStatus]],
        lock: asyncio.Lock | None = None,
    ) -> None:
        self.connection = connection
        self.settings = settings
        self.pipeline = pipeline
        self.statuses = statuses
        self.lock = lock
        #: The outage in progress, if any.
        self.outage: Outage | None = None
        #: The most recent outages, oldest first.
        self.history: deque[Outage] = deque(maxlen=50)
        self._healthy_lost: dict[str, int] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def outages(self) -> list[Outage]:
        """Recent outages, oldest first, the one in progress last."""
        return [*self.history, *([self.outage] if self.outage else [])]

    def suspect(self) -> None:
        """Check the server now (a request failed); never raises (the pipeline's watchdog)."""
        self._wake.set()

    def start(self) -> None:
        """Start watching."""
        self._task = asyncio.create_task(self._run(), name="triton-recovery")

    async def close(self) -> None:
        """Stop watching (an outage in progress is abandoned)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    # --- watching ----------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            while True:
                reason = await self._wait_for_failure()
                await self._recover(reason)
        except RecoveryFailedError as e:
            log.error("%s", e)
            self.pipeline.fail(e)
        except Exception as e:  # a bug: never leave the pipeline paused with no one watching
            log.exception("Triton recovery stopped on an unexpected error")
            self.pipeline.fail(e)

    async def _wait_for_failure(self) -> str:
        """Return why Triton is considered down: the embedded process exited, or the server
        failed ``failed_checks`` liveness checks in a row."""
        server, client = self.connection.server, self.connection.client
        failed = 0
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.check_interval_s):
                    await self._wake.wait()
            self._wake.clear()
            if server is not None:
                try:
                    server.check_alive()
                except TritonDiedError as e:
                    if e.log_tail:
                        log.error("tail of Triton's log (%s):\n%s", e.log_path, e.log_tail)
                    return str(e).splitlines()[0]
            # Generous timeout: a busy host must not turn a slow answer into a restart.
            if await client.is_live(timeout_s=5.0):
                failed = 0
                # Frames lost from here on count towards the next outage (requests fail a
                # moment before the failure is noticed).
                self._healthy_lost = self._lost()
                continue
            failed += 1
            if failed >= self.settings.failed_checks:
                # A killed server's socket closes before its process is reaped (a large
                # process takes a while to exit on a busy host): name the death if it is one.
                for _ in range(20):
                    if server is None:
                        break
                    try:
                        server.check_alive()
                    except TritonDiedError as e:
                        return str(e).splitlines()[0]
                    await asyncio.sleep(0.1)
                return f"Triton at {client.url} does not answer its liveness check"

    # --- recovering --------------------------------------------------------------------------

    async def _recover(self, reason: str) -> None:
        outage = self.outage = Outage(reason, time.time())
        lost_before = self._healthy_lost
        self.pipeline.pause(f"Triton is down: {reason}; recovering")
        log.error("Triton is down (%s): inference paused, recovering", reason)
        delay = self.settings.initial_delay_s
        async with self._exclusive():
            while True:
                try:
                    await self._bring_back(outage)
                    break
                except (Exception, asyncio.CancelledError) as e:
                    # A gRPC call cancelled under us (its channel closed) fails the attempt;
                    # only our own cancellation (close()) ends the recovery.
                    if isinstance(e, asyncio.CancelledError) and not cancelled_under_us():
                        raise
                    outage.attempts += 1
                    expected = isinstance(e, TritonServerError | InferError | OSError)
                    # Loud on attempts 1, 2, 4, 8, ...: a long outage does not flood the log.
                    # Anything unexpected is a bug: loud, with its traceback, and retried.
                    loud = outage.attempts & (outage.attempts - 1) == 0 or not expected
                    log.log(
                        logging.WARNING if loud else logging.DEBUG,
                        "Triton recovery attempt %d failed: %s",
                        outage.attempts,
                        e or type(e).__name__,
                        exc_info=not expected,
                    )
                    self._check_limits(outage, e)
                    if self.connection.server is not None:  # a failed restart: back off
                        await asyncio.sleep(delay)
                        delay = min(delay * 2, self.settings.max_delay_s)
                    # An external server is polled by the readiness wait itself: no pause, so
                    # streams resume as soon as it is back.
        lost_after = self._lost()
        outage.lost_frames = {sid: n - lost_before.get(sid, 0) for sid, n in lost_after.items()}
        outage.ended_s = time.time()
        self.outage = None
        self.history.append(outage)
        self.pipeline.resume(outage.duration_s)
        log.warning(
            "Triton is back after %.1f s (%d failed attempts; last attempt %s s): inference "
            "resumed; frames lost per stream: %s",
            outage.duration_s,
            outage.attempts,
            outage.phases_s,
            outage.lost_frames or "none",
        )

    def _check_limits(self, outage: Outage, error: Exception) -> None:
        settings = self.settings
        if self.connection.server is not None and outage.attempts >= settings.max_restarts:
            raise RecoveryFailedError(
                f"Triton could not be restarted ({outage.attempts} attempts failed; "
                f"triton.recovery.max_restarts = {settings.max_restarts}): {error}"
            )
        if settings.max_outage_s is not None and outage.duration_s >= settings.max_outage_s:
            raise RecoveryFailedError(
                f"Triton was not back after {outage.duration_s:.0f} s "
                f"(triton.recovery.max_outage_s = {settings.max_outage_s:g}): {error}"
            )

    async def _bring_back(self, outage: Outage) -> None:
        server, client = self.connection.server, self.connection.client
        attempt, phases = outage.attempts, outage.phases_s
        t0 = time.monotonic()
        # A fresh channel each time: gRPC's own reconnect backoff would keep an old one
        # failing for a while after the server is back.
        if server is not None:
            # The models load while the server starts: they are loaded once it is ready.
            await server.restart(
                new_ports=attempt > 0 and not server.fixed_ports, models=list(client.loaded)
            )
            await client.retarget(server.grpc_url)
            await client.wait_ready(self.settings.max_delay_s)
        else:
            await self._wait_external(client)
        t1 = time.monotonic()
        phases["server"] = round(t1 - t0, 3)
        # One deadline over both steps: a call that never returns (a server that accepts
        # and then stalls) fails this attempt instead of hanging the recovery.
        limit_s, t2 = self.settings.restore_timeout_s, t1
        try:
            async with asyncio.timeout(limit_s):
                await client.restore()
                t2 = time.monotonic()
                phases["restore"] = round(t2 - t1, 3)
                await self.pipeline.warm_up(self.pipeline.route, rounds=1)
        except TimeoutError:
            raise InferError(
                f"restoring Triton at {client.url} took over {limit_s:g} s "
                "(triton.recovery.restore_timeout_s)"
            ) from None
        phases["warm_up"] = round(time.monotonic() - t2, 3)

    @staticmethod
    async def _wait_external(client: TritonClient) -> None:
        """Poll an external server for readiness, each try on a fresh channel: gRPC's
        reconnect backoff on a channel that kept failing would notice a returning server
        seconds late.

        Raises:
            InferError: not ready within :data:`EXTERNAL_WAIT_S` (one failed attempt).
        """
        deadline = time.monotonic() + EXTERNAL_WAIT_S
        while True:
            await client.retarget(client.url)
            if await client.is_ready(timeout_s=0.5):
                return
            if time.monotonic() >= deadline:
                raise InferError(f"Triton at {client.url} is not ready")
            await asyncio.sleep(0.25)

    @contextlib.asynccontextmanager
    async def _exclusive(self) -> AsyncIterator[None]:
        """Hold the swap lock while recovering, unless a swap keeps it longer than 10 s (a
        swap stuck on the dead server fails by itself; recovery goes on regardless)."""
        if self.lock is None:
            yield
            return
        try:
            async with asyncio.timeout(10):
                await self.lock.acquire()
        except TimeoutError:
            log.warning("a model swap is in progress; recovering Triton beside it")
            yield
            return
        try:
            yield
        finally:
            self.lock.release()

    def _lost(self) -> dict[str, int]:
        return {s.stream_id: sum(s.stats.dropped[r] for r in LOST_REASONS) for s in self.statuses()}
