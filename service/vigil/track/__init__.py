"""Multi-object tracking: stable ids per stream (ByteTrack-class, durations in seconds)."""

from vigil.track.bank import TrackerBank
from vigil.track.bytetrack import ByteTracker
from vigil.track.types import (
    PREDICTED,
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
    "TrackerBank",
    "TrackerOutput",
    "TrackerSettings",
]
