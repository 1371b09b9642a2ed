"""A sink that POSTs each batch's events, as a JSON array, to a webhook."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import httpx

from vigil.ext import Event, EventSink, to_json_line

log = logging.getLogger(__name__)


class WebhookSink(EventSink):
    """POSTs ``[event, ...]`` (the nvmsgconv JSON of each) to ``url``.

    Args:
        url: The webhook.
        timeout_s: Per request; a webhook that does not answer in time loses that batch
            (logged): a slow receiver must not hold up the cameras.
        event_types: Send only these ``event.type`` values (all when empty).
    """

    def __init__(self, url: str, timeout_s: float = 5.0, event_types: list[str] | None = None):
        self.url = url
        self.event_types = set(event_types or [])
        self.client = httpx.AsyncClient(timeout=timeout_s)
        self.sent = 0

    async def emit(self, events: Sequence[Event]) -> None:
        chosen = [e for e in events if not self.event_types or e.event.type in self.event_types]
        if not chosen:
            return
        body = "[" + ",".join(to_json_line(e) for e in chosen) + "]"
        try:
            response = await self.client.post(
                self.url, content=body, headers={"content-type": "application/json"}
            )
            response.raise_for_status()
            self.sent += len(chosen)
        except httpx.HTTPError as e:
            log.warning("webhook %s: %d events lost: %s", self.url, len(chosen), e)

    async def close(self) -> None:
        await self.client.aclose()
