"""Unit tests for vigil.events.schema and the nvmsgconv JSON Schema files."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import pytest
from jsonschema import Draft202012Validator, FormatChecker
from pydantic import ValidationError

from vigil.events.object_schema import UNTRACKED_OBJECT_ID, BBox, ObjectInfo
from vigil.events.schema import (
    FULL_SCHEMA_PATH,
    MINIMAL_SCHEMA_PATH,
    AnalyticsModuleInfo,
    Event,
    EventInfo,
    EventType,
    PlaceInfo,
    SensorInfo,
    build_minimal_message,
    format_timestamp,
    to_json_line,
)

TS = datetime(2024, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
MESSAGE_ID = UUID("0b7e7b7c-5a3e-4f1e-9a51-3d1f0c9e2a11")
EVENT_ID = "9f1c1f4e-6f0a-4a55-8d6b-2b1e4c3d2a10"
DEEPSTREAM_EVENT_TYPES = ["entry", "exit", "moving", "stopped", "empty", "parked", "reset"]
# The members of a full-schema message, in DeepStream's order.
FULL_TOP_LEVEL = [
    "messageid",
    "mdsversion",
    "@timestamp",
    "place",
    "sensor",
    "analyticsModule",
    "object",
    "event",
    "videoPath",
]


# --------------------------------------------------------------------------- helpers


def _format_checker() -> FormatChecker:
    """Every format jsonschema knows, plus a strict-enough date-time check.

    jsonschema checks "date-time" only when rfc3339-validator is installed; a private
    FormatChecker instance adds a fallback without touching global state.
    """
    checker = FormatChecker()

    @checker.checks("date-time", raises=ValueError)
    def _date_time(value: object) -> bool:
        if isinstance(value, str):
            parsed = datetime.fromisoformat(value)
            if parsed.tzinfo is None:
                raise ValueError(f"date-time without offset: {value}")
        return True

    return checker


def _validator(path: Any) -> Draft202012Validator:
    schema = json.loads(path.read_text(encoding="utf-8"))
    return Draft202012Validator(schema, format_checker=_format_checker())


@pytest.fixture(scope="module")
def full_validator() -> Draft202012Validator:
    return _validator(FULL_SCHEMA_PATH)


@pytest.fixture(scope="module")
def minimal_validator() -> Draft202012Validator:
    return _validator(MINIMAL_SCHEMA_PATH)


def _object(
    class_name: str = "car",
    *,
    object_id: str = "42",
    confidence: float = 0.87,
    attributes: dict[str, str] | None = None,
) -> ObjectInfo:
    return ObjectInfo(
        id=object_id,
        class_name=class_name,
        confidence=confidence,
        bbox=BBox(topleftx=100, toplefty=200, bottomrightx=180, bottomrighty=360),
        attributes=attributes or {},
    )


def _event(
    class_name: str = "car",
    event_type: str = "moving",
    *,
    timestamp: datetime = TS,
    frame_id: int = 17,
    sensor_id: str = "cam-entrance-01",
    obj: ObjectInfo | None = None,
) -> Event:
    return Event(
        timestamp=timestamp,
        sensor=SensorInfo(id=sensor_id, description="Garage entrance, right lane"),
        place=PlaceInfo(id="garage-1", name="Endeavor garage", type="garage"),
        analytics_module=AnalyticsModuleInfo(
            id="yolov8n", description="Person and vehicle detection", version="1"
        ),
        object=obj or _object(class_name),
        event=EventInfo(id=EVENT_ID, type=event_type),
        message_id=MESSAGE_ID,
        frame_id=frame_id,
    )


def _parent(node: dict[str, Any], path: str) -> tuple[dict[str, Any], str]:
    """The member of ``node`` that holds dotted ``path``'s last key, and that key."""
    *parents, leaf = path.split(".")
    for key in parents:
        node = node[key]
    return node, leaf


def _delete(message: dict[str, Any], path: str) -> dict[str, Any]:
    broken = copy.deepcopy(message)
    node, leaf = _parent(broken, path)
    del node[leaf]
    return broken


