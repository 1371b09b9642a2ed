"""Event models that serialise to NVIDIA DeepStream's nvmsgconv message schemas.

Vigil emits the same JSON that DeepStream's ``Gst-nvmsgconv`` element produces, so back ends
written for DeepStream (Kafka/MQTT consumers, Metropolis analytics) can read Vigil's events
unchanged:

* the **full** schema (``mdsversion`` "1.0"): one message per object and event, with sensor,
  place, analytics-module, object and event sub-objects (:meth:`Event.to_full`);
* the **minimal** schema (``version`` "4.0"): one message per frame carrying every object of
  that frame as a pipe-separated string (:func:`build_minimal_message`).

This module holds the message and its sensor, place, analytics-module and event members; the
``object`` member is :mod:`vigil.events.object_schema`, and what several members share is
:mod:`vigil.events.schema_base`. The JSON Schemas of both messages sit next to this module
(:data:`FULL_SCHEMA_PATH`, :data:`MINIMAL_SCHEMA_PATH`). Everything here is pure: no I/O and no
mutable module state.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Final
from uuid import UUID

from pydantic import AwareDatetime, Field, StrictInt

from vigil.events.ids import random_uuid, random_uuid_str
from vigil.events.object_schema import ObjectInfo
from vigil.events.schema_base import Coordinate, GeoLocation, SchemaModel

__all__ = [
    "FULL_SCHEMA_PATH",
    "MDS_VERSION",
    "MINIMAL_SCHEMA_PATH",
    "MINIMAL_VERSION",
    "AnalyticsModuleInfo",
    "Event",
    "EventInfo",
    "EventType",
    "PlaceInfo",
    "SensorInfo",
    "build_minimal_message",
    "format_timestamp",
    "to_json_line",
]

FULL_SCHEMA_PATH: Final[Path] = Path(__file__).with_name("nvmsgconv_full.schema.json")
"""JSON Schema (draft 2020-12) of one full-schema message."""

MINIMAL_SCHEMA_PATH: Final[Path] = Path(__file__).with_name("nvmsgconv_minimal.schema.json")
"""JSON Schema (draft 2020-12) of one minimal-schema message."""

MDS_VERSION: Final[str] = "1.0"
"""``mdsversion`` that DeepStream writes in every full-schema message."""

MINIMAL_VERSION: Final[str] = "4.0"
"""``version`` that DeepStream writes in every minimal-schema message."""


class EventType(StrEnum):
    """Values of ``event.type``.

    The first seven are DeepStream's ``NvDsEventType`` strings; for a tracked object,
    ``entry`` is the frame its track is confirmed, ``exit`` the frame it is given up,
    ``moving`` / ``stopped`` every frame in between. The rest are Vigil extensions that
    DeepStream never emits: ``detection`` (an untracked per-frame detection) and the
    analytics events ``line_crossed``, ``crowding_raised``, ``crowding_cleared``,
    ``dwell_exceeded`` and ``direction`` (the rule's name and details are in
    ``object.analytics``), and ``alert``, raised by a plugin stage (its rule in
    ``object.analytics.rule``), and ``recording``, sent when a clip closes (``videoPath`` is the
    clip's URL; ``object.attributes`` hold its id, times, trigger and size).
    """

    ENTRY = "entry"
    EXIT = "exit"
    MOVING = "moving"
    STOPPED = "stopped"
    EMPTY = "empty"
    PARKED = "parked"
    RESET = "reset"
    DETECTION = "detection"
    LINE_CROSSED = "line_crossed"
    CROWDING_RAISED = "crowding_raised"
    CROWDING_CLEARED = "crowding_cleared"
    DWELL_EXCEEDED = "dwell_exceeded"
    DIRECTION = "direction"
    ALERT = "alert"
    RECORDING = "recording"


class SensorInfo(SchemaModel):
    """The ``sensor`` sub-object: the camera that produced the frame.

    Attributes:
        id: Sensor id; also the minimal schema's ``sensorId``.
        type: Sensor type, e.g. "Camera".
        description: Free text, e.g. "Entrance of garage, right lane".
        location: Geographic location of the sensor.
        coordinate: Position of the sensor in the site frame.
    """

    id: str = Field(min_length=1)
    type: str = "Camera"
    description: str = ""
    location: GeoLocation = Field(default_factory=GeoLocation)
    coordinate: Coordinate = Field(default_factory=Coordinate)

    def to_full(self) -> dict[str, Any]:
        """Return the full-schema ``sensor`` object."""
        return self.model_dump(mode="json")


class PlaceInfo(SchemaModel):
    """The ``place`` sub-object: where the scene is.

    DeepStream also adds an ``aisle`` / ``parkingSpot`` / ``entrance`` sub-object picked by
    event type from its config file; Vigil leaves it out.

    Attributes:
        id: Place id.
        name: Place name.
        type: Place type, e.g. "building/garage/entrance".
        location: Geographic location of the place.
    """

    id: str
    name: str = ""
    type: str = ""
    location: GeoLocation = Field(default_factory=GeoLocation)

    def to_full(self) -> dict[str, Any]:
        """Return the full-schema ``place`` object."""
        return self.model_dump(mode="json")


class AnalyticsModuleInfo(SchemaModel):
    """The ``analyticsModule`` sub-object: the model or pipeline that produced the event.

    Attributes:
        id: Module id.
        description: Free text, e.g. "Person and vehicle detection".
        source: Producer of the module.
        version: Module version, e.g. the model version served by Triton.
    """

    id: str
    description: str = ""
    source: str = "Vigil"
    version: str = ""

    def to_full(self) -> dict[str, Any]:
        """Return the full-schema ``analyticsModule`` object."""
        return self.model_dump(mode="json")


class EventInfo(SchemaModel):
    """The ``event`` sub-object.

    Attributes:
        id: Event id; a random UUID string by default, as DeepStream generates.
        type: What happened; see :class:`EventType`.
    """

    id: str = Field(default_factory=random_uuid_str, min_length=1)
    type: EventType

    def to_full(self) -> dict[str, str]:
        """Return the full-schema ``event`` object."""
        return {"id": self.id, "type": self.type.value}


class Event(SchemaModel):
    """One Vigil event: one object seen by one sensor at one instant.

    Attributes:
        timestamp: When the frame was captured; must be timezone-aware (converted to UTC).
        sensor: The camera.
        place: Where the camera is.
        analytics_module: The model or pipeline that produced the event.
        object: The detected object.
        event: Event id and type.
        message_id: ``messageid``; a random UUID by default.
        frame_id: Frame number in the stream; the minimal schema's ``id``.
        video_path: ``videoPath``, URL of a playback recording; empty when unknown.
    """

    timestamp: AwareDatetime
    sensor: SensorInfo
    place: PlaceInfo
    analytics_module: AnalyticsModuleInfo
    object: ObjectInfo
    event: EventInfo
    message_id: UUID = Field(default_factory=random_uuid)
    frame_id: Annotated[StrictInt, Field(ge=0)] = 0
    video_path: str = ""

    def to_full(self) -> dict[str, Any]:
        """Return the event as one DeepStream full-schema message.

        Returns:
            A JSON-ready dict with DeepStream's keys in DeepStream's order: ``messageid``,
            ``mdsversion``, ``@timestamp``, ``place``, ``sensor``, ``analyticsModule``,
            ``object``, ``event``, ``videoPath``.
        """
        return {
            "messageid": str(self.message_id),
            "mdsversion": MDS_VERSION,
            "@timestamp": format_timestamp(self.timestamp),
            "place": self.place.to_full(),
            "sensor": self.sensor.to_full(),
            "analyticsModule": self.analytics_module.to_full(),
            "object": self.object.to_full(),
            "event": self.event.to_full(),
            "videoPath": self.video_path,
        }

    def to_minimal(self) -> dict[str, Any]:
        """Return a minimal-schema message carrying only this event's object.

        Use :meth:`minimal_for_frame` or :func:`build_minimal_message` to put all objects of
        a frame into one message, which is what the minimal schema is for.
        """
        return build_minimal_message(
            sensor_id=self.sensor.id,
            frame_id=self.frame_id,
            timestamp=self.timestamp,
            objects=[self.object],
        )

    @classmethod
    def minimal_for_frame(cls, events: Sequence[Event]) -> dict[str, Any]:
        """Return one minimal-schema message with the objects of several events of one frame.

        Args:
            events: Events of one frame: same sensor id, frame id and timestamp.

        Returns:
            The minimal-schema message, objects in the order of ``events``.

        Raises:
            ValueError: If ``events`` is empty or the events are not of one frame.
        """
        if not events:
            raise ValueError("a minimal message needs at least one event")
        first = events[0]
        frame = (first.sensor.id, first.frame_id, first.timestamp)
        for other in events[1:]:
            if (other.sensor.id, other.frame_id, other.timestamp) != frame:
                raise ValueError(
                    "events of one minimal message must share sensor id, frame id and "
                    f"timestamp: {frame} != {(other.sensor.id, other.frame_id, other.timestamp)}"
                )
        return build_minimal_message(
            sensor_id=first.sensor.id,
            frame_id=first.frame_id,
            timestamp=first.timestamp,
            objects=[event.object for event in events],
        )


def format_timestamp(timestamp: datetime) -> str:
    """Format a time the way DeepStream does: UTC, milliseconds, ``Z`` suffix.

    Sub-millisecond digits are truncated, not rounded, as DeepStream's
    ``generate_ts_rfc3339`` does.

    Args:
        timestamp: A timezone-aware datetime; converted to UTC.

    Returns:
        A string like ``"2024-01-01T12:00:00.123Z"``.

    Raises:
        ValueError: If ``timestamp`` is naive.
    """
    if timestamp.tzinfo is None or timestamp.utcoffset() is None:
        raise ValueError(f"timestamp must be timezone-aware, got naive {timestamp!r}")
    utc = timestamp.astimezone(UTC)
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T"
        f"{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}.{utc.microsecond // 1000:03d}Z"
    )


def build_minimal_message(
    *,
    sensor_id: str,
    frame_id: int,
    timestamp: datetime,
    objects: Sequence[ObjectInfo],
) -> dict[str, Any]:
    """Build one minimal-schema message holding every object of one frame.

    Args:
        sensor_id: The sensor's id (``sensorId``).
        frame_id: Frame number (written as a decimal string, as DeepStream 6+ does).
        timestamp: Capture time of the frame; timezone-aware.
        objects: The objects of the frame, at least one.

    Returns:
        A JSON-ready dict: ``version``, ``id``, ``@timestamp``, ``sensorId``, ``objects``.

    Raises:
        ValueError: If ``objects`` is empty, ``sensor_id`` is empty, ``frame_id`` is
            negative, or ``timestamp`` is naive.
    """
    if not objects:
        raise ValueError("a minimal message needs at least one object")
    if not sensor_id:
        raise ValueError("sensor_id must not be empty")
    if frame_id < 0:
        raise ValueError(f"frame_id must be >= 0, got {frame_id}")
    return {
        "version": MINIMAL_VERSION,
        "id": str(frame_id),
        "@timestamp": format_timestamp(timestamp),
        "sensorId": sensor_id,
        "objects": [obj.to_minimal() for obj in objects],
    }


def to_json_line(message: Event | Mapping[str, Any]) -> str:
    """Serialise a message as one compact JSON line for JSONL sinks.

    Args:
        message: An :class:`Event` (serialised with :meth:`Event.to_full`) or an already
            built message dict such as one from :func:`build_minimal_message`.

    Returns:
        Compact UTF-8 JSON without a trailing newline; the sink adds ``"\\n"``.

    Raises:
        ValueError: If the message holds NaN or infinity.
    """
    payload = message.to_full() if isinstance(message, Event) else message
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
