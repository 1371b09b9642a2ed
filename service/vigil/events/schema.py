"""Event models that serialise to NVIDIA DeepStream's nvmsgconv message schemas.

Vigil emits the same JSON that DeepStream's ``Gst-nvmsgconv`` element produces, so back ends
written for DeepStream (Kafka/MQTT consumers, Metropolis analytics) can read Vigil's events
unchanged:

* the **full** schema (``mdsversion`` "1.0"): one message per object and event, with sensor,
  place, analytics-module, object and event sub-objects (:meth:`Event.to_full`);
* the **minimal** schema (``version`` "4.0"): one message per frame carrying every object of
  that frame as a pipe-separated string (:func:`build_minimal_message`).

The JSON Schemas of both messages sit next to this module (:data:`FULL_SCHEMA_PATH`,
:data:`MINIMAL_SCHEMA_PATH`). Everything here is pure: no I/O and no mutable module state.

Class sub-object mapping (the member of ``object`` that DeepStream keys by object type):

* ``person`` → ``"person"`` with DeepStream's members ``age``, ``gender``, ``hair``, ``cap``,
  ``apparel`` and ``confidence``;
* ``car``, ``truck``, ``bus``, ``motorcycle``, ``bicycle`` (and ``vehicle``) → ``"vehicle"``
  with ``type`` (the class name unless an attribute overrides it), ``make``, ``model``,
  ``color``, ``licenseState``, ``license`` and ``confidence``;
* any other class → a sub-object keyed by the class label itself holding ``confidence`` and
  the attributes, as DeepStream's ``msg2p-newapi`` path keys it by ``obj_label``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Final, Literal
from uuid import UUID, uuid4

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt, model_validator

__all__ = [
    "FULL_SCHEMA_PATH",
    "MDS_VERSION",
    "MINIMAL_SCHEMA_PATH",
    "MINIMAL_VERSION",
    "PERSON_CLASSES",
    "UNTRACKED_OBJECT_ID",
    "VEHICLE_CLASSES",
    "AnalyticsModuleInfo",
    "BBox",
    "Coordinate",
    "Event",
    "EventInfo",
    "EventType",
    "GeoLocation",
    "ObjectInfo",
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

UNTRACKED_OBJECT_ID: Final[str] = str(2**64 - 1)
"""DeepStream's ``UNTRACKED_OBJECT_ID`` (``0xFFFFFFFFFFFFFFFF``) as a decimal string.

Use it as :attr:`ObjectInfo.id` for a detection that no tracker has assigned an id to.
"""

PERSON_CLASSES: Final[frozenset[str]] = frozenset({"person"})
"""Lower-cased class names that get DeepStream's ``person`` sub-object."""

VEHICLE_CLASSES: Final[frozenset[str]] = frozenset(
    {"car", "truck", "bus", "motorcycle", "bicycle", "vehicle"}
)
"""Lower-cased class names that get DeepStream's ``vehicle`` sub-object."""

# Members of the full-schema ``object`` that a class label must not shadow.
_RESERVED_OBJECT_KEYS: Final[frozenset[str]] = frozenset(
    {
        "id",
        "speed",
        "direction",
        "orientation",
        "bbox",
        "location",
        "coordinate",
        "signature",
        "maskoutline",
        "predicted",
        "analytics",
    }
)

# DeepStream's members of the person / vehicle sub-objects, in DeepStream's order.
_PERSON_STR_FIELDS: Final[tuple[str, ...]] = ("gender", "hair", "cap", "apparel")
_VEHICLE_FIELDS: Final[tuple[str, ...]] = (
    "type",
    "make",
    "model",
    "color",
    "licenseState",
    "license",
)

# Minimal-schema labels (DeepStream's object_enum_to_str) and attribute orders.
_MINIMAL_PERSON_LABEL: Final[str] = "Person"
_MINIMAL_VEHICLE_LABEL: Final[str] = "Vehicle"
_MINIMAL_PERSON_ATTRS: Final[tuple[str, ...]] = ("gender", "age", "hair", "cap", "apparel")
_MINIMAL_VEHICLE_ATTRS: Final[tuple[str, ...]] = (
    "type",
    "make",
    "model",
    "color",
    "license",
    "licenseState",
)
_MINIMAL_SEPARATOR: Final[str] = "|"
_MINIMAL_SEPARATOR_REPLACEMENT: Final[str] = "_"

