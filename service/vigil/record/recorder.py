"""Smart recording: per-stream pre-event caches, and clips started by REST, Kafka and rules.

Every stream's source hands its encoded packets to :meth:`Recorder.sink` (the packet tap, on
the stream's decoder thread). The recorder keeps them in the stream's
:class:`~vigil.record.cache.PreEventCache` and, while a clip is open, writes them to it.

A clip covers ``[start − pre-roll, end + post-roll]`` in wall-clock time (the clock of the
packets' arrival, of frames' capture times and of events). It begins with the cache's packets
from the last keyframe at or before its start, so it never starts late; it ends with the first
packet past its end. A trigger for a stream that is already recording extends that clip
instead of starting another one (up to ``max_duration_s``). A stream that stops sending
(a camera outage) keeps its clip open for ``stall_timeout_s`` past the end: packets after a
reconnect go on in the same clip, with timestamps that stay monotonic.

Writing happens on the decoder thread (and, for a stalled stream, in :meth:`Recorder.tick`),
never on the event loop or the stage chain: a trigger only registers the clip. When a clip
closes, ``on_closed`` is called with it (the runtime turns that into a ``recording`` event).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from vigil.events.schema import Event, EventType
from vigil.record.cache import PreEventCache
from vigil.record.clip import ClipWriteError, ClipWriter
from vigil.record.store import Recording, RecordingStore, TriggerKind
from vigil.recording_settings import RecordingSettings, RecordRule
from vigil.sources.packets import EncodedPacket, PacketSink
from vigil.stages.base import FrameResult

log = logging.getLogger(__name__)


class NotRecordingError(Exception):
    """A stop for a stream that is not recording."""


class UnknownStreamError(Exception):
    """A recording for a stream the recorder does not know."""


@dataclass
class _Clip:
    rec: Recording
    writer: ClipWriter
    until_s: float
    backlog: list[EncodedPacket]
    rules: set[str] = field(default_factory=set)
    last_saved_s: float = 0.0


class _StreamRecording:
    """One stream's cache and open clip; everything under ``lock``."""

    def __init__(self, stream_id: str, settings: RecordingSettings) -> None:
        self.stream_id = stream_id
        self.lock = threading.Lock()
        self.cache = PreEventCache(settings.cache_seconds, settings.cache_max_bytes)
        self.clip: _Clip | None = None
        self.last_packet_s = 0.0
        self.removed = False
        self.rule_ended_s: dict[str, float] = {}