def _replace(message: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    broken = copy.deepcopy(message)
    node, leaf = _parent(broken, path)
    node[leaf] = value
    return broken


def _assert_rejected_at(validator: Draft202012Validator, message: Any, path: str) -> None:
    """Assert that validation fails, and only at (or around) the broken member."""
    errors = list(validator.iter_errors(message))
    assert errors, f"message with broken {path!r} was accepted"
    parts = path.split(".")
    for error in errors:
        where = list(error.absolute_path)
        n = min(len(where), len(parts))
        assert where[:n] == parts[:n], f"unrelated error at {where}: {error.message}"


# --------------------------------------------------------------------------- schema files


@pytest.mark.parametrize("path", [FULL_SCHEMA_PATH, MINIMAL_SCHEMA_PATH])
def test_schema_file_when_checked_against_metaschema_is_valid(path: Any) -> None:
    Draft202012Validator.check_schema(json.loads(path.read_text(encoding="utf-8")))


def test_full_schema_when_read_documents_detection_extension() -> None:
    schema = json.loads(FULL_SCHEMA_PATH.read_text(encoding="utf-8"))
    event_type = schema["$defs"]["event"]["properties"]["type"]
    assert event_type["enum"][: len(DEEPSTREAM_EVENT_TYPES) + 1] == [
        *DEEPSTREAM_EVENT_TYPES,
        "detection",
    ]
    assert "detection" in event_type["description"]
    assert "extension" in event_type["description"]


# --------------------------------------------------------------------------- full schema


@pytest.mark.parametrize(
    "class_name",
    ["person", "Person", "car", "truck", "bus", "motorcycle", "bicycle", "dog", "traffic light"],
)
@pytest.mark.parametrize("event_type", [*DEEPSTREAM_EVENT_TYPES, "detection"])
def test_event_to_full_when_built_validates_against_schema(
    full_validator: Draft202012Validator, class_name: str, event_type: str
) -> None:
    message = _event(class_name, event_type).to_full()
    errors = [e.message for e in full_validator.iter_errors(message)]
    assert errors == []


def test_event_to_full_when_built_has_deepstream_layout() -> None:
    message = _event("car").to_full()
    assert list(message) == FULL_TOP_LEVEL
    assert message["messageid"] == str(MESSAGE_ID)
    assert message["mdsversion"] == "1.0"
    assert message["@timestamp"] == "2024-01-01T12:00:00.123Z"
    assert message["videoPath"] == ""
    assert message["event"] == {"id": EVENT_ID, "type": "moving"}
    assert message["analyticsModule"] == {
        "id": "yolov8n",
        "description": "Person and vehicle detection",
        "source": "Vigil",
        "version": "1",
    }
    assert message["sensor"]["type"] == "Camera"
    assert message["sensor"]["location"] == {"lat": 0.0, "lon": 0.0, "alt": 0.0}
    assert message["sensor"]["coordinate"] == {"x": 0.0, "y": 0.0, "z": 0.0}
    obj = message["object"]
    assert list(obj) == [
        "id",
        "speed",
        "direction",
        "orientation",
        "vehicle",
        "bbox",
        "location",
        "coordinate",
    ]
    assert obj["bbox"] == {
        "topleftx": 100,
        "toplefty": 200,
        "bottomrightx": 180,
        "bottomrighty": 360,
    }


@pytest.mark.parametrize(
    "path",
    [
        *FULL_TOP_LEVEL,
        "place.location",
        "sensor.id",
        "sensor.location.lat",
        "sensor.coordinate",
        "analyticsModule.version",
        "object.id",
        "object.bbox",
        "object.bbox.topleftx",
        "object.bbox.bottomrighty",
        "object.location",
        "object.vehicle",
        "object.vehicle.confidence",
        "object.vehicle.licenseState",
        "event.id",
        "event.type",
    ],
)
def test_full_schema_when_field_missing_fails(
    full_validator: Draft202012Validator, path: str
) -> None:
    message = _delete(_event("car").to_full(), path)
    _assert_rejected_at(full_validator, message, path)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("messageid", "not-a-uuid"),
        ("messageid", "0B7E7B7C-5A3E-4F1E-9A51-3D1F0C9E2A11"),
        ("messageid", 12345),
        ("mdsversion", "2.0"),
        ("mdsversion", 1.0),
        ("@timestamp", "2024-01-01T12:00:00Z"),
        ("@timestamp", "2024-01-01T12:00:00.123456Z"),
        ("@timestamp", "2024-01-01T12:00:00.123+00:00"),
        ("@timestamp", "2024-01-01 12:00:00.123Z"),
        ("@timestamp", "2024-13-01T12:00:00.123Z"),
        ("@timestamp", "2024-02-30T12:00:00.123Z"),
        ("@timestamp", 1704110400123),
        ("object.id", 42),
        ("object.id", ""),
        ("object.bbox.topleftx", 100.5),
        ("object.bbox.toplefty", "200"),
        ("object.bbox.extra", 1),
        ("object.speed", "fast"),
        ("object.vehicle.type", 3),
        ("object.vehicle.confidence", "high"),
        ("object.location.lat", "north"),
        ("event.type", "loitering"),
        ("event.type", "Moving"),
        ("event.extra", "x"),
        ("sensor.extra", "x"),
        ("sensor.location", [0.0, 0.0, 0.0]),
        ("place", "garage-1"),
        ("extraTopLevel", True),
    ],
)
def test_full_schema_when_field_garbled_fails(
    full_validator: Draft202012Validator, path: str, value: Any
) -> None:
    message = _replace(_event("car").to_full(), path, value)
    _assert_rejected_at(full_validator, message, path)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("object.person.age", "30"),
        ("object.person.confidence", None),
        ("object.person.hair", 1),
    ],
)
def test_full_schema_when_person_field_garbled_fails(
    full_validator: Draft202012Validator, path: str, value: Any
) -> None:
    message = _replace(_event("person").to_full(), path, value)
    _assert_rejected_at(full_validator, message, path)


