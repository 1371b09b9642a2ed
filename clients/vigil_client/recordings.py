"""Recordings (clips of a stream) as the server reports them (``/api/v1/recordings``)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Final, Literal

import httpx

from vigil_client._http import HttpBase, path_segment, stream_path
from vigil_client._json import (
    extra_keys,
    format_time,
    optional_float,
    optional_time,
    require,
    to_json,
)
from vigil_client.errors import LocalFileError, VigilError

PART_SUFFIX: Final = ".part"
"""A download is written to ``<dest>.part`` and renamed to ``<dest>`` once complete; a
``.part`` file left by an interrupted download is resumed from its end."""

_CONTENT_RANGE = re.compile(r"^bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)$")

RecordingState = Literal["recording", "complete", "interrupted", "failed"]
"""States of a recording; :class:`RecordingInfo` keeps any other value as it comes."""


@dataclass(frozen=True, slots=True)
class RecordingTrigger:
    """What started a recording.

    Attributes:
        kind: ``"rest"``, ``"kafka"`` or ``"rule"``.
        rule: The analytics rule, when ``kind`` is ``"rule"``.
    """

    kind: str
    rule: str | None = None

    @classmethod
    def from_dict(cls, data: Any) -> RecordingTrigger:
        """Build from a trigger JSON object (``ValueError`` when malformed)."""
        data = require(data, ("kind",), "recording trigger")
        rule = data.get("rule")
        return cls(str(data["kind"]), None if rule is None else str(rule))


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingInfo:
    """A clip of one stream.

    Attributes:
        id: Recording id.
        stream_id: The stream it records.
        state: One of :data:`RecordingState` (other strings are passed through).
        start: When the clip starts; ``None`` until its first frame is known.
        end: When it ends; ``None`` while it is still recording with no end set.
        duration_s: Its length; ``None`` until known.
        trigger: What started it.
        size_bytes: Size of the file so far.
        codec: Video codec, e.g. ``"h264"`` (empty until known).
        container: ``"mp4"`` or ``"mkv"``.
        file_url: Path of the file on the server (``/api/v1/recordings/{id}/file``).
        error: Why it failed or was interrupted, if it did.
        extended: Set by :meth:`VigilClient.start_recording` only: ``True`` when the server
            extended the stream's active clip (HTTP 200) instead of starting a new one (201).
            Not part of the server's JSON.
        extra: Response keys unknown to this client version.
    """

    id: str
    stream_id: str
    state: str
    start: datetime | None = None
    end: datetime | None = None
    duration_s: float | None = None
    trigger: RecordingTrigger = field(default_factory=lambda: RecordingTrigger("rest"))
    size_bytes: int = 0
    codec: str = ""
    container: str = "mp4"
    file_url: str = ""
    error: str | None = None
    extended: bool = field(default=False, metadata={"json": False})
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def file_name(self) -> str:
        """A file name for a download: ``<id>.<container>``."""
        return f"{self.id}.{self.container or 'mp4'}"

    @classmethod
    def from_dict(cls, data: Any) -> RecordingInfo:
        """Build from a RecordingInfo JSON object.

        Raises:
            ValueError: A required key (``id``, ``stream_id``, ``state``) is missing or a
                value has the wrong type.
        """
        data = require(data, ("id", "stream_id", "state"), "recording")
        error = data.get("error")
        try:
            return cls(
                id=str(data["id"]),
                stream_id=str(data["stream_id"]),
                state=str(data["state"]),
                start=optional_time(data.get("start")),
                end=optional_time(data.get("end")),
                duration_s=optional_float(data.get("duration_s")),
                trigger=RecordingTrigger.from_dict(data.get("trigger") or {"kind": "rest"}),
                size_bytes=int(data.get("size_bytes") or 0),
                codec=str(data.get("codec") or ""),
                container=str(data.get("container") or "mp4"),
                file_url=str(data.get("file_url") or ""),
                error=None if error is None else str(error),
                extra=extra_keys(data, cls),
            )
        except (AttributeError, TypeError, ValueError) as e:
            raise ValueError(f"malformed recording {data.get('id')!r}: {e}") from e

    def to_dict(self) -> dict[str, Any]:
        """The JSON object the server sent (unknown keys included; times in UTC as ``Z``)."""
        return to_json(self)


@dataclass(frozen=True, slots=True)
class RecordingDownload:
    """The outcome of :meth:`VigilClient.download_recording`.

    Attributes:
        path: The file written.
        size_bytes: Its size.
        resumed_from_bytes: How many bytes a partial file from an earlier try held, which
            were kept (0 when the download started from the beginning).
        complete: False when the clip was still being written: the file then holds what
            was written so far (a fragmented MP4 plays up to its last complete fragment).
    """

    path: Path
    size_bytes: int
    resumed_from_bytes: int = 0
    complete: bool = True

    @property
    def fetched_bytes(self) -> int:
        """Bytes transferred by this call."""
        return self.size_bytes - self.resumed_from_bytes


class RecordingsMixin(HttpBase):
    """The recording calls of :class:`~vigil_client.VigilClient`."""

    def start_recording(
        self,
        stream_id: str,
        *,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        duration_s: float | None = None,
        pre_roll_s: float | None = None,
        post_roll_s: float | None = None,
    ) -> RecordingInfo:
        """Record a clip of a stream, or extend the clip it is recording now.

        Every argument is optional; those left out are not sent, so the server's defaults
        apply (with none: from now until :meth:`stop_recording`).

        Args:
            stream_id: The stream.
            start: When the clip starts (a time zone is required; strings are sent as they
                are, ISO-8601).
            end: When it ends.
            duration_s: Its length (> 0), instead of ``end``.
            pre_roll_s: Seconds before ``start`` to include from the stream's buffer (>= 0).
            post_roll_s: Seconds after ``end`` to include (>= 0).

        Returns:
            The clip; ``extended`` is true when an active clip of the stream was extended
            rather than a new one started.

        Raises:
            NotFoundError: No stream has this id.
            ConflictError: Recording is off on the server, or the stream has no encoded
                video to record (a ``test://`` pattern).
            ValidationError: Bad times; the error names the field.
            ValueError: A ``datetime`` without a time zone.
        """
        body: dict[str, Any] = {}
        for key, value in (("start", start), ("end", end)):
            if value is not None:
                body[key] = format_time(value) if isinstance(value, datetime) else value
        for key, number in (
            ("duration_s", duration_s),
            ("pre_roll_s", pre_roll_s),
            ("post_roll_s", post_roll_s),
        ):
            if number is not None:
                body[key] = number
        response = self._request(
            "POST", f"{stream_path(stream_id)}/recordings", json=body, expect=(201, 200)
        )
        recording = self._parse(response, RecordingInfo.from_dict)
        return replace(recording, extended=response.status_code == 200)

    def stop_recording(self, stream_id: str) -> RecordingInfo:
        """Stop the clip a stream is recording.

        Raises:
            NotFoundError: No stream has this id.
            ConflictError: The stream is not recording.
        """
        response = self._request("POST", f"{stream_path(stream_id)}/recordings/stop")
        return self._parse(response, RecordingInfo.from_dict)

    def list_recordings(
        self,
        *,
        stream_id: str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        state: str | None = None,
        limit: int | None = None,
    ) -> list[RecordingInfo]:
        """Recordings, newest first, filtered by the arguments given.

        Args:
            stream_id: Only this stream's.
            since: Only clips ending after this time (or still recording).
            until: Only clips starting before this time.
            state: Only those in this state (see :data:`RecordingState`).
            limit: At most this many (the server's default: 100).
        """
        params: dict[str, Any] = {}
        for key, value in (("since", since), ("until", until)):
            if value is not None:
                params[key] = format_time(value) if isinstance(value, datetime) else value
        for key, plain in (("stream_id", stream_id), ("state", state), ("limit", limit)):
            if plain is not None:
                params[key] = plain
        response = self._request("GET", "recordings", params=params)
        return self._parse(response, _recording_list)

    def get_recording(self, recording_id: str) -> RecordingInfo:
        """One recording.

        Raises:
            NotFoundError: No recording has this id.
        """
        return self._parse(
            self._request("GET", _recording_path(recording_id)), RecordingInfo.from_dict
        )

    def delete_recording(self, recording_id: str) -> None:
        """Delete a recording and its file.

        Raises:
            NotFoundError: No recording has this id.
            ConflictError: It is still recording.
        """
        self._request("DELETE", _recording_path(recording_id), expect=(204, 200))

    def download_recording(
        self,
        recording_id: str,
        dest: str | Path,
        *,
        resume: bool = True,
    ) -> RecordingDownload:
        """Save a recording's file, streamed to disk (never held in memory).

        The data goes to ``<dest>.part``, renamed to ``dest`` once complete. When a
        ``.part`` file from an interrupted download exists, only the rest is fetched (HTTP
        ``Range``); a server that ignores the range sends the whole file, which then
        replaces the partial one. A clip still being written can be downloaded: the file
        then holds what was written so far (``complete`` is false in the result).

        Args:
            recording_id: The recording.
            dest: The file to write, or an existing directory to write ``<id>.<container>``
                into. An existing file is replaced.
            resume: Continue a ``.part`` file; ``False`` starts again from the beginning.

        Raises:
            NotFoundError: No recording has this id.
            VigilError: The server's answer does not fit the request.
            ConnectionFailed, RequestTimeoutError: The transfer broke off; the ``.part``
                file is kept, so calling again resumes.
            LocalFileError: ``dest`` cannot be written.
        """
        recording = self.get_recording(recording_id)
        dest = Path(dest)
        if dest.is_dir():
            dest = dest / recording.file_name
        part = dest.with_name(dest.name + PART_SUFFIX)
        if not resume:
            part.unlink(missing_ok=True)
        path = f"{_recording_path(recording_id)}/file"
        offset = part.stat().st_size if part.is_file() else 0
        resumed_from = offset
        # Ranges count bytes of the file as stored, so no content coding may come between.
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        with self._stream("GET", path, headers=headers, expect=(200, 206, 416)) as response:
            if response.status_code == 416:
                total = _content_range(response)[2]
                if total != offset:  # the partial file is not a prefix of this file
                    resumed_from = None
            else:
                resumed_from = self._write_body(response, part, offset)
        if resumed_from is None:  # start again from the beginning, once
            part.unlink(missing_ok=True)
            headers.pop("Range", None)
            with self._stream("GET", path, headers=headers) as response:
                resumed_from = self._write_body(response, part, 0)
        try:
            os.replace(part, dest)
        except OSError as e:
            raise LocalFileError(f"cannot move {part} to {dest}: {e}", path=dest) from e
        complete = recording.state != "recording"
        return RecordingDownload(dest, dest.stat().st_size, resumed_from, complete)

    @staticmethod
    def _write_body(response: httpx.Response, part: Path, offset: int) -> int | None:
        """Write a 200 or 206 body to ``part``; returns the bytes kept from before (``None``
        when the server's range does not continue the partial file)."""
        expected: int | None
        if response.status_code == 206:
            first, _, total = _content_range(response)
            if first != offset:
                return None
            expected = total
        else:
            offset = 0  # the server sent the whole file
            length = response.headers.get("Content-Length")
            expected = int(length) if length and length.isdigit() else None
        try:
            out: IO[bytes] = part.open("ab" if offset else "wb")
        except OSError as e:
            raise LocalFileError(f"cannot write {part}: {e}", path=part) from e
        with out:
            try:
                # As the bytes arrive (a chunk size would buffer them, and a dropped
                # connection would lose what was buffered instead of leaving it to resume).
                for chunk in response.iter_bytes():
                    out.write(chunk)
            except OSError as e:
                raise LocalFileError(f"cannot write {part}: {e}", path=part) from e
            size = out.tell()
        if expected is not None and size != expected:
            raise VigilError(
                f"download of {response.request.url.path} ended at {size} of {expected} "
                f"bytes; {part} is kept: download again to resume"
            )
        return offset


def _recording_path(recording_id: str) -> str:
    return f"recordings/{path_segment(recording_id, 'recording id')}"


def _recording_list(data: Any) -> list[RecordingInfo]:
    items = require(data, ("recordings",), "recording list")["recordings"]
    if not isinstance(items, list):
        raise ValueError("'recordings' is not a list")
    return [RecordingInfo.from_dict(item) for item in items]


def _content_range(response: httpx.Response) -> tuple[int | None, int | None, int | None]:
    """``(first, last, total)`` of a ``Content-Range`` header (``None`` for ``*``).

    Raises:
        VigilError: The header is missing or malformed.
    """
    header = response.headers.get("Content-Range", "")
    match = _CONTENT_RANGE.match(header.strip())
    if match is None:
        raise VigilError(
            f"GET {response.request.url.path}: HTTP {response.status_code} with a bad "
            f"Content-Range {header!r}",
            status_code=response.status_code,
        )
    first, last, total = (None if v in (None, "*") else int(v) for v in match.groups())
    return first, last, total
