"""Calls from one cluster worker to another's REST API.

Kafka's ``start-recording`` / ``stop-recording`` commands land on whichever worker the
command topic's group gives them to, but a clip can only be cut where the stream's packets
are: :class:`ClusterRecording` applies a command here when this worker runs the sensor's
stream, and otherwise passes it to the owner's recordings endpoint (the owner named in the
status topic, with its ``cluster.advertised_url``), as the REST API does for calls about
another worker's stream (:mod:`vigil.api.forward`).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import httpx

from vigil.cluster.worker import ClusterWorker
from vigil.commands.processor import CommandRejected, RecordingHandler
from vigil.pipeline.manager import StreamNotFoundError
from vigil.record.recorder import NotRecordingError

log = logging.getLogger(__name__)

#: Marks a request one worker passes to another (its value: the worker that passed it); the
#: receiver never passes it on again, so two workers that disagree about an owner cannot loop.
FORWARDED = b"x-vigil-forwarded-by"
#: Names the worker that answered a forwarded request.
ANSWERED_BY = b"x-vigil-worker"

_TIMEOUT = httpx.Timeout(10.0)


class OwnerRefusedError(ValueError):
    """The owner refused a passed-on command (its detail says why)."""


class ClusterRecording:
    """The recording handler of Kafka commands on a cluster worker.

    Args:
        local: This worker's recorder (None: recording is off here; a command for a stream
            this worker runs is then refused as unsupported).
        worker: This process's cluster worker.
        api_key: A key the owners accept (the first of ``api.api_keys``; None: no keys).
        transport: How to reach the owners (tests; default: the network).
    """

    def __init__(
        self,
        local: RecordingHandler | None,
        worker: ClusterWorker,
        api_key: str | None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.local = local
        self.worker = worker
        self.api_key = api_key
        self.transport = transport

    async def start_recording(
        self, sensor_id: str, start: datetime | None, end: datetime | None
    ) -> None:
        """Start (or extend) a clip on the stream's owner."""
        if self._here(sensor_id):
            await self._local().start_recording(sensor_id, start, end)
            return
        body: dict[str, str] = {}
        now = datetime.now(UTC)
        if start is not None:
            # DeepStream starts a clip asked for the future at once; the REST API refuses a
            # start in the future, so pass "now" for it.
            start = min(start, now)
            body["start"] = start.isoformat()
        if end is not None:
            if start is not None and end <= start:
                raise OwnerRefusedError("end: must be after start")
            body["end"] = end.isoformat()
        await self._post(sensor_id, "recordings", body)

    async def stop_recording(
        self, sensor_id: str, start: datetime | None, end: datetime | None
    ) -> None:
        """End the stream's open clip on its owner (now: the REST stop takes no time)."""
        if self._here(sensor_id):
            await self._local().stop_recording(sensor_id, start, end)
            return
        await self._post(sensor_id, "recordings/stop", None)

    def _here(self, sensor_id: str) -> bool:
        return sensor_id in self.worker.running

    def _local(self) -> RecordingHandler:
        if self.local is None:
            raise CommandRejected("unsupported", "smart recording is not configured")
        return self.local

    async def _post(self, sensor_id: str, path: str, body: dict[str, str] | None) -> None:
        owner = self.worker.board.owner_elsewhere(sensor_id, self.worker.worker_id)
        if owner is None:
            raise StreamNotFoundError(f"no worker runs stream {sensor_id!r} now")
        if not owner.api:
            raise StreamNotFoundError(
                f"stream {sensor_id!r} runs on worker {owner.worker}, which advertises no API "
                "URL (cluster.advertised_url)"
            )
        headers = {FORWARDED.decode(): self.worker.worker_id}
        if self.api_key:
            headers["X-API-Key"] = self.api_key
        url = f"{owner.api.rstrip('/')}/api/v1/streams/{sensor_id}/{path}"
        async with httpx.AsyncClient(timeout=_TIMEOUT, transport=self.transport) as client:
            response = await client.post(url, json=body, headers=headers)
        if response.status_code == 404:
            raise StreamNotFoundError(_detail(response))
        if response.status_code == 409 and path.endswith("stop"):
            raise NotRecordingError(f"worker {owner.worker}: {_detail(response)}")
        if 400 <= response.status_code < 500:
            raise OwnerRefusedError(f"worker {owner.worker}: {_detail(response)}")
        response.raise_for_status()  # a 5xx: handler_failed, the command is dead-lettered
        log.info("recording command for %s passed to worker %s", sensor_id, owner.worker)


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = None
    return str(detail or response.text or response.status_code)[:300]
