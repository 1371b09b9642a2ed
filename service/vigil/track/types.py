"""What tracking is told and what it gives: settings, a frame's confirmed tracks, their changes."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from vigil.detections import Detections

PREDICTED: Final[str] = "predicted"
"""``Detections.data`` key: bool per row, True where the box is the tracker's prediction (no
detection matched it on this frame)."""


class TrackerSettings(BaseModel):
    """Tracker settings; durations in seconds, so they hold at any frame rate."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(False, description="Track objects (stable ids, lifecycle events)")
    high_score: float = Field(
        0.5, ge=0, le=1, description="Detections at least this confident are matched first"
    )
    low_score: float = Field(
        0.1, ge=0, le=1, description="Weaker detections down to this keep existing tracks alive"
    )
    new_track_score: float = Field(
        0.6, ge=0, le=1, description="An unmatched detection this confident starts a track"
    )
    match_iou: float = Field(
        0.2, gt=0, le=1, description="Least overlap (IoU) of a detection with a track's box"
    )
    confirm_s: float = Field(
        0.04,
        ge=0,
        le=10,
        description="A new track is reported from its second detection at least this long "
        "after its first (the 2nd frame at up to 25 fps, the 3rd at 30 fps)",
    )
    tentative_lost_s: float = Field(
        0.25, gt=0, le=10, description="An unconfirmed track missed this long is dropped"
    )
    lost_track_s: float = Field(
        1.5, gt=0, le=300, description="A track missed this long ends (exit event)"
    )
    per_class: bool = Field(True, description="Match detections only to tracks of their class")
    id_first: int = Field(1, ge=1, description="The first track id this process hands out")
    id_step: int = Field(
        1,
        ge=1,
        le=1024,
        description="Track ids go id_first, id_first + id_step, ...: the N worker processes "
        "of `vigil run --workers N` use steps of N, so their ids never meet",
    )
    stopped_speed: float = Field(
        0.2,
        ge=0,
        le=100,
        description="Below this speed, in box heights per second, a track is stopped; it "
        "moves again above twice this speed",
    )
    motion_hold_s: float = Field(
        0.5, ge=0, le=60, description="A motion change counts once it has held this long"
    )


class TrackChangeKind(StrEnum):
    """What happened to a track."""

    ENTRY = "entry"
    EXIT = "exit"
    MOVING = "moving"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class TrackChange:
    """A change of a confirmed track on one frame.

    Attributes:
        track_id: The track's public id.
        kind: Entry (confirmed on this frame), exit (given up), moving or stopped.
        class_id: The track's class.
        xyxy: Its last known box (source pixels).
    """

    track_id: int
    kind: TrackChangeKind
    class_id: int
    xyxy: np.ndarray


@dataclass(frozen=True, slots=True)
class TrackerOutput:
    """The confirmed tracks on one frame.

    Attributes:
        detections: One row per confirmed track shown on this frame, ``tracker_id`` set;
            ``data[PREDICTED]`` says which boxes are predictions.
        changes: Lifecycle changes on this frame (exits included, though exited tracks
            have no row).
        moving: Per row, whether the track is moving (False: stopped).
    """

    detections: Detections
    changes: list[TrackChange]
    moving: np.ndarray
