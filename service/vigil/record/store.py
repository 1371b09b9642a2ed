"""Where clips live: the recordings directory, each clip's metadata, retention.

Layout: ``<directory>/<stream id>/<recording id>.mp4`` (or ``.mkv``) with its metadata beside it
in ``<recording id>.json``, written atomically. The store keeps an index in memory, loaded from
the metadata files at start-up; clips are found only through it, so no id or name from a
request ever becomes part of a path. A clip still marked ``recording`` at start-up was cut
short by a crash: it becomes ``interrupted`` (its file plays up to the last fragment).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from vigil.record.clip import FORMATS
from vigil.recording_settings import RetentionSettings

log = logging.getLogger(__name__)

RecordingState = Literal["recording", "complete", "interrupted", "failed"]
TriggerKind = Literal["rest", "kafka", "rule"]


@dataclass(frozen=True)
class Recording:
    """One clip and what is known about it.

    Attributes:
        id: The recording's id (also its file's name).
        stream_id: The stream recorded.
        state: ``recording`` while it is written; ``complete``; ``interrupted`` (Vigil stopped
            before it ended: the file plays up to its last fragment); ``failed`` (writing
            failed, e.g. the disk was full: the file holds what was written).
        start_s: Wall-clock time of its first packet (0 until one is written).
        end_s: Wall-clock time of its last packet (None while recording).
        duration_s: Media time written.
        trigger_kind: What asked for it.
        trigger_rule: The rule's name (rule triggers), else None.
        size_bytes: Size of the file.
        codec: The video codec.
        container: ``mp4`` or ``mkv``.
        error: Why it failed, when it did.
        created_s: When it was asked for.
    """

    id: str
    stream_id: str
    state: RecordingState
    trigger_kind: TriggerKind
    container: str
    created_s: float
    start_s: float = 0.0
    end_s: float | None = None
    duration_s: float = 0.0
    trigger_rule: str | None = None
    size_bytes: int = 0
    codec: str | None = None
    error: str | None = None

    @property
    def filename(self) -> str:
        """The clip's file name."""
        return f"{self.id}.{self.container}"

    @property
    def media_type(self) -> str:
        """The clip's MIME type."""
        return FORMATS[self.container][1]

    @property
    def url(self) -> str:
        """Where the REST API serves the clip (also the events' ``videoPath``)."""
        return f"/api/v1/recordings/{self.id}/file"

    def to_api(self) -> dict[str, object]:
        """The REST form."""
        return {
            "id": self.id,
            "stream_id": self.stream_id,
            "state": self.state,
            "start": _iso(self.start_s) if self.start_s else None,
            "end": _iso(self.end_s) if self.end_s else None,
            "duration_s": round(self.duration_s, 3),
            "trigger": {"kind": self.trigger_kind, "rule": self.trigger_rule},
            "size_bytes": self.size_bytes,
            "codec": self.codec,
            "container": self.container,
            "file_url": self.url,
            "error": self.error,
        }


@dataclass
class RetentionResult:
    """What one retention pass deleted."""

    deleted: list[str] = field(default_factory=list)
    freed_bytes: int = 0


