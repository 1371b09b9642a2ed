"""Video files decoded with PyAV (FFmpeg) on the CPU."""

from __future__ import annotations

import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av

from vigil.frame import Frame
from vigil.sources.base import Source, VideoInfo, frame_from_av
from vigil.sources.errors import DecodeErrors, SourceError
from vigil.sources.packets import CodecParams, packet_from_av
from vigil.sources.urls import file_path

# A corrupt packet is skipped and counted; this many failures in a row end the stream.


class FileSource(Source):
    """Frames of a local video file, decoded as fast as the pipeline takes them.

    Args:
        stream_id: Id of the stream.
        path: Path of the file (a ``file://`` URL is accepted too).
    """

    is_live = False

    def __init__(self, stream_id: str, path: str | Path) -> None:
        text = str(path)
        super().__init__(stream_id, text)
        self.path = file_path(text) if text.startswith("file:") else Path(text)
        self._container: av.container.InputContainer | None = None
        self._errors = DecodeErrors()

    @property
    def decode_errors(self) -> int:
        """Packets that failed to decode and were skipped."""
        return self._errors.total

    def open(self) -> VideoInfo:
        """Open the file and find its video stream.

        Raises:
            SourceError: the file is missing, unreadable, not a video, or has no video.
        """
        if not self.path.is_file():
            raise SourceError(str(self.path), "no such file")
        try:
            self._container = av.open(str(self.path), mode="r")
        except av.FFmpegError as e:
            raise SourceError(str(self.path), f"cannot open: {e}") from e
        if not self._container.streams.video:
            self.close()
            raise SourceError(str(self.path), "no video stream")
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = stream.average_rate
        return VideoInfo(
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            fps=float(rate) if isinstance(rate, Fraction) and rate else None,
            frame_count=stream.frames or None,
        )

    def frames(self) -> Iterator[Frame]:
        """Decode the file to its end.

        Raises:
            SourceError: too many consecutive packets failed to decode.
        """
        if self._container is None:
            raise SourceError(str(self.path), "source is not open")
        stream = self._container.streams.video[0]
        tap = self.packets
        params = CodecParams.of_stream(stream) if tap is not None else None
        number = 0
        try:
            for packet in self._container.demux(stream):
                if tap is not None and params is not None and packet.size:
                    tap(packet_from_av(packet, params, time.time()))
                try:
                    decoded = packet.decode()
                except av.FFmpegError as e:
                    if self._errors.failed():
                        raise SourceError(str(self.path), self._errors.reason(str(e))) from e
                    continue
                self._errors.decoded()
                for vf in decoded:
                    yield frame_from_av(self.stream_id, number, vf)
                    number += 1
        except av.FFmpegError as e:
            raise SourceError(str(self.path), f"read failed: {e}") from e
        if number == 0:
            raise SourceError(str(self.path), "no frame could be decoded")

    def close(self) -> None:
        """Close the file; idempotent."""
        if self._container is not None:
            self._container.close()
            self._container = None
