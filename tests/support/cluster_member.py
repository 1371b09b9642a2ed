"""A cluster worker without a pipeline: the real :class:`~vigil.cluster.worker.ClusterWorker`
(group membership, assignor, control topic, status topic) over a ledger of streams.

Every stream start and stop is printed as a JSON line with a wall-clock time, so a test can
check from the outside, across processes, that a stream never runs on two workers at once
and how long it was down when it moved. The pipeline is left out on purpose: this process is
for the group's behaviour (``tests/integration/test_cluster_membership.py``); the full workers
run in ``tests/integration/test_cluster.py``.

Usage: ``python -m tests.support.cluster_member BOOTSTRAP WORKER_ID [--partitions N]``
(SIGTERM or SIGINT: leave the group cleanly).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import time

from vigil.cluster.worker import ClusterWorker
from vigil.cluster_settings import ClusterSettings
from vigil.config import KafkaSettings
from vigil.pipeline.manager import ManagedStream, StreamExistsError, StreamNotFoundError
from vigil.pipeline.stream_state import StreamState, StreamStatus
from vigil.specs import StreamSpec


def say(event: str, **fields: object) -> None:
    """One JSON line on stdout: ``{"t": <unix time>, "event": ..., ...}``."""
    print(json.dumps({"t": time.time(), "event": event, **fields}), flush=True)


class LedgerStreams:
    """Runs nothing: records which streams this worker would run (a ``StreamControl``)."""

    def __init__(self) -> None:
        self.streams: dict[str, ManagedStream] = {}

    def __contains__(self, stream_id: str) -> bool:
        return stream_id in self.streams

    def get(self, stream_id: str) -> ManagedStream:
        try:
            return self.streams[stream_id]
        except KeyError:
            raise StreamNotFoundError(stream_id) from None

    async def add(self, spec: StreamSpec) -> ManagedStream:
        if spec.id in self.streams:
            raise StreamExistsError(spec.id)
        status = StreamStatus(spec.id, spec.url)
        status.transition(StreamState.RUNNING)
        managed = ManagedStream(spec, status)
        self.streams[spec.id] = managed
        say("start", stream=spec.id)
        return managed

    async def remove(self, stream_id: str) -> None:
        if self.streams.pop(stream_id, None) is None:
            raise StreamNotFoundError(stream_id)
        say("stop", stream=stream_id)


async def main(bootstrap: str, worker_id: str, partitions: int) -> None:
    kafka = KafkaSettings(bootstrap_servers=bootstrap)
    cluster = ClusterSettings(
        enabled=True,
        worker_id=worker_id,
        partitions=partitions,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
        status_interval_s=1.0,
        rebalance_delay_s=1.0,
    )
    worker = ClusterWorker(kafka, cluster, LedgerStreams(), lambda: "none:0")
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done.set)
    await worker.start()
    await worker.wait_ready()  # the topics exist: a test may write streams now
    say("started")
    await done.wait()
    await worker.close()
    say("closed")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bootstrap")
    parser.add_argument("worker")
    parser.add_argument("--partitions", type=int, default=24)
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format=f"%(asctime)s {args.worker} %(name)s %(levelname)s %(message)s",
    )
    asyncio.run(main(args.bootstrap, args.worker, args.partitions))
