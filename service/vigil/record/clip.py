"""Writing a clip: encoded packets remuxed with PyAV into fragmented MP4 or Matroska.

Nothing is re-encoded. H.264 and H.265 packets are written in Annex B form with their
parameter sets in front of every keyframe: the MP4 and Matroska muxers then build the
stream's ``avcC`` / ``hvcC`` themselves (PyAV cannot hand them extradata without an input
stream, and the decoder child sends plain bytes), and a player can start at any fragment.
Packets from MP4 files (length-prefixed, parameter sets in extradata) are converted; packets
from RTSP are Annex B already.

Timestamps are rebased so the file starts at 0 and stays monotonic when the source's clock
jumps (a camera reconnect restarts its timestamps): a packet whose time is not after the
previous one's continues one frame after it.

The MP4 is fragmented (``frag_keyframe`` + ``empty_moov``, at most ``fragment_s`` per
fragment) and written straight through: a clip cut short by ``kill -9`` plays up to its last
complete fragment ("moov atom not found" cannot happen).
"""

from __future__ import annotations

import importlib
from fractions import Fraction
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from vigil.sources.annexb import AnnexB
from vigil.sources.packets import CodecParams, EncodedPacket

if TYPE_CHECKING:  # PyAV is imported when a clip is written: GPU hosts may run without it
    import av

#: Muxer name and options per container setting.
FORMATS = {
    "mp4": ("mp4", "video/mp4"),
    "mkv": ("matroska", "video/x-matroska"),
}


class ClipWriteError(Exception):
    """Writing the clip failed (disk full, permissions); the clip is closed as far as it got.

    Attributes:
        no_space: True when the disk (or the recordings directory's file system) is full.
    """

    def __init__(self, message: str, *, no_space: bool = False) -> None:
        super().__init__(message)
        self.no_space = no_space


def pyav() -> ModuleType:
    """PyAV, imported on first use.

    Raises:
        ClipWriteError: PyAV is not installed (recording is then unavailable).
    """
    try:
        return importlib.import_module("av")
    except ImportError as e:
        raise ClipWriteError(f"PyAV is not installed, so clips cannot be written: {e}") from e


class ClipWriter:
    """One clip file being written.

    Args:
        path: The file (created; its directory must exist).
        container: ``mp4`` (fragmented) or ``mkv``.
        fragment_s: Longest MP4 fragment.
    """

    def __init__(self, path: Path, container: str, fragment_s: float = 1.0) -> None:
        self.path = path
        self.container = container
        self.fragment_s = fragment_s
        self.codec: str | None = None
        self.packets = 0
        self._out: av.container.OutputContainer | None = None
        self._stream: av.video.stream.VideoStream | None = None
        self._time_base: Fraction | None = None
        self._params: CodecParams | None = None
        self._annex_b: AnnexB | None = None
        self._offset: int | None = None  # added to source timestamps (output time base)
        self._last_dts: int | None = None
        self._last_duration = 1
        self._closed = False

    @property
    def duration_s(self) -> float:
        """Media time written so far."""
        if self._last_dts is None or self._time_base is None:
            return 0.0
        return float((self._last_dts + self._last_duration) * self._time_base)

    def write(self, packet: EncodedPacket) -> None:
        """Append one packet.

        Raises:
            ClipWriteError: the file could not be written.
        """
        if self._closed:
            raise ClipWriteError(f"{self.path.name} is closed")
        av = pyav()
        try:
            if self._out is None:
                self._open(packet.params)
            elif packet.params is not self._params:
                self._switch(packet.params)
            self._mux(packet)
        except (av.FFmpegError, OSError) as e:
            raise _write_error(self.path, e) from e

    def close(self) -> None:
        """Finish the file; idempotent. A write error while finishing leaves what was
        written (every complete fragment plays).

        Raises:
            ClipWriteError: finishing failed (the file stays as far as it got).
        """
        if self._closed:
            return
        self._closed = True
        out, self._out = self._out, None
        if out is None:
            return
        av = pyav()
        try:
            out.close()
        except (av.FFmpegError, OSError) as e:
            raise _write_error(self.path, e) from e

    # --- internals -------------------------------------------------------------------------

    def _open(self, params: CodecParams) -> None:
        muxer = FORMATS[self.container][0]
        options = {}
        if muxer == "mp4":
            options = {
                "movflags": "frag_keyframe+empty_moov+default_base_moof",
                "frag_duration": str(int(self.fragment_s * 1_000_000)),
                "flush_packets": "1",
            }
        self._out = pyav().open(str(self.path), "w", format=muxer, options=options)
        self._time_base = params.time_base
        self._stream = self._out.add_mux_stream(
            params.codec, width=params.width, height=params.height, time_base=params.time_base
        )
        self.codec = params.codec
        self._adopt(params)

    def _switch(self, params: CodecParams) -> None:
        """A reconnect: same stream, new packet clock (and maybe new parameter sets)."""
        assert self._params is not None
        if (params.codec, params.width, params.height) != (
            self._params.codec,
            self._params.width,
            self._params.height,
        ):
            raise ClipWriteError(
                f"the stream changed from {self._params.codec} {self._params.width}x"
                f"{self._params.height} to {params.codec} {params.width}x{params.height}"
            )
        self._adopt(params)
        self._offset = None  # set again by the next packet

    def _adopt(self, params: CodecParams) -> None:
        self._params = params
        self._annex_b = AnnexB(params)

    def _mux(self, packet: EncodedPacket) -> None:
        assert self._out is not None
        assert self._stream is not None
        assert self._time_base
        scale = packet.params.time_base / self._time_base
        dts_src = packet.dts if packet.dts is not None else packet.pts
        if dts_src is None:  # no clock at all: one frame after the last
            dts_src = 0
        dts = round(dts_src * scale)
        pts = round((packet.pts if packet.pts is not None else dts_src) * scale)
        duration = round(packet.duration * scale) or self._last_duration
        if self._last_dts is None:
            self._offset = -dts
        elif self._offset is None or dts + self._offset <= self._last_dts:
            # First packet after a reconnect, or the source's clock went back: continue
            # one frame after the previous packet.
            self._offset = self._last_dts + self._last_duration - dts
        assert self._offset is not None
        out_dts = dts + self._offset
        out = pyav().Packet(self._payload(packet))
        out.dts = out_dts
        out.pts = max(pts + self._offset, out_dts)
        out.duration = duration
        out.time_base = self._time_base
        out.is_keyframe = packet.keyframe
        out.stream = self._stream
        self._out.mux(out)  # rescales the packet to the muxer's time base in place
        self._last_dts, self._last_duration = out_dts, duration
        self.packets += 1

    def _payload(self, packet: EncodedPacket) -> bytes:
        """The packet in Annex B form, parameter sets in front of a keyframe."""
        assert self._annex_b is not None
        return self._annex_b(packet.data, packet.keyframe)


def _write_error(path: Path, error: BaseException) -> ClipWriteError:
    text = str(error)
    no_space = getattr(error, "errno", None) == 28 or "No space left" in text
    return ClipWriteError(f"cannot write {path.name}: {text}", no_space=no_space)