def test_full_schema_when_object_has_no_class_sub_object_fails(
    full_validator: Draft202012Validator,
) -> None:
    message = _delete(_event("car").to_full(), "object.vehicle")
    assert not full_validator.is_valid(message)


def test_full_schema_when_generic_class_lacks_confidence_fails(
    full_validator: Draft202012Validator,
) -> None:
    message = _event("dog").to_full()
    assert full_validator.is_valid(message)
    assert not full_validator.is_valid(_delete(message, "object.dog.confidence"))


def test_full_schema_when_deepstream_place_sub_object_present_is_valid(
    full_validator: Draft202012Validator,
) -> None:
    aisle = {"id": "a1", "name": "walsh", "level": "P2", "coordinate": {"x": 1, "y": 2, "z": 3}}
    message = _replace(_event("car").to_full(), "place.aisle", aisle)
    assert full_validator.is_valid(message)


# --------------------------------------------------------------------------- minimal schema


def test_minimal_for_frame_when_several_objects_validates(
    minimal_validator: Draft202012Validator,
) -> None:
    events = [
        _event("person", obj=_object("person", object_id="7")),
        _event("car", obj=_object("car", object_id="8", attributes={"color": "blue"})),
        _event("dog", obj=_object("dog", object_id=UNTRACKED_OBJECT_ID)),
    ]
    message = Event.minimal_for_frame(events)
    assert [e.message for e in minimal_validator.iter_errors(message)] == []
    assert message == {
        "version": "4.0",
        "id": "17",
        "@timestamp": "2024-01-01T12:00:00.123Z",
        "sensorId": "cam-entrance-01",
        "objects": [
            "7|100|200|180|360|Person|#||0||||0.87",
            "8|100|200|180|360|Vehicle|#|car|||blue|||0.87",
            "18446744073709551615|100|200|180|360|dog|#|0.87",
        ],
    }


def test_build_minimal_message_when_given_objects_matches_event_batch(
    minimal_validator: Draft202012Validator,
) -> None:
    objects = [_object("truck", object_id="1"), _object("person", object_id="2")]
    message = build_minimal_message(sensor_id="cam-1", frame_id=0, timestamp=TS, objects=objects)
    assert minimal_validator.is_valid(message)
    assert message["id"] == "0"
    assert len(message["objects"]) == 2


