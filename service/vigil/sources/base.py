"""The interface every video source implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vigil.frame import Frame
from vigil.sources.packets import PacketSink

if TYPE_CHECKING:  # PyAV is imported by the CPU sources only: the GPU path runs without it
    import av


@dataclass(frozen=True)
class VideoInfo:
    """What is known about a source once it is open."""

    width: int
    height: int
    fps: float | None
    frame_count: int | None


class Source(ABC):
    """A stream of decoded frames from one camera or file.

    A source is driven from one thread: :meth:`open`, then iterate :meth:`frames`, then
    :meth:`close`. ``frames`` raises :class:`~vigil.sources.errors.SourceError` when the
    source fails; it simply ends at end of stream.

    Attributes:
        stream_id: Id of the stream the frames are tagged with.
        url: Where the video comes from.
        is_live: True for cameras (drop frames when behind), False for files (back-pressure).
        packets: The packet tap: when set (before :meth:`open`), every encoded video packet
            is handed to it before it is decoded (see :mod:`vigil.sources.packets`).
            Sources that have no encoded form (test patterns) never call it.
    """

    is_live: bool = False

    def __init__(self, stream_id: str, url: str) -> None:
        self.stream_id = stream_id
        self.url = url
        self.packets: PacketSink | None = None

    @abstractmethod
    def open(self) -> VideoInfo:
        """Open the source and read its stream parameters."""

    @abstractmethod
    def frames(self) -> Iterator[Frame]:
        """Decoded frames until the end of the stream."""

    @abstractmethod
    def close(self) -> None:
        """Release the decoder; idempotent."""

    @property
    def decode_errors(self) -> int:
        """Packets that failed to decode and were skipped."""
        return 0


def frame_from_av(stream_id: str, frame_number: int, decoded: av.VideoFrame) -> Frame:
    """A :class:`Frame` (RGB, stamped now) from a frame PyAV decoded."""
    pts_s = float(decoded.time) if decoded.time is not None else None
    return Frame.captured_now(stream_id, frame_number, pts_s, decoded.to_ndarray(format="rgb24"))
