"""Detections of a frame → DeepStream-schema events."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime

from vigil.detections import ATTRIBUTES, Detections
from vigil.events.schema import (
    UNTRACKED_OBJECT_ID,
    AnalyticsModuleInfo,
    BBox,
    Event,
    EventInfo,
    EventType,
    ObjectInfo,
    PlaceInfo,
    SensorInfo,
)
from vigil.frame import Frame
from vigil.infer.model import ModelInfo
from vigil.masks import MASKS


class EventBuilder:
    """Builds one full-schema event per detected object.

    Secondary-model attributes (``data["attributes"]``) go into the object's class
    sub-object; instance masks (``data["masks"]``) become ``object.maskoutline`` polygons.

    Args:
        model: The model that produced the detections (``analyticsModule``).
        place: The ``place`` block shared by all events.
        module_id: ``analyticsModule.id``.
        video_path: Stream id → its source URL for ``videoPath`` (credentials removed).
    """

    def __init__(
        self,
        model: ModelInfo,
        place: PlaceInfo,
        module_id: str,
        video_path: Callable[[str], str] = lambda stream_id: "",
    ) -> None:
        self.model = model
        self.place = place
        self.module = AnalyticsModuleInfo(
            id=module_id, description=model.name, version=model.version
        )
        self.video_path = video_path

    def for_model(self, model: ModelInfo) -> EventBuilder:
        """A builder like this one for events of another model (version)."""
        return EventBuilder(model, self.place, self.module.id, self.video_path)

    @staticmethod
    @functools.lru_cache(maxsize=4096)  # bounded: streams come and go
    def _sensor(stream_id: str) -> SensorInfo:
        return SensorInfo(id=stream_id)

    def build(self, frame: Frame, detections: Detections) -> list[Event]:
        """Events for every object detected in ``frame``."""
        if not len(detections):
            return []
        timestamp = datetime.fromtimestamp(frame.capture_time_s, UTC)
        sensor = self._sensor(frame.stream_id)
        video_path = self.video_path(frame.stream_id)
        masks = detections.data.get(MASKS)
        attributes = detections.data.get(ATTRIBUTES)
        events = []
        for i, (xyxy, confidence, class_id, tracker_id) in enumerate(detections):
            mask = None if masks is None else masks[i]
            obj = ObjectInfo(
                id=UNTRACKED_OBJECT_ID if tracker_id is None else str(tracker_id),
                class_name=self.model.label(class_id),
                confidence=min(1.0, max(0.0, confidence)),
                bbox=BBox.from_xyxy(*(float(v) for v in xyxy)),
                attributes={} if attributes is None else dict(attributes[i]),
                mask_outline=None if mask is None else mask.polygons(),
            )
            events.append(
                Event(
                    timestamp=timestamp,
                    sensor=sensor,
                    place=self.place,
                    analytics_module=self.module,
                    object=obj,
                    event=EventInfo(
                        type=EventType.DETECTION if tracker_id is None else EventType.MOVING
                    ),
                    frame_id=frame.frame_number,
                    video_path=video_path,
                )
            )
        return events