def test_event_to_minimal_when_single_event_validates(
    minimal_validator: Draft202012Validator,
) -> None:
    message = _event("bus").to_minimal()
    assert minimal_validator.is_valid(message)
    assert message["objects"] == ["42|100|200|180|360|Vehicle|#|bus||||||0.87"]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("version", "1.0"),
        ("id", 17),
        ("id", "frame-17"),
        ("@timestamp", "2024-01-01T12:00:00Z"),
        ("sensorId", ""),
        ("objects", []),
        ("objects", "42|100|200|180|360|Vehicle"),
        ("objects", ["garbage"]),
        ("objects", ["42|left|200|180|360|Vehicle"]),
        ("objects", ["42|100|200|180|360"]),
        ("objects", ["42|100|200|180|360|"]),
        ("objects", [42]),
        ("extra", "x"),
    ],
)
def test_minimal_schema_when_field_garbled_fails(
    minimal_validator: Draft202012Validator, path: str, value: Any
) -> None:
    message = _replace(_event("car").to_minimal(), path, value)
    _assert_rejected_at(minimal_validator, message, path)


@pytest.mark.parametrize("path", ["version", "id", "@timestamp", "sensorId", "objects"])
def test_minimal_schema_when_field_missing_fails(
    minimal_validator: Draft202012Validator, path: str
) -> None:
    message = _delete(_event("car").to_minimal(), path)
    _assert_rejected_at(minimal_validator, message, path)


@pytest.mark.parametrize(
    "entry",
    [
        "957|1834|150|1918|215|Vehicle|#|sedan|Bugatti|M|blue|CA 444|California|0.8",
        "3|10.5|20|30.25|40|Person",
        "12|1|2|3|4|car|#|red|0.5",
    ],
)
def test_minimal_schema_when_deepstream_style_entry_is_valid(
    minimal_validator: Draft202012Validator, entry: str
) -> None:
    message = _replace(_event("car").to_minimal(), "objects", [entry])
    assert minimal_validator.is_valid(message)


def test_minimal_for_frame_when_empty_raises() -> None:
    with pytest.raises(ValueError, match="at least one event"):
        Event.minimal_for_frame([])


@pytest.mark.parametrize(
    "other",
    [
        {"frame_id": 18},
        {"sensor_id": "cam-other"},
        {"timestamp": TS + timedelta(milliseconds=40)},
    ],
)
def test_minimal_for_frame_when_events_of_different_frames_raises(other: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must share"):
        Event.minimal_for_frame([_event("car"), _event("person", **other)])


def test_build_minimal_message_when_no_objects_raises() -> None:
    with pytest.raises(ValueError, match="at least one object"):
        build_minimal_message(sensor_id="cam-1", frame_id=1, timestamp=TS, objects=[])


# --------------------------------------------------------------------------- timestamps


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        (datetime(2024, 1, 1, 12, 0, 0, 123000, tzinfo=UTC), "2024-01-01T12:00:00.123Z"),
        (datetime(2024, 1, 1, 12, 0, 0, 123999, tzinfo=UTC), "2024-01-01T12:00:00.123Z"),
        (datetime(2024, 1, 1, 12, 0, 0, 0, tzinfo=UTC), "2024-01-01T12:00:00.000Z"),
        (datetime(2024, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), "2024-12-31T23:59:59.999Z"),
        (
            datetime(2024, 1, 1, 14, 0, 0, 5000, tzinfo=timezone(timedelta(hours=2))),
            "2024-01-01T12:00:00.005Z",
        ),
        (
            datetime(2023, 12, 31, 19, 30, 0, 0, tzinfo=timezone(timedelta(hours=-5))),
            "2024-01-01T00:30:00.000Z",
        ),
        (datetime(999, 1, 2, 3, 4, 5, 6000, tzinfo=UTC), "0999-01-02T03:04:05.006Z"),
    ],
)
def test_format_timestamp_when_aware_formats_like_deepstream(
    timestamp: datetime, expected: str
) -> None:
    assert format_timestamp(timestamp) == expected


def test_format_timestamp_when_naive_raises() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        format_timestamp(datetime(2024, 1, 1, 12, 0, 0))


def test_event_when_timestamp_naive_raises() -> None:
    with pytest.raises(ValidationError):
        _event("car", timestamp=datetime(2024, 1, 1, 12, 0, 0))


# --------------------------------------------------------------------------- class mapping


