"""The cluster's model: one desired model version that every worker serves.

A swap asked of any worker (REST, Kafka command) is checked there, then written to the model
topic (compacted, one partition, key ``serving``). Every worker folds that topic and swaps its
own pipeline to the record's version through its :class:`~vigil.lifecycle.ModelLifecycle`,
each on the Triton it uses, and reports the outcome in its status (``swap``). The worker that
took the request answers once every live worker has reported, with each one's result. A
worker that starts or rejoins later applies the current record before it takes streams, so it
serves the cluster's version.

Workers that share one Triton must never unload a version another still serves: the
lifecycle asks :meth:`ClusterModel.others_serve` before it unloads the version it left.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, Protocol

from aiokafka.structs import ConsumerRecord
from pydantic import BaseModel, Field, ValidationError

from vigil.cluster.status import StatusBoard, SwapReport, WorkerStatus
from vigil.cluster.tail import TopicTail
from vigil.cluster.topics import TopicWriter
from vigil.cluster_settings import ClusterSettings
from vigil.config import KafkaSettings
from vigil.infer.errors import RegistryError
from vigil.lifecycle import ModelLifecycle, SwapError, SwapRecord, Trigger

log = logging.getLogger(__name__)

#: The model topic's one key.
KEY = b"serving"


class DesiredModel(BaseModel):
    """The model version the cluster should serve (the model topic's value)."""

    request: str = Field(description="Id of the request that asked for it")
    model: str
    version: int = Field(ge=1)
    allow_replan: bool = False
    at: datetime = Field(description="When it was asked for")
    by: str = Field(description="The worker that took the request")


class Swapper(Protocol):
    """What this needs of :class:`~vigil.lifecycle.ModelLifecycle`."""

    @property
    def serving(self) -> tuple[str, int]: ...

    @property
    def busy(self) -> bool: ...

    @property
    def lock(self) -> asyncio.Lock: ...

    async def check(
        self, model: str, version: int | Literal["latest"], allow_replan: bool = False
    ) -> int: ...

    async def swap(
        self,
        model: str,
        version: int | Literal["latest"],
        allow_replan: bool = False,
        trigger: Trigger = "rest",
    ) -> SwapRecord: ...


class ClusterSwap(BaseModel):
    """A cluster-wide swap as the worker that took it answers."""

    request: str
    model: str
    version: int
    complete: bool = Field(description="Every live worker has reported its outcome")
    workers: list[SwapReport] = Field(description="Each live worker's outcome, by worker id")


class ClusterModel:
    """Folds the model topic and keeps this worker serving what it says.

    Args:
        kafka: Connection settings.
        cluster: The ``cluster:`` settings.
        lifecycle: This worker's model lifecycle.
        board: Every worker's status (for the answers and for :meth:`others_serve`).
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        cluster: ClusterSettings,
        lifecycle: Swapper,
        board: StatusBoard,
    ) -> None:
        self.kafka = kafka
        self.topic = cluster.model_topic
        self.worker_id = cluster.worker
        self.lifecycle = lifecycle
        self.board = board
        #: The latest record of the model topic (None: nobody asked for a swap yet).
        self.desired: DesiredModel | None = None
        #: This worker's outcome of the latest record it applied.
        self.report: SwapReport | None = None
        self.tail = TopicTail(kafka, self.topic, self._apply_record, self._reset)
        self._changed = asyncio.Event()
        self._writer = TopicWriter(kafka, self.topic)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start folding the topic and applying it, in the background."""
        self.tail.start()
        self._task = asyncio.create_task(self._follow(), name="cluster-model")

    async def close(self) -> None:
        """Stop reading, applying and writing."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.tail.close()
        await self._writer.close()

    async def settle(self, timeout_s: float) -> None:
        """Read the topic to its end and serve the version it names (bounded: a broker that
        is away leaves this worker on its own version, and it follows once it reads one)."""
        for _ in range(max(1, round(timeout_s))):  # catch_up waits up to 1 s each time
            if await self.tail.catch_up(1.0):
                break
            await asyncio.sleep(0.2)
        if self.desired is not None:
            await self._apply(self.desired)

    def others_serve(self, model: str) -> set[int]:
        """Versions of ``model`` that other live workers report serving."""
        versions = set()
        for status in self.board.workers():
            name, _, version = status.model.rpartition(":")
            if status.worker != self.worker_id and name == model and version.isdigit():
                versions.add(int(version))
        return versions

    async def request(
        self, model: str, version: int | Literal["latest"], allow_replan: bool
    ) -> DesiredModel:
        """Check a swap here, then write it for every worker; returns once the broker
        acknowledged it.

        Raises:
            SwapError: refused here (404 unknown, 409 incompatible or already everywhere).
            KafkaError: the broker did not acknowledge it.
        """
        target = await self.lifecycle.check(model, version, allow_replan)
        workers = self.board.workers()
        if workers and all(s.model == f"{model}:{target}" for s in workers):
            raise SwapError(f"{model} version {target} is already serving on every worker", 409)
        desired = DesiredModel(
            request=uuid.uuid4().hex,
            model=model,
            version=target,
            allow_replan=allow_replan,
            at=datetime.now(UTC),
            by=self.worker_id,
        )
        await self._writer.send(desired.model_dump_json().encode(), KEY)
        log.info(
            "worker %s: cluster swap %s to %s:%d written", self.worker_id, desired.request,
            model, target,
        )  # fmt: skip
        return desired

    async def outcome(self, desired: DesiredModel, timeout_s: float) -> ClusterSwap:
        """Each live worker's outcome of ``desired``, once all have one or after
        ``timeout_s`` (then ``complete`` is False)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            workers = self.board.workers()
            reports = [_outcome_of(s, desired) for s in workers]
            complete = bool(workers) and all(r.state in ("ok", "failed") for r in reports)
            if complete or loop.time() >= deadline:
                return ClusterSwap(
                    request=desired.request,
                    model=desired.model,
                    version=desired.version,
                    complete=complete,
                    workers=reports,
                )
            await asyncio.sleep(0.2)

    # --- applying ------------------------------------------------------------------------

    def _apply_record(self, record: ConsumerRecord) -> None:
        if record.key != KEY or record.value is None:
            return
        try:
            self.desired = DesiredModel.model_validate_json(record.value)
        except ValidationError as e:
            log.warning("model topic record ignored: %s", e.errors()[0]["msg"])
            return
        self._changed.set()

    def _reset(self) -> None:
        self.desired = None

    async def _follow(self) -> None:
        while True:
            await self._changed.wait()
            self._changed.clear()
            if self.desired is not None:
                await self._apply(self.desired)

    async def _apply(self, desired: DesiredModel) -> None:
        if self.report is not None and self.report.request == desired.request:
            return  # applied already (settle() at start, then the tail's record)
        target = (desired.model, desired.version)
        self.report = SwapReport(
            worker=self.worker_id, request=desired.request, model=desired.model,
            version=desired.version, state="running",
        )  # fmt: skip
        error = ""
        if self.lifecycle.serving != target:
            error = await self._swap(desired)
        serving = "{}:{}".format(*self.lifecycle.serving)
        self.report = self.report.model_copy(
            update={"state": "failed" if error else "ok", "error": error, "serving": serving}
        )
        log.log(
            logging.ERROR if error else logging.INFO,
            "worker %s: cluster swap %s to %s:%d %s%s",
            self.worker_id, desired.request, desired.model, desired.version,
            "failed" if error else "done", f": {error}" if error else "",
        )  # fmt: skip

    async def _swap(self, desired: DesiredModel) -> str:
        """Swap this worker; returns the error, or "" once it serves the version."""
        target = (desired.model, desired.version)
        while True:
            async with self.lifecycle.lock:  # a local swap or a Triton recovery goes first
                pass
            try:
                await self.lifecycle.swap(
                    desired.model, desired.version, desired.allow_replan, trigger="cluster"
                )
            except SwapError as e:
                if self.lifecycle.serving == target:
                    return ""
                if self.lifecycle.busy:
                    continue  # another swap began in between: wait for it too
                return str(e)
            return ""


def _outcome_of(status: WorkerStatus, desired: DesiredModel) -> SwapReport:
    if status.swap is not None and status.swap.request == desired.request:
        return status.swap
    # Not reported yet, or it served that version already before the request arrived.
    done = status.model == f"{desired.model}:{desired.version}"
    return SwapReport(
        worker=status.worker, request=desired.request, model=desired.model,
        version=desired.version, state="ok" if done else "pending", serving=status.model,
    )  # fmt: skip


class ClusterModelCommands:
    """The Kafka command processor's ``ModelControl`` on a cluster worker: a swap goes to every
    worker through the model topic; a new version is added here (a repository the workers
    share makes it theirs too) and then swapped to everywhere if asked."""

    rejections: tuple[type[Exception], ...] = (SwapError, RegistryError)

    def __init__(self, lifecycle: ModelLifecycle, models: ClusterModel) -> None:
        self.lifecycle = lifecycle
        self.models = models

    async def swap(self, model: str, version: int | Literal["latest"], allow_replan: bool) -> None:
        """Swap every worker, as a Kafka command."""
        await self.models.request(model, version, allow_replan)

    async def add_version(
        self, model: str, path: str, sha256: str | None, swap: bool, allow_replan: bool
    ) -> None:
        """Add a version from a server-side path, then swap every worker to it if asked."""
        number, _ = await self.lifecycle.add_version(
            model, Path(path), sha256=sha256, trigger="kafka"
        )
        if swap:
            await self.models.request(model, number, allow_replan)
