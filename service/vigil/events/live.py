"""The live event feed: a sink that fans events out to the web console's subscribers.

Every subscriber (one ``GET /api/v1/events/live`` connection) has its own bounded queue. The
pipeline only appends to those queues — it never waits for a subscriber — and a subscriber
that reads slower than events arrive loses its *oldest* events (counted in
``vigil_live_events_dropped_total`` and reported to it), so a slow browser can neither slow
the pipeline nor make it hold memory. With no subscriber, :meth:`LiveEvents.emit` returns at
once. Events are serialised by the reader, at its own pace, not in the pipeline's path.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge

from vigil.events.schema import Event, to_json_line
from vigil.events.sinks import EventSink


class TooManySubscribersError(Exception):
    """``events.live_max_subscribers`` subscribers are connected already."""


class Subscription:
    """One subscriber's queue: events of one stream (or all), oldest dropped when full.

    Attributes:
        stream_id: Only this stream's events (None: every stream's).
        dropped: Events dropped for this subscriber since :meth:`take_dropped` last ran.
    """

    def __init__(self, stream_id: str | None, size: int) -> None:
        self.stream_id = stream_id
        self.dropped = 0
        self._queue: collections.deque[Event] = collections.deque(maxlen=size)
        self._ready = asyncio.Event()
        self._closed = False

    @property
    def closed(self) -> bool:
        """True once the feed has ended (the service is stopping)."""
        return self._closed

    def offer(self, event: Event) -> bool:
        """Queue ``event``; True when the oldest queued event was dropped to make room."""
        full = len(self._queue) == self._queue.maxlen
        self._queue.append(event)  # a deque with maxlen drops from the other end
        if full:
            self.dropped += 1
        self._ready.set()
        return full

    async def next_batch(self, timeout_s: float) -> list[Event]:
        """Every queued event, waiting up to ``timeout_s`` for one (empty on timeout or
        when closed)."""
        if not self._queue and not self._closed:
            try:
                async with asyncio.timeout(timeout_s):
                    await self._ready.wait()
            except TimeoutError:
                pass
        self._ready.clear()
        batch = list(self._queue)
        self._queue.clear()
        return batch

    def take_dropped(self) -> int:
        """Events dropped since the last call (and reset the count)."""
        dropped, self.dropped = self.dropped, 0
        return dropped

    def close(self) -> None:
        """End the feed: a waiting :meth:`next_batch` returns at once."""
        self._closed = True
        self._ready.set()


class LiveEvents(EventSink):
    """Fans each batch's events out to the live subscribers.

    Args:
        max_subscribers: Subscribers allowed at once; one more raises
            :class:`TooManySubscribersError`.
        queue_events: Each subscriber's queue length (events).
        registry: Where the drop counter and subscriber gauge are registered.
    """

    def __init__(
        self, max_subscribers: int, queue_events: int, registry: CollectorRegistry | None = None
    ) -> None:
        self.max_subscribers = max_subscribers
        self.queue_events = queue_events
        self._subscribers: list[Subscription] = []
        self._closed = False
        self._dropped = Counter(
            "vigil_live_events_dropped",
            "Events dropped for live-feed subscribers that read too slowly (oldest first)",
            registry=registry,
        )
        self._gauge = Gauge(
            "vigil_live_event_subscribers",
            "Clients connected to the live event feed",
            registry=registry,
        )
        self._gauge.set_function(lambda: len(self._subscribers))

    @property
    def subscribers(self) -> int:
        """Subscribers connected now."""
        return len(self._subscribers)

    def subscribe(self, stream_id: str | None = None) -> Subscription:
        """A new subscription; release it with :meth:`unsubscribe` (idempotent).

        Raises:
            TooManySubscribersError: ``max_subscribers`` are connected.
        """
        if len(self._subscribers) >= self.max_subscribers:
            raise TooManySubscribersError(
                f"{self.max_subscribers} clients follow the live event feed already "
                "(events.live_max_subscribers)"
            )
        subscription = Subscription(stream_id, self.queue_events)
        if self._closed:
            subscription.close()
        self._subscribers.append(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Forget ``subscription`` (a client left); idempotent."""
        if subscription in self._subscribers:
            self._subscribers.remove(subscription)

    async def emit(self, events: Sequence[Event]) -> None:
        """Queue each event for the subscribers that want it; never waits."""
        if not self._subscribers or not events:
            return
        dropped = 0
        for subscription in self._subscribers:
            wanted = subscription.stream_id
            for event in events:
                if (wanted is None or event.sensor.id == wanted) and subscription.offer(event):
                    dropped += 1
        if dropped:
            self._dropped.inc(dropped)

    def end_subscriptions(self) -> None:
        """End every feed (the service is stopping): open connections finish their
        response instead of holding the server's shutdown."""
        self._closed = True
        for subscription in self._subscribers:
            subscription.close()

    async def close(self) -> None:
        """End every feed; idempotent."""
        self.end_subscriptions()


def sse_message(event: Event, seq: int) -> str:
    """One Server-Sent Events message: ``id`` the feed's sequence number, ``data`` the
    event's nvmsgconv full-schema JSON (one line)."""
    return f"id: {seq}\ndata: {to_json_line(event)}\n\n"
