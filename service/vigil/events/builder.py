"""Detections of a frame → DeepStream-schema events."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np

from vigil.analytics import AnalyticsEvent, ObjectAnalytics
from vigil.detections import ATTRIBUTES, Detections
from vigil.events.object_schema import UNTRACKED_OBJECT_ID, BBox, ObjectAnalyticsInfo, ObjectInfo
from vigil.events.schema import (
    AnalyticsModuleInfo,
    Event,
    EventInfo,
    EventType,
    PlaceInfo,
    SensorInfo,
)
from vigil.frame import Frame
from vigil.infer.model import ModelInfo
from vigil.masks import MASKS
from vigil.stages.base import Alert, FrameResult
from vigil.track import PREDICTED, TrackChangeKind


class EventBuilder:
    """Builds full-schema events: one per object of a frame, plus track exits and analytics
    events (see :meth:`build_result`).

    Secondary-model attributes (``data["attributes"]``) go into the object's class
    sub-object; instance masks (``data["masks"]``) become ``object.maskoutline`` polygons.

    Args:
        model: The model that produced the detections (``analyticsModule``).
        place: The ``place`` block shared by all events.
        module_id: ``analyticsModule.id``.
        video_path: Stream id → its source URL for ``videoPath`` (credentials removed).
        source: ``analyticsModule.source``: "Vigil", or the worker id in a cluster (so a
            consumer can tell which worker processed a sensor's frames).
    """

    def __init__(
        self,
        model: ModelInfo,
        place: PlaceInfo,
        module_id: str,
        video_path: Callable[[str], str] = lambda stream_id: "",
        source: str = "Vigil",
    ) -> None:
        self.model = model
        self.place = place
        self.module = AnalyticsModuleInfo(
            id=module_id, description=model.name, version=model.version, source=source
        )
        self.video_path = video_path

    def for_model(self, model: ModelInfo) -> EventBuilder:
        """A builder like this one for events of another model (version)."""
        return EventBuilder(model, self.place, self.module.id, self.video_path, self.module.source)

    @staticmethod
    @functools.lru_cache(maxsize=4096)  # bounded: streams come and go
    def _sensor(stream_id: str) -> SensorInfo:
        return SensorInfo(id=stream_id)

    def build(self, frame: Frame, detections: Detections) -> list[Event]:
        """Events for every object detected in ``frame`` (untracked: ``detection``)."""
        return self.build_result(FrameResult(frame, detections))

    def build_result(self, result: FrameResult) -> list[Event]:
        """Events of one frame after the stages: one per object, one per track that ended,
        one per analytics event.

        A tracked object's event type is ``entry`` on the frame its track is confirmed,
        then ``moving`` or ``stopped``; an untracked one's is ``detection``.
        """
        frame, dets = result.frame, result.detections
        changes = result.track_changes
        if (
            not len(dets)
            and not changes
            and (result.analytics is None or not result.analytics.events)
            and not result.alerts
        ):
            return []
        timestamp = datetime.fromtimestamp(frame.capture_time_s, UTC)
        make = functools.partial(self._event, frame, timestamp)
        masks = dets.data.get(MASKS)
        attributes = dets.data.get(ATTRIBUTES)
        predicted = dets.data.get(PREDICTED)
        entered = {c.track_id for c in changes if c.kind is TrackChangeKind.ENTRY}
        per_object = result.object_analytics
        rows: dict[int, int] = {}
        events = []
        # Per frame, not per object: the numbers as Python values, the boxes checked.
        boxes = BBox.from_xyxy_rows(dets.xyxy)
        confidences = np.clip(np.nan_to_num(dets.confidence, nan=0.0), 0.0, 1.0).tolist()
        labels = [self.model.label(c) for c in dets.class_id.tolist()]
        tracker_ids = [None] * len(dets) if dets.tracker_id is None else dets.tracker_id.tolist()
        moving_rows = None if result.moving is None else result.moving.tolist()
        for i, tracker_id in enumerate(tracker_ids):
            if tracker_id is None:
                kind = EventType.DETECTION
            else:
                rows[tracker_id] = i
                kind = (
                    EventType.ENTRY
                    if tracker_id in entered
                    else (
                        EventType.MOVING
                        if moving_rows is None or moving_rows[i]
                        else EventType.STOPPED
                    )
                )
            mask = None if masks is None else masks[i]
            obj = ObjectInfo(
                id=UNTRACKED_OBJECT_ID if tracker_id is None else str(tracker_id),
                class_name=labels[i],
                confidence=confidences[i],
                bbox=boxes[i],
                attributes={} if attributes is None else dict(attributes[i]),
                mask_outline=None if mask is None else mask.polygons(),
                predicted=predicted is not None and bool(predicted[i]),
                analytics=None if per_object is None else _object_analytics(per_object[i]),
            )
            events.append(make(obj, kind))
        for change in changes:
            if change.kind is TrackChangeKind.EXIT:
                obj = ObjectInfo(
                    id=str(change.track_id),
                    class_name=self.model.label(change.class_id),
                    confidence=0.0,
                    bbox=BBox.from_xyxy(*(float(v) for v in change.xyxy)),
                )
                events.append(make(obj, EventType.EXIT))
        if result.analytics is not None:
            for item in result.analytics.events:
                events.append(self._analytics_event(make, item, dets, rows, attributes))
        for alert in result.alerts:
            events.append(self._alert_event(make, alert, dets, rows))
        return events

    def _alert_event(
        self,
        make: Callable[[ObjectInfo, EventType], Event],
        alert: Alert,
        dets: Detections,
        rows: dict[int, int],
    ) -> Event:
        """A plugin stage's alert; its object is the track it is about, else a ``frame``
        object with an empty box; the alert's attributes are the object's."""
        attributes = {str(k): str(v) for k, v in alert.attributes.items()}
        obj = self._subject(
            alert.track_id, alert.class_id, "frame", dets, rows,
            lambda _: attributes, ObjectAnalyticsInfo(rule=alert.name),
        )  # fmt: skip
        return make(obj, EventType.ALERT)

    def _subject(
        self,
        track_id: int | None,
        class_id: int | None,
        placeholder: str,
        dets: Detections,
        rows: dict[int, int],
        attributes: Callable[[int | None], dict[str, str]],
        details: ObjectAnalyticsInfo,
    ) -> ObjectInfo:
        """The object an analytics event or an alert is about: the frame's row of its track,
        else an object with an empty box named by its class (``placeholder`` without one).
        ``attributes`` gives them from the row (None when there is no row)."""
        row = rows.get(track_id) if track_id is not None else None
        if row is None:
            return ObjectInfo(
                id=UNTRACKED_OBJECT_ID if track_id is None else str(track_id),
                class_name=placeholder if class_id is None else self.model.label(int(class_id)),
                confidence=0.0,
                bbox=BBox.from_xyxy(0, 0, 0, 0),
                attributes=attributes(None),
                analytics=details,
            )
        return ObjectInfo(
            id=str(track_id),
            class_name=self.model.label(int(dets.class_id[row])),
            confidence=min(1.0, max(0.0, float(dets.confidence[row]))),
            bbox=BBox.from_xyxy(*(float(v) for v in dets.xyxy[row])),
            attributes=attributes(row),
            analytics=details,
        )

    def _event(self, frame: Frame, timestamp: datetime, obj: ObjectInfo, kind: EventType) -> Event:
        return Event(
            timestamp=timestamp,
            sensor=self._sensor(frame.stream_id),
            place=self.place,
            analytics_module=self.module,
            object=obj,
            event=EventInfo(type=kind),
            frame_id=frame.frame_number,
            video_path=self.video_path(frame.stream_id),
        )

    def _analytics_event(
        self,
        make: Callable[[ObjectInfo, EventType], Event],
        item: AnalyticsEvent,
        dets: Detections,
        rows: dict[int, int],
        attributes: np.ndarray | None,
    ) -> Event:
        """An analytics event; its object is the track it is about (zone events: a
        ``zone`` object whose box is empty)."""
        details = ObjectAnalyticsInfo(
            rule=item.name,
            count=max(0, int(item.count or 0)),
            duration_s=max(0.0, float(item.duration_s or 0.0)),
            lc_status=[f"{item.name}:{item.direction}"] if item.direction else [],
        )
        obj = self._subject(
            item.track_id, item.class_id, "zone", dets, rows,
            lambda row: {} if attributes is None or row is None else dict(attributes[row]),
            details,
        )  # fmt: skip
        return make(obj, EventType(item.kind))


def _object_analytics(status: ObjectAnalytics) -> ObjectAnalyticsInfo:
    return ObjectAnalyticsInfo(
        roi_status=list(status.rois),
        lc_status=[f"{name}:{direction}" for name, direction in status.lines_crossed],
        oc_status=list(status.zones),
        dir_status=status.direction or "",
        dwell_s={k: max(0.0, float(v)) for k, v in status.dwell_s.items()},
    )
