"""A fake of the recordings API, to the contract agreed for the server, for
``httpx.MockTransport`` (tests/integration/test_client_api.py meets the real one).

It keeps state (streams, clips, their bytes) and honours ``Range`` on the file endpoint, so
the client's download and resume logic meets the same answers a real server gives: 206 with
``Content-Range``, 416 with ``bytes */size``, or 200 when ``ignore_range`` is set (a server
or proxy that does not do ranges).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

import httpx

PREFIX = "/api/v1"
T0 = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)


@dataclass
class FakeClip:
    """One recording held by the fake."""

    id: str
    stream_id: str
    start: datetime
    state: str = "recording"
    end: datetime | None = None
    data: bytes = b""
    trigger: dict[str, Any] = field(default_factory=lambda: {"kind": "rest", "rule": None})

    def to_json(self) -> dict[str, Any]:
        duration = None if self.end is None else (self.end - self.start).total_seconds()
        return {
            "id": self.id,
            "stream_id": self.stream_id,
            "state": self.state,
            "start": self.start.isoformat().replace("+00:00", "Z"),
            "end": None if self.end is None else self.end.isoformat().replace("+00:00", "Z"),
            "duration_s": duration,
            "trigger": self.trigger,
            "size_bytes": len(self.data),
            "codec": "h264",
            "container": "mp4",
            "file_url": f"{PREFIX}/recordings/{self.id}/file",
            "error": None,
        }


class FakeRecordingsServer:
    """Answers the recording endpoints; every request is kept in :attr:`requests`.

    Attributes:
        streams: Stream ids that exist.
        clips: Recordings by id.
        ignore_range: Answer ranged file requests with the whole file (200).
        break_after: When set, the next file body stops with a read error after this many
            bytes (then it is cleared), as a dropped connection does.
    """

    def __init__(self, streams: tuple[str, ...] = ("cam-1",)) -> None:
        self.streams = set(streams)
        self.clips: dict[str, FakeClip] = {}
        self.requests: list[httpx.Request] = []
        self.ignore_range = False
        self.break_after: int | None = None
        self._next_id = 1

    def add_clip(self, stream_id: str, data: bytes, *, minutes: int = 0, **kw: Any) -> FakeClip:
        """A finished clip of ``stream_id`` starting ``minutes`` after :data:`T0`."""
        start = T0 + timedelta(minutes=minutes)
        clip = FakeClip(
            f"rec-{self._next_id}",
            stream_id,
            start,
            state=kw.pop("state", "complete"),
            end=start + timedelta(seconds=20),
            data=data,
            **kw,
        )
        self._next_id += 1
        self.clips[clip.id] = clip
        return clip

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    # -- dispatch

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = unquote(request.url.raw_path.decode().split("?")[0])
        method = request.method
        if m := re.fullmatch(rf"{PREFIX}/streams/([^/]+)/recordings", path):
            if method == "POST":
                return self._start(m.group(1), json.loads(request.content or b"{}"))
        elif m := re.fullmatch(rf"{PREFIX}/streams/([^/]+)/recordings/stop", path):
            if method == "POST":
                return self._stop(m.group(1))
        elif path == f"{PREFIX}/recordings" and method == "GET":
            return self._list(request)
        elif m := re.fullmatch(rf"{PREFIX}/recordings/([^/]+)/file", path):
            if method == "GET":
                return self._file(m.group(1), request)
        elif m := re.fullmatch(rf"{PREFIX}/recordings/([^/]+)", path):
            if method == "GET":
                return self._get(m.group(1))
            if method == "DELETE":
                return self._delete(m.group(1))
        return _problem(404, "Not Found")

    # -- endpoints

    def _start(self, stream_id: str, body: dict[str, Any]) -> httpx.Response:
        if stream_id not in self.streams:
            return _problem(404, f"stream {stream_id!r} not found")
        for key in ("duration_s",):
            if key in body and not body[key] > 0:
                return _invalid(key, "Input should be greater than 0")
        for key in ("pre_roll_s", "post_roll_s"):
            if key in body and body[key] < 0:
                return _invalid(key, "Input should be greater than or equal to 0")
        for key in ("start", "end"):
            if key in body:
                try:
                    datetime.fromisoformat(body[key])
                except (TypeError, ValueError):
                    return _invalid(key, "Input should be a valid datetime")
        end = None
        if "duration_s" in body:
            end = T0 + timedelta(seconds=body["duration_s"])
        active = next(
            (c for c in self.clips.values() if c.stream_id == stream_id and c.state == "recording"),
            None,
        )
        if active is not None:
            active.end = end
            return httpx.Response(200, json=active.to_json())
        clip = FakeClip(f"rec-{self._next_id}", stream_id, T0, end=end)
        self._next_id += 1
        self.clips[clip.id] = clip
        return httpx.Response(201, json=clip.to_json())

    def _stop(self, stream_id: str) -> httpx.Response:
        if stream_id not in self.streams:
            return _problem(404, f"stream {stream_id!r} not found")
        for clip in self.clips.values():
            if clip.stream_id == stream_id and clip.state == "recording":
                clip.state = "complete"
                clip.end = clip.end or clip.start + timedelta(seconds=5)
                clip.data = b"x" * 100
                return httpx.Response(200, json=clip.to_json())
        return _problem(409, f"stream {stream_id!r} is not recording")

    def _list(self, request: httpx.Request) -> httpx.Response:
        q = request.url.params
        clips = sorted(self.clips.values(), key=lambda c: c.start, reverse=True)
        if "stream_id" in q:
            clips = [c for c in clips if c.stream_id == q["stream_id"]]
        if "state" in q:
            clips = [c for c in clips if c.state == q["state"]]
        if "since" in q:
            since = datetime.fromisoformat(q["since"])
            clips = [c for c in clips if c.start >= since]
        if "until" in q:
            until = datetime.fromisoformat(q["until"])
            clips = [c for c in clips if c.start < until]
        if "limit" in q:
            clips = clips[: int(q["limit"])]
        return httpx.Response(200, json={"recordings": [c.to_json() for c in clips]})

    def _get(self, clip_id: str) -> httpx.Response:
        clip = self.clips.get(clip_id)
        if clip is None:
            return _problem(404, f"recording {clip_id!r} not found")
        return httpx.Response(200, json=clip.to_json())

    def _delete(self, clip_id: str) -> httpx.Response:
        clip = self.clips.get(clip_id)
        if clip is None:
            return _problem(404, f"recording {clip_id!r} not found")
        if clip.state == "recording":
            return _problem(409, f"recording {clip_id!r} is still recording")
        del self.clips[clip_id]
        return httpx.Response(204)

    def _file(self, clip_id: str, request: httpx.Request) -> httpx.Response:
        clip = self.clips.get(clip_id)
        if clip is None:
            return _problem(404, f"recording {clip_id!r} not found")
        data, size = clip.data, len(clip.data)
        headers = {"Content-Type": "video/mp4", "Accept-Ranges": "bytes"}
        ranged = re.fullmatch(r"bytes=(\d+)-", request.headers.get("Range", ""))
        if ranged is None or self.ignore_range:
            return self._body(200, data, headers)
        first = int(ranged.group(1))
        if first >= size:
            return httpx.Response(416, headers={"Content-Range": f"bytes */{size}"})
        headers["Content-Range"] = f"bytes {first}-{size - 1}/{size}"
        return self._body(206, data[first:], headers)

    def _body(self, status: int, data: bytes, headers: dict[str, str]) -> httpx.Response:
        headers = {**headers, "Content-Length": str(len(data))}
        if self.break_after is None:
            return httpx.Response(status, headers=headers, content=data)
        cut, self.break_after = self.break_after, None
        return httpx.Response(status, headers=headers, stream=_Broken(data[:cut]))


class _Broken(httpx.SyncByteStream):
    """A body that ends in a read error, as when the connection drops."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __iter__(self) -> Iterator[bytes]:
        yield self.data
        raise httpx.ReadError("connection reset by peer")


def _problem(status: int, detail: str) -> httpx.Response:
    return httpx.Response(status, json={"detail": detail})


def _invalid(field_name: str, msg: str) -> httpx.Response:
    detail = [{"loc": ["body", field_name], "msg": msg, "type": "value_error"}]
    return httpx.Response(422, json={"detail": detail})