_Finite = Annotated[float, Field(allow_inf_nan=False)]
_Pixel = Annotated[StrictInt, Field(ge=0)]


class _Model(BaseModel):
    """Base of every event model: immutable, unknown fields rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class EventType(StrEnum):
    """Values of ``event.type``.

    The first seven are DeepStream's ``NvDsEventType`` strings; for a tracked object,
    ``entry`` is the frame its track is confirmed, ``exit`` the frame it is given up,
    ``moving`` / ``stopped`` every frame in between. The rest are Vigil extensions that
    DeepStream never emits: ``detection`` (an untracked per-frame detection) and the
    analytics events ``line_crossed``, ``crowding_raised``, ``crowding_cleared``,
    ``dwell_exceeded`` and ``direction`` (the rule's name and details are in
    ``object.analytics``).
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


class GeoLocation(_Model):
    """Geographic location (``lat``, ``lon``, ``alt``); DeepStream writes zeros when unset.

    Attributes:
        lat: Latitude in degrees.
        lon: Longitude in degrees.
        alt: Altitude in metres.
    """

    lat: _Finite = 0.0
    lon: _Finite = 0.0
    alt: _Finite = 0.0


class Coordinate(_Model):
    """Cartesian coordinate (``x``, ``y``, ``z``) in a site frame; zeros when unset.

    Attributes:
        x: X coordinate.
        y: Y coordinate.
        z: Z coordinate.
    """

    x: _Finite = 0.0
    y: _Finite = 0.0
    z: _Finite = 0.0


class SensorInfo(_Model):
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


class PlaceInfo(_Model):
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


class AnalyticsModuleInfo(_Model):
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


class BBox(_Model):
    """Axis-aligned bounding box in integer pixels of the source frame.

    Attributes:
        topleftx: Left edge.
        toplefty: Top edge.
        bottomrightx: Right edge, not less than ``topleftx``.
        bottomrighty: Bottom edge, not less than ``toplefty``.
    """

    topleftx: _Pixel
    toplefty: _Pixel
    bottomrightx: _Pixel
    bottomrighty: _Pixel

    @model_validator(mode="after")
    def _check_corners(self) -> BBox:
        if self.bottomrightx < self.topleftx or self.bottomrighty < self.toplefty:
            raise ValueError(
                "bottom-right corner must not lie left of or above the top-left corner: "
                f"({self.topleftx}, {self.toplefty}) .. ({self.bottomrightx}, {self.bottomrighty})"
            )
        return self

    @classmethod
    def from_xyxy(cls, left: float, top: float, right: float, bottom: float) -> BBox:
        """Build a box from float corners, as DeepStream does.

        Coordinates are truncated to integers (DeepStream stores floats into integer JSON
        members) and negative values are clamped to 0.

        Args:
            left: Left edge in source pixels.
            top: Top edge in source pixels.
            right: Right edge in source pixels.
            bottom: Bottom edge in source pixels.

        Returns:
            The integer box.

        Raises:
            ValueError: If a coordinate is not finite or the corners are out of order.
        """
        values = (left, top, right, bottom)
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"bounding box coordinates must be finite, got {values}")
        x1, y1, x2, y2 = (max(0, int(v)) for v in values)
        return cls(topleftx=x1, toplefty=y1, bottomrightx=x2, bottomrighty=y2)

    def to_full(self) -> dict[str, int]:
        """Return the full-schema ``bbox`` object."""
        return self.model_dump(mode="json")


