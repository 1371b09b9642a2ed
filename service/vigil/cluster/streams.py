"""The cluster's streams as the REST API (native and DeepStream) and Kafka commands change
them on a cluster worker: through the control topic, not the local stream manager."""

from __future__ import annotations

from vigil.cluster.control import Written
from vigil.cluster.worker import ClusterWorker
from vigil.pipeline.manager import StreamExistsError, StreamNotFoundError
from vigil.sources.confine import FileRoots
from vigil.specs import StreamSpec


class ClusterStreams:
    """Adds and removes the cluster's streams through the control topic: what the REST API
    (native and DeepStream) and Kafka commands use on a cluster worker instead of the local
    stream manager. A change is acknowledged by the broker before these return; the owner
    starts or stops the stream a moment later.

    Args:
        worker: This process's worker.
        file_roots: Where client file streams may lie (None: anywhere).
    """

    def __init__(self, worker: ClusterWorker, file_roots: FileRoots | None) -> None:
        self.worker = worker
        self.file_roots = file_roots

    def __contains__(self, stream_id: str) -> bool:
        return stream_id in self.worker.desired.streams

    async def add(self, spec: StreamSpec) -> Written:
        """Write a new stream.

        Raises:
            FileNotAllowedError: a file outside ``file_roots``.
            StreamExistsError: the cluster has a stream with this id.
            KafkaError: the broker did not acknowledge it.
        """
        if self.file_roots is not None:
            self.file_roots.check(spec)
        if spec.id in self:
            raise StreamExistsError(f"stream {spec.id!r} already exists in the cluster")
        return await self.worker.write(spec.id, spec)

    async def replace(self, spec: StreamSpec) -> Written:
        """Write a changed spec of an existing stream (its owner restarts it).

        Raises:
            StreamNotFoundError: no such stream in the cluster.
            KafkaError: the broker did not acknowledge it.
        """
        if spec.id not in self:
            raise StreamNotFoundError(f"no stream with id {spec.id!r} in the cluster")
        return await self.worker.write(spec.id, spec)

    async def remove(self, stream_id: str) -> None:
        """Write a tombstone.

        Raises:
            StreamNotFoundError: no such stream in the cluster.
            KafkaError: the broker did not acknowledge it.
        """
        if stream_id not in self:
            raise StreamNotFoundError(f"no stream with id {stream_id!r} in the cluster")
        await self.worker.write(stream_id, None)
