"""Prometheus collectors: per-stream, Kafka and analytics figures read at scrape time.

Per-stream figures are *not* kept as labelled metric children: a collector reads the live
stream counters at scrape time, so a removed stream's series disappear with it and
adding/removing cameras never grows the registry. The same goes for the Kafka publisher's and
the analytics stage's counters. The hot-path histograms are in :mod:`vigil.metrics`.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from vigil.analytics import AnalyticsCounts
from vigil.events.kafka_publisher import KafkaCounters
from vigil.pipeline.stream_state import StreamState, StreamStatus


class StreamCollector(Collector):
    """Per-stream series read from the stream counters at scrape time.

    Args:
        streams: Returns the current streams.
        queue_depths: Returns frames waiting per stream.
    """

    def __init__(
        self,
        streams: Callable[[], Iterable[StreamStatus]],
        queue_depths: Callable[[], dict[str, int]],
    ) -> None:
        self.streams = streams
        self.queue_depths = queue_depths

    def collect(self) -> Iterator[Metric]:
        """Yield the per-stream metric families."""
        labels = ["stream"]
        fps = GaugeMetricFamily("vigil_stream_fps", "Processed frames per second", labels=labels)
        frames = CounterMetricFamily(
            "vigil_stream_frames", "Frames processed (inferred)", labels=labels
        )
        decoded = CounterMetricFamily(
            "vigil_stream_decoded_frames", "Frames decoded", labels=labels
        )
        drops = CounterMetricFamily(
            "vigil_stream_dropped_frames", "Frames dropped, by reason", labels=["stream", "reason"]
        )
        errors = CounterMetricFamily(
            "vigil_stream_decode_errors", "Packets that failed to decode", labels=labels
        )
        reconnects = CounterMetricFamily(
            "vigil_stream_reconnects", "Reopen attempts of a live source", labels=labels
        )
        state = GaugeMetricFamily(
            "vigil_stream_state", "1 for the stream's current state", labels=["stream", "state"]
        )
        depth = GaugeMetricFamily("vigil_queue_depth", "Frames waiting in the queue", labels=labels)
        depths = self.queue_depths()
        for status in self.streams():
            sid = status.stream_id
            stats = status.stats
            fps.add_metric([sid], stats.fps)
            frames.add_metric([sid], stats.frames_processed)
            decoded.add_metric([sid], stats.frames_decoded)
            for reason, n in stats.dropped.items():
                drops.add_metric([sid, reason], n)
            errors.add_metric([sid], stats.decode_errors)
            reconnects.add_metric([sid], stats.reconnects)
            for s in StreamState:
                state.add_metric([sid, s.value], 1.0 if status.state is s else 0.0)
            depth.add_metric([sid], depths.get(sid, 0))
        yield from (fps, frames, decoded, drops, errors, reconnects, state, depth)


class KafkaCollector(Collector):
    """Kafka producer, outbox and command-consumer figures, read at scrape time.

    Args:
        counters: The events publisher's counters (updated in place).
        buffer_stats: Returns ``(depth, bytes_used, dropped)`` of the outbox.
        commands: Returns ``(applied by result, rejected by reason, consumer lag)``, or None
            when no command consumer runs.
    """

    def __init__(
        self,
        counters: KafkaCounters,
        buffer_stats: Callable[[], tuple[int, int, dict[str, int]]],
        commands: Callable[[], tuple[dict[str, int], dict[str, int], int]] | None = None,
    ) -> None:
        self.counters = counters
        self.buffer_stats = buffer_stats
        self.commands = commands

    def collect(self) -> Iterator[Metric]:
        """Yield the Kafka metric families."""
        counters = self.counters
        depth, used, dropped = self.buffer_stats()
        yield CounterMetricFamily(
            "vigil_kafka_events_stored", "Events stored for Kafka", value=counters.stored
        )
        yield CounterMetricFamily(
            "vigil_kafka_events_acked", "Events acknowledged by the broker", value=counters.acked
        )
        yield CounterMetricFamily(
            "vigil_kafka_send_failures",
            "Event sends that failed (the events stay in the outbox and are retried)",
            value=counters.send_failures,
        )
        yield _by_label(
            "vigil_kafka_events_dropped",
            "Events dropped by the outbox's full policy, by reason",
            "reason",
            dropped,
        )
        yield GaugeMetricFamily(
            "vigil_kafka_outbox_batches",
            "Stored batches waiting for the broker (one per inference batch with events)",
            value=depth,
        )
        yield GaugeMetricFamily("vigil_kafka_outbox_bytes", "Bytes waiting", value=used)
        yield GaugeMetricFamily(
            "vigil_kafka_connected", "1 if the producer is connected", value=int(counters.connected)
        )
        if self.commands is None:
            return
        applied, rejected, lag = self.commands()
        yield _by_label("vigil_commands_applied", "Commands applied, by result", "result", applied)
        yield _by_label(
            "vigil_commands_rejected",
            "Commands sent to the dead-letter topic, by reason",
            "reason",
            rejected,
        )
        yield GaugeMetricFamily(
            "vigil_commands_consumer_lag", "Command messages not consumed yet", value=lag
        )


def _by_label(
    name: str, documentation: str, label: str, counts: Mapping[str, float]
) -> CounterMetricFamily:
    """A counter family with one sample per value of ``label``."""
    family = CounterMetricFamily(name, documentation, labels=[label])
    for value, n in counts.items():
        family.add_metric([value], n)
    return family


class AnalyticsCollector(Collector):
    """Per-stream analytics counts, read at scrape time from the analytics stage's snapshot.

    Args:
        snapshot: Returns stream id → :class:`~vigil.analytics.AnalyticsCounts`.
        label: Class id → class name.
        stage_failures: Returns stage name → batches it failed on.
    """

    def __init__(
        self,
        snapshot: Callable[[], Mapping[str, AnalyticsCounts]],
        label: Callable[[int], str],
        stage_failures: Callable[[], Mapping[str, int]],
    ) -> None:
        self.snapshot = snapshot
        self.label = label
        self.stage_failures = stage_failures

    def collect(self) -> Iterator[Metric]:
        """Yield the analytics metric families."""
        crossings = CounterMetricFamily(
            "vigil_line_crossings",
            "Line crossings, by stream, line, direction and class",
            labels=["stream", "line", "direction", "class"],
        )
        in_zone = GaugeMetricFamily(
            "vigil_zone_objects",
            "Objects now in a crowding zone, ROI or dwell zone",
            labels=["stream", "zone", "kind"],
        )
        raised = GaugeMetricFamily(
            "vigil_crowding_raised", "1 while a crowding alert is raised", labels=["stream", "zone"]
        )
        episodes = CounterMetricFamily(
            "vigil_crowding_alerts", "Crowding alerts raised", labels=["stream", "zone"]
        )
        dwell = CounterMetricFamily(
            "vigil_dwell_exceeded", "Objects that stayed past a dwell threshold",
            labels=["stream", "zone"],
        )  # fmt: skip
        for sid, counts in self.snapshot().items():
            for line, ways in counts.lines.items():
                for way, by_class in ways.items():
                    for cls, n in by_class.items():
                        crossings.add_metric([sid, line, way, self.label(int(cls))], n)
            for zone, c in counts.crowding.items():
                in_zone.add_metric([sid, zone, "crowding"], c["count"])
                raised.add_metric([sid, zone], c["raised"])
                episodes.add_metric([sid, zone], c["episodes"])
            for zone, d in counts.dwell.items():
                in_zone.add_metric([sid, zone, "dwell"], d["inside"])
                dwell.add_metric([sid, zone], d["exceeded"])
            for roi, n in counts.rois.items():
                in_zone.add_metric([sid, roi, "roi"], n)
        yield from (crossings, in_zone, raised, episodes, dwell)
        yield _by_label(
            "vigil_stage_failures",
            "Batches a stage failed on (its output for them was lost)",
            "stage",
            self.stage_failures(),
        )


class ThreadCollector(Collector):
    """The process's threads by role, read at scrape time.

    A Python thread's role is its name up to the first non-letter (``decode``, ``stages``,
    ``asyncio`` for the event loop's executor, ...); ``native`` counts the threads no Python
    code started (FFmpeg's decoder threads, gRPC's). A role that only ever grows while cameras
    come and go is a leak; the churn test reads this.
    """

    def collect(self) -> Iterator[Metric]:
        """Yield ``vigil_threads{role}``."""
        roles: dict[str, int] = {}
        for thread in threading.enumerate():
            role = _ROLE.match(thread.name)
            key = role.group(0).lower() if role else "unnamed"
            roles[key] = roles.get(key, 0) + 1
        try:
            native = len(os.listdir("/proc/self/task")) - sum(roles.values())
        except OSError:  # not Linux: no way to count threads Python did not start
            native = None
        if native is not None:
            roles["native"] = max(native, 0)
        family = GaugeMetricFamily("vigil_threads", "Threads of this process", labels=["role"])
        for role, count in sorted(roles.items()):
            family.add_metric([role], count)
        yield family


_ROLE = re.compile(r"[A-Za-z]+")
