"""Settings of smart recording (the ``recording:`` section; see docs/recording.md).

Kept out of :mod:`vigil.record` so that :mod:`vigil.config` imports no engine code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: Analytics events a rule can start a clip on (``class_seen``: a tracked object of one of
#: the rule's classes is confirmed, or an untracked one is detected).
RuleTrigger = Literal["line_crossed", "crowding_raised", "dwell_exceeded", "class_seen"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RecordRule(_Model):
    """Record a clip around analytics events of one kind."""

    name: str = Field(min_length=1, max_length=64, description="Names the rule in the clip")
    on: RuleTrigger = Field(description="The event kind that starts a clip")
    streams: list[str] = Field(
        default_factory=list, description="Streams the rule applies to (empty: all)"
    )
    analytics_rule: str | None = Field(
        None, description="Only events of this line / zone / ROI (``object.analytics.rule``)"
    )
    classes: list[str] = Field(
        default_factory=list,
        description="Only objects of these classes (labels); required for class_seen",
    )
    pre_roll_s: float = Field(5.0, ge=0, le=300, description="Seconds kept before the event")
    post_roll_s: float = Field(5.0, ge=0, le=300, description="Seconds recorded after it")
    cooldown_s: float = Field(
        30.0,
        ge=0,
        description="Per stream: events this soon after the rule's last clip ended "
        "start no new clip (events during a clip extend it)",
    )

    @model_validator(mode="after")
    def _classes_for_class_seen(self) -> RecordRule:
        if self.on == "class_seen" and not self.classes:
            raise ValueError("classes: class_seen needs at least one class")
        return self


class RetentionSettings(_Model):
    """How long clips are kept; enforced continuously, oldest first."""

    max_age_s: float | None = Field(
        7 * 86400.0, gt=0, description="Delete clips older than this (None: never)"
    )
    max_bytes_per_stream: int | None = Field(
        None, gt=0, description="Per stream: delete its oldest clips above this (None: no cap)"
    )
    max_total_bytes: int | None = Field(
        10 * 1024**3, gt=0, description="All streams: delete the oldest clips above this"
    )
    check_interval_s: float = Field(10.0, gt=0, le=3600, description="How often to enforce")


class RecordingSettings(_Model):
    """Smart recording: a pre-event cache of each stream's encoded video, and clips from it."""

    enabled: bool = Field(True, description="Keep a pre-event cache and accept recordings")
    directory: Path | None = Field(
        None, description="Clips go here (default: <data_dir>/recordings)"
    )
    container: Literal["mp4", "mkv"] = Field(
        "mp4", description="mp4: fragmented MP4 (plays after a crash); mkv: Matroska"
    )
    cache_seconds: float = Field(
        10.0, gt=0, le=300, description="Pre-event cache per stream, in seconds of video"
    )
    cache_max_bytes: int = Field(
        32 * 1024**2,
        ge=1024,
        description="Pre-event cache per stream, in bytes (the cap that is reached first wins)",
    )
    pre_roll_s: float = Field(
        5.0, ge=0, le=300, description="REST recordings: seconds kept before the start"
    )
    post_roll_s: float = Field(
        2.0, ge=0, le=300, description="REST recordings: seconds recorded after the end"
    )
    default_duration_s: float = Field(
        60.0, gt=0, description="A recording with no end stops after this unless stopped"
    )
    max_duration_s: float = Field(
        1800.0, gt=0, description="A clip is closed at this length, however it is extended"
    )
    fragment_s: float = Field(
        1.0, gt=0, le=10, description="MP4 fragment length: what a crash can lose at most"
    )
    stall_timeout_s: float = Field(
        30.0,
        gt=0,
        description="A clip whose stream sends nothing for this long past its "
        "end is closed (a camera outage shorter than this stays in one clip)",
    )
    rules: list[RecordRule] = Field(
        default_factory=list,
        description="Record around analytics events (JSON list of {name, on, streams, "
        "analytics_rule, classes, pre_roll_s, post_roll_s, cooldown_s})",
    )
    retention: RetentionSettings = RetentionSettings()