@pytest.mark.parametrize(
    ("class_name", "key", "expected"),
    [
        (
            "person",
            "person",
            {"age": 0, "gender": "", "hair": "", "cap": "", "apparel": "", "confidence": 0.87},
        ),
        (
            "PERSON",
            "person",
            {"age": 0, "gender": "", "hair": "", "cap": "", "apparel": "", "confidence": 0.87},
        ),
        *(
            (
                name,
                "vehicle",
                {
                    "type": name.lower(),
                    "make": "",
                    "model": "",
                    "color": "",
                    "licenseState": "",
                    "license": "",
                    "confidence": 0.87,
                },
            )
            for name in ["car", "Car", "truck", "bus", "motorcycle", "bicycle", "vehicle"]
        ),
        ("dog", "dog", {"confidence": 0.87}),
        ("traffic light", "traffic light", {"confidence": 0.87}),
        ("face", "face", {"confidence": 0.87}),
    ],
)
def test_object_sub_object_when_class_given_maps_like_deepstream(
    class_name: str, key: str, expected: dict[str, Any]
) -> None:
    obj = _object(class_name)
    assert obj.sub_object_key == key
    full = obj.to_full()
    assert full[key] == expected
    other_keys = {"person", "vehicle", "dog", "traffic light", "face"} - {key}
    assert not other_keys & set(full)


def test_object_sub_object_when_person_attributes_fill_deepstream_members() -> None:
    obj = _object(
        "person", attributes={"age": "34", "gender": "female", "cap": "none", "bag": "backpack"}
    )
    assert obj.sub_object() == {
        "age": 34,
        "gender": "female",
        "hair": "",
        "cap": "none",
        "apparel": "",
        "bag": "backpack",
        "confidence": 0.87,
    }
    assert obj.to_minimal() == "42|100|200|180|360|Person|#|female|34||none||0.87"


def test_object_sub_object_when_vehicle_attributes_override_type() -> None:
    obj = _object(
        "car",
        attributes={"type": "sedan", "make": "Bugatti", "license": "XX1234", "licenseState": "CA"},
    )
    assert obj.sub_object()["type"] == "sedan"
    assert obj.to_minimal() == "42|100|200|180|360|Vehicle|#|sedan|Bugatti|||XX1234|CA|0.87"


def test_object_to_minimal_when_other_class_writes_attributes_in_order() -> None:
    obj = _object("dog", attributes={"breed": "collie", "collar": "red"}, confidence=0.5)
    assert obj.to_full()["dog"] == {"breed": "collie", "collar": "red", "confidence": 0.5}
    assert obj.to_minimal() == "42|100|200|180|360|dog|#|collie|red|0.5"


def test_object_to_minimal_when_value_contains_pipe_replaces_it() -> None:
    obj = _object("sign", object_id="a|b", attributes={"text": "STOP|GO"})
    assert obj.to_minimal() == "a_b|100|200|180|360|sign|#|STOP_GO|0.87"


# --------------------------------------------------------------------------- model validation


@pytest.mark.parametrize(
    "kwargs",
    [
        {"confidence": 1.5},
        {"confidence": -0.1},
        {"confidence": float("nan")},
        {"class_name": ""},
        {"class_name": "   "},
        {"class_name": "bbox"},
        {"class_name": "location"},
        {"id": ""},
        {"attributes": {"confidence": "0.9"}},
        {"class_name": "person", "attributes": {"age": "old"}},
        {"class_name": "person", "attributes": {"age": "-3"}},
        {"attributes": {"color": 3}},
        {"unexpected": "field"},
    ],
)
def test_object_info_when_invalid_raises(kwargs: dict[str, Any]) -> None:
    base: dict[str, Any] = {
        "id": "1",
        "class_name": "car",
        "confidence": 0.5,
        "bbox": BBox(topleftx=0, toplefty=0, bottomrightx=1, bottomrighty=1),
    }
    with pytest.raises(ValidationError):
        ObjectInfo(**{**base, **kwargs})


