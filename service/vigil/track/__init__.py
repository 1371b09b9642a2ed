"""Multi-object tracking: stable ids per stream (ByteTrack-class, durations in seconds)."""

from vigil.track.bytetrack import (
    PREDICTED,
    ByteTracker,
    TrackChange,
    TrackChangeKind,
    TrackerOutput,
    TrackerSettings,
)

__all__ = [
    "PREDICTED",
    "ByteTracker",
    "TrackChange",
    "TrackChangeKind",
    "TrackerOutput",
    "TrackerSettings",
]
