"""Conversions between the server's JSON and the client's frozen result classes."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any


def require(data: Any, keys: tuple[str, ...], what: str) -> Mapping[str, Any]:
    """``data`` as a mapping that has every key in ``keys``.

    Raises:
        ValueError: ``data`` is not a JSON object, or lacks one of ``keys``.
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"expected a JSON object for {what}, got {type(data).__name__}")
    missing = [key for key in keys if key not in data]
    if missing:
        raise ValueError(f"{what} lacks {', '.join(missing)}")
    return data


def extra_keys(data: Mapping[str, Any], cls: type) -> dict[str, Any]:
    """The keys of ``data`` that ``cls`` has no field for (kept so that a newer server works
    with an older client, and ``--json`` still prints them)."""
    known = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in data.items() if k not in known}


def optional_float(value: Any) -> float | None:
    """``None`` stays ``None``; anything else must be a number."""
    return None if value is None else float(value)


def optional_int(value: Any) -> int | None:
    """``None`` stays ``None``; anything else must be an integer."""
    return None if value is None else int(value)


def parse_time(value: Any) -> datetime:
    """An ISO-8601 timestamp from the server; one without a zone is taken as UTC (the server
    writes UTC everywhere).

    Raises:
        ValueError: Not an ISO-8601 string.
    """
    if not isinstance(value, str):
        raise ValueError(f"expected an ISO-8601 string, got {value!r}")
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def optional_time(value: Any) -> datetime | None:
    """:func:`parse_time`, with ``None`` passed through."""
    return None if value is None else parse_time(value)


def format_time(value: datetime) -> str:
    """ISO-8601 for the server and for ``--json``: UTC as ``Z``, to the second, millisecond or
    microsecond, whichever shows the value in full.

    Raises:
        ValueError: ``value`` has no time zone (its meaning would depend on this machine's).
    """
    if value.tzinfo is None:
        raise ValueError(f"{value.isoformat()} has no time zone; use datetime.now(UTC) or similar")
    micros = value.microsecond
    timespec = "seconds" if micros == 0 else "milliseconds" if micros % 1000 == 0 else "auto"
    if value.utcoffset() == UTC.utcoffset(None):
        return value.astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")
    return value.isoformat(timespec=timespec)


def to_json(value: Any) -> Any:
    """A result object (or anything inside one) as JSON data: dataclasses become objects with
    their ``extra`` keys merged back (fields marked ``metadata={"json": False}`` left out),
    tuples become lists, datetimes ISO-8601 strings."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(value):
            if f.name != "extra" and f.metadata.get("json", True):
                out[f.name] = to_json(getattr(value, f.name))
        out.update(getattr(value, "extra", {}))
        return out
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return value