class Recorder:
    """Caches, clips and triggers of every stream.

    Args:
        settings: The ``recording`` settings.
        store: Where clips and their metadata go.
        on_closed: Called with each clip once it is closed (any thread; must not block).
    """

    def __init__(
        self,
        settings: RecordingSettings,
        store: RecordingStore,
        on_closed: Callable[[Recording], None] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.on_closed = on_closed
        self.failures: Counter[str] = Counter()
        self.deleted = 0
        self._streams: dict[str, _StreamRecording] = {}
        self._lock = threading.Lock()

    # --- streams and packets -------------------------------------------------------------------

    def sink(self, stream_id: str) -> PacketSink:
        """The packet tap of a stream (its cache is made on first use)."""
        with self._lock:
            state = self._streams.get(stream_id)
            if state is None:
                state = self._streams[stream_id] = _StreamRecording(stream_id, self.settings)

        def push(packet: EncodedPacket) -> None:
            self._push(state, packet)

        return push

    def stream_removed(self, stream_id: str) -> None:
        """Close the stream's clip and forget its cache."""
        with self._lock:
            state = self._streams.pop(stream_id, None)
        if state is None:
            return
        with state.lock:
            state.removed = True
            state.cache.clear()
            if state.clip is not None:
                self._close(state, "complete")

    def cache_bytes(self) -> dict[str, int]:
        """Bytes held in each stream's pre-event cache."""
        with self._lock:
            states = list(self._streams.values())
        return {s.stream_id: s.cache.bytes for s in states}

    def recording_now(self) -> list[str]:
        """Streams with an open clip."""
        with self._lock:
            return [s.stream_id for s in self._streams.values() if s.clip is not None]

    def _push(self, state: _StreamRecording, packet: EncodedPacket) -> None:
        with state.lock:
            if state.removed:
                return
            state.last_packet_s = packet.arrival_s
            state.cache.push(packet)
            clip = state.clip
            if clip is None:
                return
            if packet.arrival_s > clip.until_s or self._too_long(clip, packet.arrival_s):
                self._close(state, "complete")
                return
            self._write(state, [*self._take_backlog(clip), packet])

    # --- triggers ------------------------------------------------------------------------------

    def start(
        self,
        stream_id: str,
        start_s: float | None = None,
        end_s: float | None = None,
        *,
        pre_roll_s: float = 0.0,
        post_roll_s: float = 0.0,
        kind: TriggerKind = "rest",
        rule: str | None = None,
    ) -> tuple[Recording, bool]:
        """Record ``[start − pre_roll, end + post_roll]`` of a stream, or extend its open clip.

        ``start`` defaults to now (a future start begins now, as DeepStream does); ``end``
        None records ``default_duration_s`` unless stopped.

        Returns:
            The clip, and True when it is a new one (False: an open clip was extended).

        Raises:
            UnknownStreamError: the stream has no packet tap (no such stream, or its source
                hands out no packets).
        """
        now = time.time()
        begin = min(now if start_s is None else start_s, now) - pre_roll_s
        until = (begin + pre_roll_s + self.settings.default_duration_s) if end_s is None else end_s
        until += post_roll_s
        state = self._state(stream_id)
        with state.lock:
            clip = state.clip
            if clip is not None:
                clip.until_s = max(clip.until_s, until)
                if rule is not None:
                    clip.rules.add(rule)
                return clip.rec, False
            rec = self.store.new(stream_id, self.settings.container, kind, rule)
            writer = ClipWriter(
                self.store.path_of(rec), self.settings.container, self.settings.fragment_s
            )
            backlog = state.cache.since(begin)
            state.clip = _Clip(rec, writer, until, backlog, {rule} if rule else set())
            log.info("recording %s of stream %s (%s)", rec.id, stream_id, rule or kind)
            return rec, True

    def stop(
        self, stream_id: str, end_s: float | None = None, post_roll_s: float = 0.0
    ) -> Recording:
        """End a stream's open clip at ``end`` (default now) + ``post_roll``.

        Raises:
            UnknownStreamError: no such stream.
            NotRecordingError: the stream has no open clip.
        """
        state = self._state(stream_id)
        with state.lock:
            clip = state.clip
            if clip is None:
                raise NotRecordingError(f"stream {stream_id!r} is not recording")
            clip.until_s = (time.time() if end_s is None else end_s) + post_roll_s
            return clip.rec

    def _state(self, stream_id: str) -> _StreamRecording:
        with self._lock:
            state = self._streams.get(stream_id)
        if state is None:
            raise UnknownStreamError(f"stream {stream_id!r} has no recorder (no such stream)")
        return state

    def tick(self, now_s: float | None = None) -> None:
        """Write the backlog of stalled streams and close the clips that are over: past
        their end with no packet for ``stall_timeout_s``, or longer than allowed."""
        now = time.time() if now_s is None else now_s
        with self._lock:
            states = list(self._streams.values())
        for state in states:
            with state.lock:
                clip = state.clip
                if clip is None:
                    continue
                if clip.backlog and now - state.last_packet_s > 1.0:
                    self._write(state, self._take_backlog(clip))
                stalled = (
                    now - max(state.last_packet_s, clip.until_s) > self.settings.stall_timeout_s
                )
                quiet_past_end = now > clip.until_s and now - state.last_packet_s > 2.0
                if state.clip is not None and (stalled or quiet_past_end):
                    self._close(state, "complete")

    # --- Kafka (RecordingHandler) ------------------------------------------------------------

    async def start_recording(
        self, sensor_id: str, start: datetime | None, end: datetime | None
    ) -> None:
        """DeepStream's ``start-recording``: from ``start`` (reaching into the cache when it
        is past) to ``end`` (None: until ``stop-recording`` or the default duration)."""
        self.start(
            sensor_id,
            None if start is None else start.timestamp(),
            None if end is None else end.timestamp(),
            kind="kafka",
        )

    async def stop_recording(
        self, sensor_id: str, start: datetime | None, end: datetime | None
    ) -> None:
        """DeepStream's ``stop-recording``: the open clip ends now (or at ``end``)."""
        del start  # DeepStream ignores it on a stop
        self.stop(sensor_id, None if end is None else end.timestamp())

    # --- rules (a ResultTap) -----------------------------------------------------------------

    def observe(self, results: Sequence[FrameResult], events: list[Event]) -> None:
        """Start or extend clips on the events the rules name; those events then carry the
        clip's URL in ``videoPath``."""
        del results
        rules = self.settings.rules
        if not rules or not events:
            return
        for i, event in enumerate(events):
            for rule in rules:
                if not _matches(rule, event):
                    continue
                rec = self._rule_trigger(rule, event)
                if rec is not None:
                    events[i] = event.model_copy(update={"video_path": rec.url})
                    break

    def _rule_trigger(self, rule: RecordRule, event: Event) -> Recording | None:
        stream_id = event.sensor.id
        t = event.timestamp.timestamp()
        with self._lock:
            state = self._streams.get(stream_id)
        if state is None:
            return None
        with state.lock:
            recording = state.clip is not None
            ended = state.rule_ended_s.get(rule.name)
        if not recording and ended is not None and t - ended < rule.cooldown_s:
            return None
        rec, _ = self.start(
            stream_id, t, t, pre_roll_s=rule.pre_roll_s, post_roll_s=rule.post_roll_s,
            kind="rule", rule=rule.name,
        )  # fmt: skip
        return rec

    # --- writing (under the stream's lock) ---------------------------------------------------

    def _too_long(self, clip: _Clip, now_s: float) -> bool:
        return bool(clip.rec.start_s) and now_s - clip.rec.start_s > self.settings.max_duration_s

    @staticmethod
    def _take_backlog(clip: _Clip) -> list[EncodedPacket]:
        backlog, clip.backlog = clip.backlog, []
        return backlog

    def _write(self, state: _StreamRecording, packets: list[EncodedPacket]) -> None:
        clip = state.clip
        assert clip is not None
        try:
            for packet in packets:
                if clip.writer.packets == 0 and not packet.keyframe:
                    continue  # a clip starts on a keyframe
                clip.writer.write(packet)
                if not clip.rec.start_s:
                    clip.rec = replace(clip.rec, start_s=packet.arrival_s, codec=clip.writer.codec)
                if packet.keyframe and packet.arrival_s - clip.last_saved_s >= 1.0:
                    # Kept current on disk, so a clip cut short by a crash is listed right.
                    clip.last_saved_s = packet.arrival_s
                    clip.rec = self.store.save(
                        replace(clip.rec, duration_s=clip.writer.duration_s, end_s=None)
                    )
        except ClipWriteError as e:
            reason = "no_space" if e.no_space else "write_error"
            self.failures[reason] += 1
            log.error("recording %s failed: %s", clip.rec.id, e)
            error = f"disk full: {e}" if e.no_space else str(e)
            self._close(state, "failed", error)

    def _close(self, state: _StreamRecording, outcome: str, error: str | None = None) -> None:
        clip, state.clip = state.clip, None
        assert clip is not None
        with contextlib.suppress(ClipWriteError):
            if clip.backlog and outcome != "failed":
                for packet in self._take_backlog(clip):
                    if clip.writer.packets or packet.keyframe:
                        clip.writer.write(packet)
        try:
            clip.writer.close()
        except ClipWriteError as e:
            outcome, error = "failed", error or str(e)
            self.failures["no_space" if e.no_space else "write_error"] += 1
        if clip.writer.packets == 0 and outcome == "complete":
            outcome, error = "failed", "no video arrived while recording"
        rec = clip.rec
        start = rec.start_s or rec.created_s
        rec = self.store.save(
            replace(
                rec,
                state=outcome,  # type: ignore[arg-type]
                end_s=start + clip.writer.duration_s,
                duration_s=clip.writer.duration_s,
                codec=clip.writer.codec,
                error=error,
            )
        )
        for name in clip.rules:  # in the packets' clock, as event times are
            state.rule_ended_s[name] = rec.end_s or time.time()
        log.info("recording %s %s (%.1f s)", rec.id, rec.state, rec.duration_s)
        if self.on_closed is not None:
            self.on_closed(rec)


def _matches(rule: RecordRule, event: Event) -> bool:
    if rule.streams and event.sensor.id not in rule.streams:
        return False
    kind = event.event.type
    if rule.on == "class_seen":
        return (
            kind in (EventType.ENTRY, EventType.DETECTION)
            and event.object.class_name in rule.classes
        )
    if kind.value != rule.on:
        return False
    analytics = event.object.analytics
    if rule.analytics_rule is not None and (
        analytics is None or analytics.rule != rule.analytics_rule
    ):
        return False
    return not rule.classes or event.object.class_name in rule.classes