class ObjectAnalyticsInfo(_Model):
    """An object's analytics status on one frame (``object.analytics``).

    Attributes:
        roi_status: ROIs containing the object's anchor point (``roiStatus``).
        lc_status: Lines it crossed on this frame, as ``name:in`` / ``name:out``
            (``lcStatus``).
        oc_status: Crowding zones containing it (``ocStatus``).
        dir_status: Name of the direction rule its motion matches, or "" (``dirStatus``).
        dwell_s: Seconds spent so far in each dwell zone containing it (``dwell``).
        rule: For an analytics event: the rule it is about (``rule``), else "".
        count: For an analytics event: the rule's count after it (line crossings in that
            direction, objects in the zone), else 0.
        duration_s: For a dwell or crowding event: how long the condition has held.
    """

    roi_status: list[str] = Field(default_factory=list)
    lc_status: list[str] = Field(default_factory=list)
    oc_status: list[str] = Field(default_factory=list)
    dir_status: str = ""
    dwell_s: dict[str, Annotated[float, Field(ge=0, allow_inf_nan=False)]] = Field(
        default_factory=dict
    )
    rule: str = ""
    count: Annotated[int, Field(ge=0)] = 0
    duration_s: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0

    def to_full(self) -> dict[str, Any]:
        """Return the ``object.analytics`` member (event details only on analytics events)."""
        body: dict[str, Any] = {
            "roiStatus": list(self.roi_status),
            "lcStatus": list(self.lc_status),
            "ocStatus": list(self.oc_status),
            "dirStatus": self.dir_status,
            "dwell": {k: round(v, 3) for k, v in self.dwell_s.items()},
        }
        if self.rule:
            body.update(rule=self.rule, count=self.count, duration=round(self.duration_s, 3))
        return body


