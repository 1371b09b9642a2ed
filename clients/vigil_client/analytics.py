"""A stream's analytics rules and counts (``/api/v1/streams/{id}/analytics``), and reading
rules from a YAML or JSON file."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vigil_client._http import HttpBase, stream_path
from vigil_client._json import extra_keys, require, to_json
from vigil_client.errors import LocalFileError

RULE_KINDS = ("rois", "lines", "crowding", "dwell", "directions")
"""The rule lists of an analytics config, in the server's order."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AnalyticsCounts:
    """A stream's cumulative counts (class ids as strings), as the server's engine keeps them.

    Attributes:
        lines: line → ``{"in": {class: n}, "out": {class: n}}``.
        crowding: zone → ``{"count": objects now, "raised": 0/1, "episodes": n}``.
        dwell: zone → ``{"inside": tracked objects now, "exceeded": n}``.
        rois: ROI → objects inside now.
        extra: Response keys unknown to this client version.
    """

    lines: Mapping[str, Mapping[str, Mapping[str, int]]] = field(default_factory=dict)
    crowding: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    dwell: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    rois: Mapping[str, int] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def crossings(self, line: str, direction: str) -> int:
        """Crossings of ``line`` in ``direction`` (``"in"`` or ``"out"``), all classes."""
        return sum(self.lines.get(line, {}).get(direction, {}).values())

    @classmethod
    def from_dict(cls, data: Any) -> AnalyticsCounts:
        """Build from the ``counts`` object (``{}`` when the stream has no analytics)."""
        data = require(data, (), "analytics counts")
        return cls(
            lines={
                str(line): {str(d): _int_map(by_class) for d, by_class in directions.items()}
                for line, directions in (data.get("lines") or {}).items()
            },
            crowding={str(k): _int_map(v) for k, v in (data.get("crowding") or {}).items()},
            dwell={str(k): _int_map(v) for k, v in (data.get("dwell") or {}).items()},
            rois=_int_map(data.get("rois") or {}),
            extra=extra_keys(data, cls),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamAnalyticsInfo:
    """A stream's analytics rules and cumulative counts.

    Attributes:
        stream: Stream id.
        config: The rules as the server normalised them (every default filled in); ``None``
            when the stream has no analytics. Kept as JSON data: the server's schema is the
            one authority on rules.
        counts: Cumulative counts since the stream started or its counts were reset.
        extra: Response keys unknown to this client version.
    """

    stream: str
    config: Mapping[str, Any] | None
    counts: AnalyticsCounts
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def rule_names(self) -> dict[str, list[str]]:
        """Rule kind → names of its rules (kinds without rules left out)."""
        if self.config is None:
            return {}
        names = {
            kind: [str(rule.get("name")) for rule in self.config.get(kind) or ()]
            for kind in RULE_KINDS
        }
        return {kind: found for kind, found in names.items() if found}

    @classmethod
    def from_dict(cls, data: Any) -> StreamAnalyticsInfo:
        """Build from a StreamAnalyticsInfo JSON object (``ValueError`` when malformed)."""
        data = require(data, ("stream",), "stream analytics")
        config = data.get("config")
        if config is not None and not isinstance(config, Mapping):
            raise ValueError(f"analytics config is {type(config).__name__}, not an object")
        return cls(
            stream=str(data["stream"]),
            config=config,
            counts=AnalyticsCounts.from_dict(data.get("counts") or {}),
            extra=extra_keys(data, cls),
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON object the server sent (unknown keys included)."""
        return to_json(self)


def read_analytics_file(path: str | Path) -> dict[str, Any]:
    """Read analytics rules from a JSON (``.json``) or YAML file (anything else).

    The file holds an AnalyticsConfig object (``lines:``, ``crowding:``, ...), or a stream's
    settings with one under ``analytics:`` (as in ``vigil.yaml``), which is taken. The rules
    are not checked here: the server checks them and names the offending field.

    Raises:
        LocalFileError: The file cannot be read, is not valid JSON/YAML, or does not hold
            an object.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise LocalFileError(f"cannot read analytics config {path}: {e}", path=path) from e
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise LocalFileError(f"{path}: not valid JSON: {e}", path=path) from e
    else:
        data = _load_yaml(text, path)
    if isinstance(data, Mapping) and isinstance(data.get("analytics"), Mapping):
        data = data["analytics"]  # an AnalyticsConfig has no such key: no ambiguity
    if not isinstance(data, Mapping):
        kind = "nothing" if data is None else type(data).__name__
        raise LocalFileError(
            f"{path}: expected an analytics config (an object with lines, crowding, ...), "
            f"found {kind}",
            path=path,
        )
    return dict(data)


def _load_yaml(text: str, path: Path) -> Any:
    try:
        import yaml  # a dependency of the vigil distribution; only this reader needs it
    except ImportError as e:
        raise LocalFileError(
            f"{path}: reading YAML needs PyYAML (pip install pyyaml); or give a .json file",
            path=path,
        ) from e
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise LocalFileError(f"{path}: not valid YAML: {e}", path=path) from e


def _int_map(data: Any) -> dict[str, int]:
    if not isinstance(data, Mapping):
        raise ValueError(f"expected an object of counts, got {type(data).__name__}")
    return {str(k): int(v) for k, v in data.items()}


class AnalyticsMixin(HttpBase):
    """The ``/api/v1/streams/{id}/analytics`` calls of :class:`~vigil_client.VigilClient`."""

    def get_analytics(self, stream_id: str) -> StreamAnalyticsInfo:
        """A stream's analytics rules and cumulative counts.

        Raises:
            NotFoundError: No stream has this id.
        """
        response = self._request("GET", _analytics_path(stream_id))
        return self._parse(response, StreamAnalyticsInfo.from_dict)

    def set_analytics(
        self, stream_id: str, config: Mapping[str, Any], *, reset_counts: bool = False
    ) -> StreamAnalyticsInfo:
        """Replace a stream's analytics rules while it runs (no restart).

        Args:
            stream_id: The stream.
            config: An AnalyticsConfig object (``{"lines": [...], "crowding": [...]}``);
                checked by the server.
            reset_counts: Start every count from zero; otherwise counts of rules that keep
                their name survive.

        Raises:
            NotFoundError: No stream has this id.
            ValidationError: A rule is invalid; :attr:`ValidationError.errors` name it, e.g.
                ``lines[0].line``.
        """
        response = self._request(
            "PUT",
            _analytics_path(stream_id),
            json=dict(config),
            params={"reset_counts": "true"} if reset_counts else None,
        )
        return self._parse(response, StreamAnalyticsInfo.from_dict)

    def load_analytics_file(
        self, stream_id: str, path: str | Path, *, reset_counts: bool = False
    ) -> StreamAnalyticsInfo:
        """:meth:`set_analytics` with rules read from a YAML or JSON file
        (:func:`read_analytics_file`).

        Raises:
            LocalFileError: The file cannot be read or parsed.
        """
        return self.set_analytics(stream_id, read_analytics_file(path), reset_counts=reset_counts)

    def clear_analytics(self, stream_id: str) -> None:
        """Remove a stream's analytics and its counts.

        Raises:
            NotFoundError: No stream has this id.
        """
        self._request("DELETE", _analytics_path(stream_id), expect=(204, 200))


def _analytics_path(stream_id: str) -> str:
    return f"{stream_path(stream_id)}/analytics"
