"""The ``recording`` event: sent to the sinks when a clip closes."""

from __future__ import annotations

from datetime import UTC, datetime

from vigil.events.builder import EventBuilder
from vigil.events.object_schema import UNTRACKED_OBJECT_ID, BBox, ObjectAnalyticsInfo, ObjectInfo
from vigil.events.schema import Event, EventInfo, EventType, SensorInfo
from vigil.record.store import Recording


def recording_event(builder: EventBuilder, rec: Recording) -> Event:
    """The event of a clip that closed, in the nvmsgconv full schema.

    ``videoPath`` is the clip's URL; the object (class ``recording``, an empty box) carries the
    clip's id, state, duration, trigger and size in ``attributes``, and the trigger rule in
    ``analytics.rule``. ``@timestamp`` is the clip's first frame.
    """
    attributes = {
        "recording_id": rec.id,
        "state": rec.state,
        "duration_s": f"{rec.duration_s:.3f}",
        "trigger": rec.trigger_kind,
        "size_bytes": str(rec.size_bytes),
    }
    if rec.trigger_rule:
        attributes["rule"] = rec.trigger_rule
    if rec.error:
        attributes["error"] = rec.error
    obj = ObjectInfo(
        id=UNTRACKED_OBJECT_ID,
        class_name="recording",
        confidence=0.0,
        bbox=BBox.from_xyxy(0, 0, 0, 0),
        attributes=attributes,
        analytics=ObjectAnalyticsInfo(rule=rec.trigger_rule or "", duration_s=rec.duration_s),
    )
    return Event(
        timestamp=datetime.fromtimestamp(rec.start_s or rec.created_s, UTC),
        sensor=SensorInfo(id=rec.stream_id),
        place=builder.place,
        analytics_module=builder.module,
        object=obj,
        event=EventInfo(type=EventType.RECORDING),
        video_path=rec.url,
    )