class ObjectInfo(_Model):
    """One detected (and possibly tracked) object.

    Attributes:
        id: Tracking id as a string; :data:`UNTRACKED_OBJECT_ID` when untracked.
        class_name: Detector label, e.g. "person" or "car"; picks the class sub-object.
        confidence: Detection confidence in [0, 1].
        bbox: Bounding box in source-frame pixels.
        attributes: Secondary attributes (e.g. {"color": "red"}). Keys that DeepStream
            defines for the person / vehicle sub-object fill those members; the rest are
            added as extra string members. ``"confidence"`` is reserved; a person's
            ``"age"`` must be a non-negative integer string.
        mask_outline: Outline of the instance mask as polygons, each a flat
            ``[x1, y1, x2, y2, ...]`` list of at least three vertices in source pixels
            (``object.maskoutline``); None when the model gives no mask.
        predicted: The box is the tracker's prediction on a frame the model skipped
            (``object.predicted``, written only when true; a Vigil extension).
        analytics: The object's analytics status (``object.analytics``, a Vigil extension
            named after nvdsanalytics' ``NvDsAnalyticsObjInfo``); None without analytics.
    """

    id: str = Field(min_length=1)
    class_name: str = Field(min_length=1)
    confidence: Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
    bbox: BBox
    attributes: dict[str, str] = Field(default_factory=dict)
    mask_outline: list[Annotated[list[_Pixel], Field(min_length=6)]] | None = None
    predicted: bool = False
    analytics: ObjectAnalyticsInfo | None = None

    @model_validator(mode="after")
    def _check_class_and_attributes(self) -> ObjectInfo:
        if not self.class_name.strip():
            raise ValueError("class_name must not be blank")
        if "confidence" in self.attributes:
            raise ValueError("attribute 'confidence' is reserved; set ObjectInfo.confidence")
        kind = self.kind
        if kind == "person":
            age = self.attributes.get("age")
            if age is not None and not (age.isascii() and age.isdigit()):
                raise ValueError(f"person attribute 'age' must be a non-negative integer: {age!r}")
        elif kind == "other" and self.class_name in _RESERVED_OBJECT_KEYS:
            raise ValueError(
                f"class name {self.class_name!r} collides with a member of the DeepStream "
                "'object' and cannot key a class sub-object"
            )
        return self

    @property
    def kind(self) -> Literal["person", "vehicle", "other"]:
        """Which DeepStream sub-object family the class maps to (case-insensitive)."""
        normalized = self.class_name.strip().lower()
        if normalized in PERSON_CLASSES:
            return "person"
        if normalized in VEHICLE_CLASSES:
            return "vehicle"
        return "other"

    @property
    def sub_object_key(self) -> str:
        """Key of the class sub-object in the full-schema ``object``.

        Returns:
            ``"person"``, ``"vehicle"``, or the class label itself for any other class.
        """
        kind = self.kind
        return self.class_name if kind == "other" else kind

    def sub_object(self) -> dict[str, Any]:
        """Return the class sub-object with DeepStream's members and defaults.

        Returns:
            For a person: age (int, 0 if unknown), gender, hair, cap, apparel, extra
            attributes, confidence. For a vehicle: type (the lower-cased class name unless
            overridden), make, model, color, licenseState, license, extra attributes,
            confidence. Otherwise: the attributes, then confidence.
        """
        attrs = self.attributes
        kind = self.kind
        body: dict[str, Any]
        if kind == "person":
            body = {"age": int(attrs.get("age", "0"))}
            body.update({name: attrs.get(name, "") for name in _PERSON_STR_FIELDS})
            known: tuple[str, ...] = ("age", *_PERSON_STR_FIELDS)
        elif kind == "vehicle":
            defaults = {"type": self.class_name.strip().lower()}
            body = {name: attrs.get(name, defaults.get(name, "")) for name in _VEHICLE_FIELDS}
            known = _VEHICLE_FIELDS
        else:
            body = {}
            known = ()
        body.update({key: value for key, value in attrs.items() if key not in known})
        body["confidence"] = self.confidence
        return body

    def to_full(self) -> dict[str, Any]:
        """Return the full-schema ``object`` member.

        Speed, direction and orientation are 0.0 and location / coordinate are zeros, as
        DeepStream writes them when unknown. ``maskoutline`` is written only for objects
        with a mask.
        """
        body: dict[str, Any] = {
            "id": self.id,
            "speed": 0.0,
            "direction": 0.0,
            "orientation": 0.0,
            self.sub_object_key: self.sub_object(),
            "bbox": self.bbox.to_full(),
            "location": GeoLocation().model_dump(mode="json"),
            "coordinate": Coordinate().model_dump(mode="json"),
        }
        if self.mask_outline is not None:
            body["maskoutline"] = [list(polygon) for polygon in self.mask_outline]
        if self.predicted:
            body["predicted"] = True
        if self.analytics is not None:
            body["analytics"] = self.analytics.to_full()
        return body

    def to_minimal(self) -> str:
        """Return this object as one entry of the minimal schema's ``objects`` array.

        Layout: ``id|left|top|right|bottom|label|#|attr...|confidence``. Persons and vehicles
        use DeepStream's labels ("Person", "Vehicle") and positional attributes; a vehicle's
        ``type`` slot holds its class. Other classes use their label and the attribute values
        in insertion order. Person / vehicle attributes that DeepStream has no slot for are
        dropped. Any ``|`` inside a value becomes ``_``. The confidence is written like C++
        ``operator<<`` (``%g``).
        """
        kind = self.kind
        sub = self.sub_object()
        if kind == "person":
            label = _MINIMAL_PERSON_LABEL
            values = [str(sub[name]) for name in _MINIMAL_PERSON_ATTRS]
        elif kind == "vehicle":
            label = _MINIMAL_VEHICLE_LABEL
            values = [str(sub[name]) for name in _MINIMAL_VEHICLE_ATTRS]
        else:
            label = self.class_name
            values = list(self.attributes.values())
        box = self.bbox
        fields = [
            self.id,
            str(box.topleftx),
            str(box.toplefty),
            str(box.bottomrightx),
            str(box.bottomrighty),
            label,
            "#",
            *values,
            format(self.confidence, "g"),
        ]
        return _MINIMAL_SEPARATOR.join(_minimal_field(value) for value in fields)


class EventInfo(_Model):
    """The ``event`` sub-object.

    Attributes:
        id: Event id; a random UUID string by default, as DeepStream generates.
        type: What happened; see :class:`EventType`.
    """

    id: str = Field(default_factory=lambda: str(uuid4()), min_length=1)
    type: EventType

    def to_full(self) -> dict[str, str]:
        """Return the full-schema ``event`` object."""
        return {"id": self.id, "type": self.type.value}


class Event(_Model):
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
    message_id: UUID = Field(default_factory=uuid4)
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


def _minimal_field(value: str) -> str:
    """Make a value safe for a pipe-separated minimal-schema object string."""
    return value.replace(_MINIMAL_SEPARATOR, _MINIMAL_SEPARATOR_REPLACEMENT)
