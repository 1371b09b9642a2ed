"""Smart recording: start and stop clips of a stream; list, download and delete clips."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Response, status
from fastapi.responses import FileResponse, JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from vigil.api.bodies import Problem
from vigil.api.deps import RuntimeDep, require_read_key, require_write_key
from vigil.record.recorder import NotRecordingError, UnknownStreamError
from vigil.record.service import RecordingService
from vigil.record.store import Recording
from vigil.runtime import Runtime
from vigil.specs import StreamId

router = APIRouter(prefix="/api/v1", tags=["recordings"])

#: A start this far in the future is refused (a recording cannot begin later than now).
FUTURE_SLACK_S = 5.0
_NOT_FOUND = {404: {"model": Problem, "description": "No such stream or recording"}}
_DISABLED = {409: {"model": Problem, "description": "Recording is off, or the stream has no video"}}


class RecordingRequest(BaseModel):
    """What to record; every field is optional (default: from now until stopped, with the
    configured pre-roll and post-roll, for at most ``recording.default_duration_s``)."""

    model_config = ConfigDict(extra="forbid")

    start: AwareDatetime | None = Field(
        None, description="When the clip begins (past: from the pre-event cache); default now"
    )
    end: AwareDatetime | None = Field(None, description="When it ends (leave out: until stopped)")
    duration_s: float | None = Field(None, gt=0, description="Instead of end: seconds from start")
    pre_roll_s: float | None = Field(None, ge=0, le=300, description="Seconds before start")
    post_roll_s: float | None = Field(None, ge=0, le=300, description="Seconds after end")

    @model_validator(mode="after")
    def _times(self) -> RecordingRequest:
        if self.end is not None and self.duration_s is not None:
            raise ValueError("duration_s: give end or duration_s, not both")
        if self.start is not None and self.start.timestamp() > time.time() + FUTURE_SLACK_S:
            raise ValueError("start: lies in the future; a recording starts now at the latest")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError("end: must be after start")
        return self


class RecordingInfo(BaseModel):
    """One clip."""

    id: str
    stream_id: str
    state: Literal["recording", "complete", "interrupted", "failed"]
    start: datetime | None
    end: datetime | None
    duration_s: float
    trigger: dict[str, str | None]
    size_bytes: int
    codec: str | None
    container: str
    file_url: str
    error: str | None

    @classmethod
    def of(cls, rec: Recording) -> RecordingInfo:
        """The API form of a clip."""
        return cls.model_validate(rec.to_api())


class RecordingList(BaseModel):
    """Clips, newest first."""

    recordings: list[RecordingInfo]


def _service(runtime: Runtime) -> RecordingService:
    if runtime.recording is None:
        raise HTTPException(status.HTTP_409_CONFLICT, "recording is off (recording.enabled)")
    return runtime.recording


def _recording(runtime: Runtime, recording_id: str) -> tuple[RecordingService, Recording]:
    service = _service(runtime)
    rec = service.store.get(recording_id)
    if rec is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no recording with id {recording_id!r}")
    return service, rec


@router.post(
    "/streams/{stream_id}/recordings",
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(require_write_key)],
    responses={
        **_NOT_FOUND,
        **_DISABLED,
        200: {"model": RecordingInfo, "description": "The stream's open clip was extended"},
    },
)
async def start_recording(
    stream_id: StreamId, runtime: RuntimeDep, body: RecordingRequest | None = None
) -> Any:
    """Record a clip of a stream; while one is being written, extend it instead (200)."""
    managed = runtime.streams.get(stream_id)  # 404 for an unknown stream
    service = _service(runtime)
    if managed.spec.scheme == "test":
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"stream {stream_id!r} is a test pattern: it has no encoded video to record",
        )
    body = body or RecordingRequest()
    settings = service.settings
    start = body.start.timestamp() if body.start else None
    end = body.end.timestamp() if body.end else None
    if body.duration_s is not None:
        end = (start or time.time()) + body.duration_s
    try:
        rec, created = service.recorder.start(
            stream_id,
            start,
            end,
            pre_roll_s=settings.pre_roll_s if body.pre_roll_s is None else body.pre_roll_s,
            post_roll_s=settings.post_roll_s if body.post_roll_s is None else body.post_roll_s,
            kind="rest",
        )
    except UnknownStreamError as e:
        raise HTTPException(status.HTTP_409_CONFLICT, str(e)) from None
    code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return JSONResponse(RecordingInfo.of(rec).model_dump(mode="json"), status_code=code)


@router.post(
    "/streams/{stream_id}/recordings/stop",
    dependencies=[Depends(require_write_key)],
    responses={**_NOT_FOUND, 409: {"model": Problem, "description": "Nothing is recording"}},
)
async def stop_recording(stream_id: StreamId, runtime: RuntimeDep) -> RecordingInfo:
    """End the stream's open clip (after the configured post-roll)."""
    runtime.streams.get(stream_id)
    service = _service(runtime)
    try:
        rec = service.recorder.stop(stream_id, post_roll_s=service.settings.post_roll_s)
    except (NotRecordingError, UnknownStreamError) as e:
        raise HTTPException(status.HTTP_409_CONFLICT, str(e)) from None
    return RecordingInfo.of(rec)


@router.get("/recordings", dependencies=[Depends(require_read_key)], responses=_DISABLED)
async def list_recordings(
    runtime: RuntimeDep,
    stream_id: Annotated[StreamId | None, Query(description="Only this stream's clips")] = None,
    since: Annotated[AwareDatetime | None, Query(description="Clips ending after")] = None,
    until: Annotated[AwareDatetime | None, Query(description="Clips starting before")] = None,
    state: Annotated[
        Literal["recording", "complete", "interrupted", "failed"] | None, Query()
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> RecordingList:
    """Clips, newest first, filtered by stream, time range and state."""
    service = _service(runtime)
    found = service.store.list(
        stream_id,
        since.timestamp() if since else None,
        until.timestamp() if until else None,
        state,
        limit,
    )
    return RecordingList(recordings=[RecordingInfo.of(r) for r in found])


@router.get(
    "/recordings/{recording_id}", dependencies=[Depends(require_read_key)], responses=_NOT_FOUND
)
async def get_recording(recording_id: str, runtime: RuntimeDep) -> RecordingInfo:
    """One clip's metadata."""
    return RecordingInfo.of(_recording(runtime, recording_id)[1])


@router.get(
    "/recordings/{recording_id}/file",
    dependencies=[Depends(require_read_key)],
    responses={**_NOT_FOUND, 200: {"content": {"video/mp4": {}, "video/x-matroska": {}}}},
    response_class=FileResponse,
)
async def download_recording(recording_id: str, runtime: RuntimeDep) -> FileResponse:
    """The clip's file (HTTP range requests supported; a clip being written can be read up
    to its last complete fragment)."""
    service, rec = _recording(runtime, recording_id)
    path = service.store.path_of(rec)
    if not path.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"recording {recording_id!r} has no file")
    return FileResponse(path, media_type=rec.media_type, filename=rec.filename)


@router.delete(
    "/recordings/{recording_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[Depends(require_write_key)],
    responses={**_NOT_FOUND, 409: {"model": Problem, "description": "Still being written"}},
)
async def delete_recording(recording_id: str, runtime: RuntimeDep) -> Response:
    """Delete a clip (not while it is being written: stop it first)."""
    service, rec = _recording(runtime, recording_id)
    if rec.state == "recording":
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"recording {recording_id!r} is still being written"
        )
    service.store.delete(rec)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