@pytest.mark.parametrize(
    "corners",
    [
        (10, 0, 5, 10),
        (0, 10, 10, 5),
        (-1, 0, 10, 10),
        (0.5, 0, 10, 10),
        ("1", 0, 10, 10),
    ],
)
def test_bbox_when_corners_invalid_raises(corners: tuple[Any, ...]) -> None:
    x1, y1, x2, y2 = corners
    with pytest.raises(ValidationError):
        BBox(topleftx=x1, toplefty=y1, bottomrightx=x2, bottomrighty=y2)


@pytest.mark.parametrize(
    ("xyxy", "expected"),
    [
        ((10.9, 20.2, 110.7, 220.5), (10, 20, 110, 220)),
        ((-3.5, -0.2, 50.0, 60.0), (0, 0, 50, 60)),
        ((0.0, 0.0, 0.0, 0.0), (0, 0, 0, 0)),
    ],
)
def test_bbox_from_xyxy_when_floats_truncates_like_deepstream(
    xyxy: tuple[float, float, float, float], expected: tuple[int, int, int, int]
) -> None:
    box = BBox.from_xyxy(*xyxy)
    assert (box.topleftx, box.toplefty, box.bottomrightx, box.bottomrighty) == expected


def test_bbox_from_xyxy_when_not_finite_raises() -> None:
    with pytest.raises(ValueError, match="finite"):
        BBox.from_xyxy(0.0, 0.0, float("inf"), 1.0)


@pytest.mark.parametrize(
    ("model", "kwargs"),
    [
        (SensorInfo, {"id": "cam-1", "fps": 30}),
        (PlaceInfo, {"id": "p", "aisle": {}}),
        (AnalyticsModuleInfo, {"id": "m", "confidence": 0.5}),
        (EventInfo, {"type": "entry", "severity": "high"}),
        (BBox, {"topleftx": 0, "toplefty": 0, "bottomrightx": 1, "bottomrighty": 1, "w": 1}),
    ],
)
def test_model_when_unknown_field_given_raises(model: type, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        model(**kwargs)


@pytest.mark.parametrize("event_type", ["loitering", "", "Entry"])
def test_event_info_when_type_unknown_raises(event_type: str) -> None:
    with pytest.raises(ValidationError):
        EventInfo(type=event_type)


def test_event_info_when_defaulted_has_uuid_id() -> None:
    info = EventInfo(type=EventType.DETECTION)
    assert str(UUID(info.id)) == info.id
    assert info.to_full()["type"] == "detection"


def test_event_when_defaulted_has_fresh_message_ids() -> None:
    template = _event("car")
    fields = {name: getattr(template, name) for name in Event.model_fields if name != "message_id"}
    a, b = Event(**fields), Event(**fields)
    assert a.message_id != b.message_id
    assert a.to_full()["messageid"] == str(a.message_id)


def test_sensor_info_when_defaulted_uses_camera_and_zero_location() -> None:
    sensor = SensorInfo(id="cam-9")
    assert sensor.to_full() == {
        "id": "cam-9",
        "type": "Camera",
        "description": "",
        "location": {"lat": 0.0, "lon": 0.0, "alt": 0.0},
        "coordinate": {"x": 0.0, "y": 0.0, "z": 0.0},
    }


# --------------------------------------------------------------------------- JSON lines


def test_to_json_line_when_given_event_is_compact_single_line(
    full_validator: Draft202012Validator,
) -> None:
    event = _event("person")
    line = to_json_line(event)
    assert "\n" not in line
    assert '", "' not in line
    assert '": ' not in line
    assert json.loads(line) == event.to_full()
    assert full_validator.is_valid(json.loads(line))


def test_to_json_line_when_given_minimal_dict_round_trips(
    minimal_validator: Draft202012Validator,
) -> None:
    message = _event("car").to_minimal()
    line = to_json_line(message)
    assert json.loads(line) == message
    assert minimal_validator.is_valid(json.loads(line))


def test_to_json_line_when_text_has_newline_or_unicode_stays_one_line() -> None:
    event = _event("car").model_copy(
        update={"sensor": SensorInfo(id="cam-1", description="Einfahrt\nSüd")}
    )
    line = to_json_line(event)
    assert "\n" not in line
    assert "Süd" in line


def test_to_json_line_when_nan_in_dict_raises() -> None:
    with pytest.raises(ValueError, match="JSON compliant"):
        to_json_line({"x": float("nan")})
