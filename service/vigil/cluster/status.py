"""Workers' status: each worker publishes its own to the status topic (key = worker id), and
every worker folds the topic into a :class:`StatusBoard` to answer for the whole cluster."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal

from aiokafka.structs import ConsumerRecord
from pydantic import BaseModel, Field, ValidationError

from vigil.cluster.tail import TopicTail
from vigil.config import KafkaSettings

log = logging.getLogger(__name__)


class StreamReport(BaseModel):
    """One stream as its owner reports it."""

    id: str
    state: str = Field(
        description="starting, running, reconnecting, error, stopped, or pending (not started: "
        "the worker is at its cluster.max_streams)"
    )
    reason: str = ""
    fps: float = 0.0
    frames_processed: int = 0


class SwapReport(BaseModel):
    """A worker's outcome of a cluster-wide model swap."""

    worker: str
    request: str = Field(description="The swap request's id")
    model: str
    version: int
    state: Literal["pending", "running", "ok", "failed"] = Field(
        description="pending: not started on this worker yet"
    )
    error: str = ""
    serving: str = Field("", description="The version it serves afterwards, name:version")


class WorkerStatus(BaseModel):
    """What a worker publishes every ``cluster.status_interval_s``."""

    worker: str = Field(description="The worker id (`cluster.worker_id`)")
    at: datetime = Field(description="When it was published")
    partitions: list[int] = Field(description="Control topic partitions it owns")
    streams: list[StreamReport] = Field(description="The streams it runs")
    model: str = Field(description="The model version it serves, name:version")
    leader: bool = Field(description="It computed the group's latest assignment")
    rebalances: int = Field(description="Assignments it received since it started")
    api: str | None = Field(None, description="Its REST API base URL, if it advertises one")
    swap: SwapReport | None = Field(None, description="Its latest cluster-wide model swap")


class StatusBoard:
    """The latest status of every worker, from the status topic.

    A worker that stops cleanly publishes a tombstone; one that died is shown until its
    status is ``stale_s`` old (then :meth:`workers` leaves it out).

    Args:
        kafka: Connection settings.
        topic: The status topic.
        stale_s: Age after which a worker counts as gone.
    """

    def __init__(self, kafka: KafkaSettings, topic: str, stale_s: float) -> None:
        self.stale_s = stale_s
        self.latest: dict[str, WorkerStatus] = {}
        #: Called with each new status.
        self.listeners: list[Callable[[WorkerStatus], None]] = []
        self.tail = TopicTail(kafka, topic, self._apply, self.latest.clear)

    def workers(self, now: datetime | None = None) -> list[WorkerStatus]:
        """Live workers (status younger than ``stale_s``), by id."""
        now = now or datetime.now(UTC)
        return [
            s
            for _, s in sorted(self.latest.items())
            if (now - s.at).total_seconds() <= self.stale_s
        ]

    def owner(self, stream_id: str) -> tuple[WorkerStatus, StreamReport] | None:
        """The live worker that reports ``stream_id`` most recently, and its report."""
        found = [(w, r) for w in self.workers() for r in w.streams if r.id == stream_id]
        return max(found, key=lambda wr: wr[0].at) if found else None

    def owner_elsewhere(self, stream_id: str, me: str) -> WorkerStatus | None:
        """The live worker other than ``me`` that runs ``stream_id`` (None: nobody, or me):
        where a call about the stream is passed on to."""
        found = self.owner(stream_id)
        return None if found is None or found[0].worker == me else found[0]

    def _apply(self, record: ConsumerRecord) -> None:
        worker = (record.key or b"").decode(errors="replace")
        if record.value is None:
            self.latest.pop(worker, None)
            return
        try:
            status = WorkerStatus.model_validate_json(record.value)
        except ValidationError as e:
            log.warning("status record of %r ignored: %s", worker, e.errors()[0]["msg"])
            return
        self.latest[status.worker] = status
        for listener in self.listeners:
            listener(status)
