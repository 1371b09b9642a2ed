"""The ``object`` member of an event: one detected object, in DeepStream's full and minimal form.

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

import functools
import math
from typing import Annotated, Any, Final, Literal

import numpy as np
from pydantic import Field, model_validator

from vigil.events.schema_base import Coordinate, GeoLocation, Pixel, SchemaModel

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


@functools.lru_cache(maxsize=1024)  # a model has a few classes; checked on every object
def _kind(class_name: str) -> Literal["person", "vehicle", "other"]:
    normalized = class_name.strip().lower()
    if normalized in PERSON_CLASSES:
        return "person"
    if normalized in VEHICLE_CLASSES:
        return "vehicle"
    return "other"


@functools.lru_cache(maxsize=1024)
def _checked_kind(class_name: str) -> Literal["person", "vehicle", "other"]:
    """The class's kind, once the name is known to be one an object may carry."""
    if not class_name.strip():
        raise ValueError("class_name must not be blank")
    kind = _kind(class_name)
    if kind == "other" and class_name in _RESERVED_OBJECT_KEYS:
        raise ValueError(
            f"class name {class_name!r} collides with a member of the DeepStream "
            "'object' and cannot key a class sub-object"
        )
    return kind


class BBox(SchemaModel):
    """Axis-aligned bounding box in integer pixels of the source frame.

    Attributes:
        topleftx: Left edge.
        toplefty: Top edge.
        bottomrightx: Right edge, not less than ``topleftx``.
        bottomrighty: Bottom edge, not less than ``toplefty``.
    """

    topleftx: Pixel
    toplefty: Pixel
    bottomrightx: Pixel
    bottomrighty: Pixel

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

    @classmethod
    def from_xyxy_rows(cls, xyxy: np.ndarray) -> list[BBox]:
        """:meth:`from_xyxy` of every row of ``xyxy`` (N, 4), with the finiteness check and the
        clamping done once for them all (a frame's objects).

        Raises:
            ValueError: If a coordinate is not finite or a box's corners are out of order.
        """
        finite = np.isfinite(xyxy).all(axis=1)
        if not finite.all():
            values = tuple(xyxy[~finite][0].tolist())
            raise ValueError(f"bounding box coordinates must be finite, got {values}")
        # max(0, int(v)) == int(max(v, 0)): truncation towards zero sends (-1, 0) to 0 too
        return [
            cls(topleftx=int(x1), toplefty=int(y1), bottomrightx=int(x2), bottomrighty=int(y2))
            for x1, y1, x2, y2 in np.maximum(xyxy, 0).tolist()
        ]

    def to_full(self) -> dict[str, int]:
        """Return the full-schema ``bbox`` object."""
        return self.model_dump(mode="json")


class ObjectAnalyticsInfo(SchemaModel):
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


class ObjectInfo(SchemaModel):
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
    mask_outline: list[Annotated[list[Pixel], Field(min_length=6)]] | None = None
    predicted: bool = False
    analytics: ObjectAnalyticsInfo | None = None

    @model_validator(mode="after")
    def _check_class_and_attributes(self) -> ObjectInfo:
        kind = _checked_kind(self.class_name)
        if not self.attributes:  # the usual case: nothing more to check
            return self
        if "confidence" in self.attributes:
            raise ValueError("attribute 'confidence' is reserved; set ObjectInfo.confidence")
        if kind == "person":
            age = self.attributes.get("age")
            if age is not None and not (age.isascii() and age.isdigit()):
                raise ValueError(f"person attribute 'age' must be a non-negative integer: {age!r}")
        return self

    @property
    def kind(self) -> Literal["person", "vehicle", "other"]:
        """Which DeepStream sub-object family the class maps to (case-insensitive)."""
        return _kind(self.class_name)

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


def _minimal_field(value: str) -> str:
    """Make a value safe for a pipe-separated minimal-schema object string."""
    return value.replace(_MINIMAL_SEPARATOR, _MINIMAL_SEPARATOR_REPLACEMENT)