class RecordingStore:
    """The recordings directory and its index; thread-safe.

    Args:
        directory: Root of the clips (created).
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._index: dict[str, Recording] = {}
        directory.mkdir(parents=True, exist_ok=True)
        self._load()

    # --- clips -------------------------------------------------------------------------------

    def new(self, stream_id: str, container: str, kind: TriggerKind, rule: str | None) -> Recording:
        """Register a new clip (state ``recording``) and make its stream's directory."""
        now = time.time()
        stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%S")
        rec = Recording(
            id=f"{stream_id}-{stamp}-{secrets.token_hex(3)}",
            stream_id=stream_id,
            state="recording",
            trigger_kind=kind,
            trigger_rule=rule,
            container=container,
            created_s=now,
        )
        self.path_of(rec).parent.mkdir(parents=True, exist_ok=True)
        self.save(rec)
        return rec

    def path_of(self, rec: Recording) -> Path:
        """The clip's file."""
        return self.directory / rec.stream_id / rec.filename

    def save(self, rec: Recording) -> Recording:
        """Record a clip's metadata (atomically on disk, then in the index); the size is
        read from the file."""
        path = self.path_of(rec)
        with contextlib.suppress(OSError):
            rec = replace(rec, size_bytes=path.stat().st_size)
        meta = path.with_suffix(".json")
        tmp = meta.with_suffix(".json.tmp")
        try:
            tmp.write_text(json.dumps(asdict(rec)))
            os.replace(tmp, meta)
        except OSError as e:  # a full disk must not lose the index entry
            log.warning("cannot write the metadata of recording %s: %s", rec.id, e)
            with contextlib.suppress(OSError):
                tmp.unlink()
        with self._lock:
            self._index[rec.id] = rec
        return rec

    def get(self, recording_id: str) -> Recording | None:
        """The clip with this id, if any."""
        with self._lock:
            return self._index.get(recording_id)

    def list(
        self,
        stream_id: str | None = None,
        since_s: float | None = None,
        until_s: float | None = None,
        state: str | None = None,
        limit: int | None = None,
    ) -> list[Recording]:
        """Clips newest first; ``since``/``until`` select clips overlapping that time."""
        with self._lock:
            items = list(self._index.values())
        out = []
        for rec in sorted(items, key=lambda r: r.created_s, reverse=True):
            begin = rec.start_s or rec.created_s
            end = rec.end_s if rec.end_s is not None else time.time()
            if stream_id is not None and rec.stream_id != stream_id:
                continue
            if state is not None and rec.state != state:
                continue
            if since_s is not None and end < since_s:
                continue
            if until_s is not None and begin > until_s:
                continue
            out.append(rec)
            if limit is not None and len(out) >= limit:
                break
        return out

    def delete(self, rec: Recording) -> int:
        """Remove a clip's file and metadata; the bytes freed."""
        path = self.path_of(rec)
        freed = 0
        with contextlib.suppress(OSError):
            freed = path.stat().st_size
        for p in (path, path.with_suffix(".json")):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        with self._lock:
            self._index.pop(rec.id, None)
        return freed

    def total_bytes(self, stream_id: str | None = None) -> int:
        """Bytes of the clips (of one stream)."""
        with self._lock:
            return sum(
                r.size_bytes for r in self._index.values() if stream_id in (None, r.stream_id)
            )

    # --- retention ---------------------------------------------------------------------------

    def enforce(self, retention: RetentionSettings, now_s: float | None = None) -> RetentionResult:
        """Delete finished clips past the age limit, then the oldest ones while a stream or
        the whole store is over its byte limit. Clips being written are never deleted."""
        now = time.time() if now_s is None else now_s
        result = RetentionResult()
        with self._lock:
            done = [r for r in self._index.values() if r.state != "recording"]
        done.sort(key=lambda r: r.created_s)

        def drop(rec: Recording) -> None:
            result.freed_bytes += self.delete(rec)
            result.deleted.append(rec.id)
            done.remove(rec)

        if retention.max_age_s is not None:
            for rec in [r for r in done if now - (r.end_s or r.created_s) > retention.max_age_s]:
                drop(rec)
        if retention.max_bytes_per_stream is not None:
            for stream in {r.stream_id for r in done}:
                while self.total_bytes(stream) > retention.max_bytes_per_stream:
                    oldest = next((r for r in done if r.stream_id == stream), None)
                    if oldest is None:
                        break
                    drop(oldest)
        if retention.max_total_bytes is not None:
            while self.total_bytes() > retention.max_total_bytes and done:
                drop(done[0])
        return result

    # --- start-up ----------------------------------------------------------------------------

    def _load(self) -> None:
        for meta in self.directory.glob("*/*.json"):
            try:
                rec = Recording(**json.loads(meta.read_text()))
            except (OSError, ValueError, TypeError) as e:
                log.warning("ignoring unreadable recording metadata %s: %s", meta, e)
                continue
            if meta.parent.name != rec.stream_id or meta.stem != rec.id:
                log.warning("ignoring recording metadata %s: it names another clip", meta)
                continue
            if rec.state == "recording":  # Vigil stopped while writing it
                rec = replace(rec, state="interrupted", end_s=rec.end_s or meta.stat().st_mtime)
                self.save(rec)
            with self._lock:
                self._index[rec.id] = rec


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
