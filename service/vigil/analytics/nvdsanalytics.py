"""Import DeepStream's ``config_nvdsanalytics.txt`` unchanged.

The file is a GKeyFile (INI) with a ``[property]`` group (``config-width`` /
``config-height``: the frame size the coordinates were drawn for) and per-stream groups:

* ``[roi-filtering-stream-N]``: ``roi-<name>=x1;y1;x2;y2;...`` polygons, ``inverse-roi``
  (1: remove objects *inside*), ``class-id`` (``-1`` or ``a;b;...``);
* ``[overcrowding-stream-N]``: ``roi-<name>=...``, ``object-threshold``, ``class-id``,
  ``time-threshold`` (milliseconds the count must hold);
* ``[line-crossing-stream-N]``: ``line-crossing-<name>=dx1;dy1;dx2;dy2;x1;y1;x2;y2`` — the
  first two points are the direction a crossing must take to count, the last two the line —
  ``class-id``, ``extended``, ``mode``;
* ``[direction-detection-stream-N]``: ``direction-<name>=x1;y1;x2;y2``, ``class-id``.

Groups with ``enable=0`` are skipped. DeepStream's count for a line is Vigil's ``in`` count
of that line (Vigil counts the opposite way as ``out`` too). ``mode`` (how strictly the
motion must follow the direction) has no counterpart: Vigil counts a crossing by the side
the object ends on, with hysteresis, which is at least as strict as ``balanced``.
``osd-mode`` and ``display-font-size`` only style DeepStream's on-screen display and are
ignored. Any other key is an error naming its group.
"""

from __future__ import annotations

import configparser
import re
from collections import defaultdict
from typing import Any

from pydantic import ValidationError

from vigil.analytics.config import AnalyticsConfig

_GROUP = re.compile(
    r"^(roi-filtering|overcrowding|line-crossing|direction-detection)-stream-(\d+)$"
)
_KNOWN = {
    "property": {"enable", "config-width", "config-height", "osd-mode", "display-font-size"},
    "roi-filtering": {"enable", "inverse-roi", "class-id"},
    "overcrowding": {"enable", "object-threshold", "class-id", "time-threshold"},
    "line-crossing": {"enable", "class-id", "extended", "mode"},
    "direction-detection": {"enable", "class-id", "mode"},
}
_PREFIX = {
    "roi-filtering": "roi-",
    "overcrowding": "roi-",
    "line-crossing": "line-crossing-",
    "direction-detection": "direction-",
}


def parse_nvdsanalytics(text: str) -> dict[int, AnalyticsConfig]:
    """Stream index → its analytics, from a DeepStream nvdsanalytics config file.

    Raises:
        ValueError: the file is malformed, has an unknown group or key, or a rule is
            invalid (the message names the group and key).
    """
    parser = configparser.ConfigParser(interpolation=None, strict=False, comment_prefixes=("#",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    try:
        parser.read_string(text)
    except configparser.Error as e:
        raise ValueError(f"not a DeepStream analytics config: {e.message}") from e
    if not parser.has_section("property"):
        raise ValueError("[property] group is missing")
    prop = parser["property"]
    _check_keys("property", prop, _KNOWN["property"], None)
    if _int(prop, "property", "enable", 1) == 0:
        return {}
    size = (_int(prop, "property", "config-width", 0), _int(prop, "property", "config-height", 0))
    if min(size) <= 0:
        raise ValueError("[property] needs config-width and config-height (positive integers)")
    streams: dict[int, dict[str, Any]] = defaultdict(
        lambda: {"coordinates": "pixels", "reference_size": size}
    )
    for group in parser.sections():
        if group == "property":
            continue
        match = _GROUP.match(group)
        if match is None:
            raise ValueError(f"[{group}]: unknown group")
        kind, index = match.group(1), int(match.group(2))
        section = parser[group]
        _check_keys(group, section, _KNOWN[kind], _PREFIX[kind])
        if _int(section, group, "enable", 1) == 0:
            continue
        classes = _classes(section, group)
        rules = {
            key[len(_PREFIX[kind]) :]: _numbers(section[key], group, key)
            for key in section
            if key.startswith(_PREFIX[kind]) and key not in _KNOWN[kind]
        }
        config = streams[index]
        if kind == "roi-filtering":
            inverse = _int(section, group, "inverse-roi", 0)
            config["rois"] = [
                {"name": name, "polygon": _pairs(v, group, name), "classes": classes,
                 "mode": "exclude" if inverse else "include"}
                for name, v in rules.items()
            ]  # fmt: skip
        elif kind == "overcrowding":
            threshold = _int(section, group, "object-threshold", 1)
            hold_ms = _int(section, group, "time-threshold", 0)
            config["crowding"] = [
                {"name": name, "polygon": _pairs(v, group, name), "classes": classes,
                 "threshold": threshold, "min_duration_s": hold_ms / 1000}
                for name, v in rules.items()
            ]  # fmt: skip
        elif kind == "line-crossing":
            extended = bool(_int(section, group, "extended", 0))
            lines = []
            for name, v in rules.items():
                if len(v) != 8:
                    raise ValueError(
                        f"[{group}] line-crossing-{name}: expected 8 numbers "
                        f"(direction x1;y1;x2;y2, then line x1;y1;x2;y2), got {len(v)}"
                    )
                points = _pairs(v, group, name)
                lines.append(
                    {"name": name, "direction": points[:2], "line": points[2:],
                     "classes": classes, "extended": extended}
                )  # fmt: skip
            config["lines"] = lines
        else:
            directions = []
            for name, v in rules.items():
                if len(v) != 4:
                    raise ValueError(
                        f"[{group}] direction-{name}: expected 4 numbers x1;y1;x2;y2, got {len(v)}"
                    )
                directions.append(
                    {"name": name, "direction": _pairs(v, group, name), "classes": classes}
                )
            config["directions"] = directions
    out = {}
    for index, body in sorted(streams.items()):
        try:
            out[index] = AnalyticsConfig.model_validate(body)
        except ValidationError as e:
            err = e.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise ValueError(f"stream {index}: {where}: {err['msg']}") from e
    return out


def _check_keys(
    group: str, section: configparser.SectionProxy, known: set[str], prefix: str | None
) -> None:
    for key in section:
        if key in known or (prefix is not None and key.startswith(prefix)):
            continue
        raise ValueError(f"[{group}] {key}: unknown key")


def _int(section: configparser.SectionProxy, group: str, key: str, default: int) -> int:
    raw = section.get(key)
    if raw is None:
        return default
    try:
        return int(raw.strip().rstrip(";"))
    except ValueError:
        raise ValueError(f"[{group}] {key}: expected an integer, got {raw!r}") from None


def _numbers(raw: str, group: str, key: str) -> list[float]:
    parts = [p.strip() for p in raw.strip().split(";") if p.strip()]
    try:
        return [float(p) for p in parts]
    except ValueError:
        raise ValueError(f"[{group}] {key}: expected numbers separated by ';'") from None


def _pairs(values: list[float], group: str, name: str) -> list[tuple[float, float]]:
    if len(values) % 2:
        raise ValueError(f"[{group}] {name}: an odd count of coordinates ({len(values)})")
    return [(values[i], values[i + 1]) for i in range(0, len(values), 2)]


def _classes(section: configparser.SectionProxy, group: str) -> list[int] | None:
    raw = section.get("class-id")
    if raw is None:
        return None
    ids = [int(v) for v in _numbers(raw, group, "class-id")]
    return None if not ids or -1 in ids else ids
