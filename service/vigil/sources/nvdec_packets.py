"""The packet tap of NVDEC file sources: PyNvVideoCodec's demuxed packets as
:class:`~vigil.sources.packets.EncodedPacket`\\ s.

PyNvVideoCodec demuxes with its own FFmpeg and converts H.264/H.265 to Annex B (parameter sets
in-band at keyframes), which is what the recorder writes. In the plain mode the source hands
each packet it decodes to :meth:`NvdecPacketTap.tap`; the threaded decoder demuxes inside its
native thread, so a second demuxer of the same file feeds the tap in step with the frames
fetched (:meth:`NvdecPacketTap.catch_up`). Keyframes are found in the bitstream itself (IDR /
IRAP NAL units), so they do not depend on what the binding exposes.
"""

from __future__ import annotations

import ctypes
import time
from fractions import Fraction
from typing import Any

from vigil.sources.annexb import is_keyframe
from vigil.sources.packets import CodecParams, EncodedPacket, PacketSink

#: cudaVideoCodec names → FFmpeg codec names.
CODECS = {"H264": "h264", "HEVC": "hevc", "AV1": "av1", "VP9": "vp9", "VP8": "vp8",
          "MPEG4": "mpeg4", "MPEG2": "mpeg2video", "JPEG": "mjpeg"}  # fmt: skip


class NvdecPacketTap:
    """Turns PyNvVideoCodec packets into the recorder's packets.

    Args:
        sink: The source's packet tap.
        codec: The cudaVideoCodec value of the stream (its name picks the codec).
        width: Picture width.
        height: Picture height.
        fps: Frame rate (timestamps are made from it when packets carry none).
        time_base: Unit of the packets' pts/dts when the demuxer tells it.
    """

    def __init__(
        self,
        sink: PacketSink,
        codec: Any,
        width: int,
        height: int,
        fps: float | None,
        time_base: Fraction | None = None,
    ) -> None:
        self.sink = sink
        name = str(getattr(codec, "name", codec)).rsplit(".", 1)[-1].upper()
        self.codec = CODECS.get(name, name.lower())
        self.fps = fps or 30.0
        self._made_timestamps = time_base is None
        base = time_base or Fraction(1, 90_000)
        self.params = CodecParams(self.codec, width, height, base)
        self._frame_ticks = max(1, round(1 / (self.fps * base)))
        self.count = 0
        self._demuxer: Any = None

    @classmethod
    def of_demuxer(cls, sink: PacketSink, demuxer: Any, fps: float | None) -> NvdecPacketTap:
        """A tap for the stream a PyNvVideoCodec demuxer reads."""
        return cls(
            sink,
            demuxer.GetNvCodecId(),
            int(demuxer.Width()),
            int(demuxer.Height()),
            fps,
            _time_base(demuxer),
        )

    def follow(self, demuxer: Any) -> None:
        """Threaded mode: read the file's packets from this demuxer of our own."""
        self._demuxer = iter(demuxer)

    def catch_up(self, frames: int) -> None:
        """Threaded mode: tap packets until as many as ``frames`` were (one per frame)."""
        while self._demuxer is not None and self.count < frames:
            packet = next(self._demuxer, None)
            if packet is None:
                self._demuxer = None
                return
            self.tap(packet)

    def tap(self, packet: Any) -> None:
        """Hand one PyNvVideoCodec packet to the sink (empty ones are skipped)."""
        size = int(getattr(packet, "bsl", 0) or 0)
        address = int(getattr(packet, "bsl_data", 0) or 0)
        if not size or not address:
            return
        data = ctypes.string_at(address, size)
        if self._made_timestamps:
            pts = dts = self.count * self._frame_ticks
        else:
            pts, dts = getattr(packet, "pts", None), getattr(packet, "dts", None)
        self.sink(
            EncodedPacket(
                data=data,
                pts=pts,
                dts=dts,
                duration=self._frame_ticks,
                keyframe=is_keyframe(data, self.codec, getattr(packet, "key", None)),
                arrival_s=time.time(),
                params=self.params,
            )
        )
        self.count += 1


def _time_base(demuxer: Any) -> Fraction | None:
    """The stream's time base, if this PyNvVideoCodec tells it."""
    for num, den in (("GetTimebaseNum", "GetTimebaseDen"), ("TimebaseNum", "TimebaseDen")):
        get_num, get_den = getattr(demuxer, num, None), getattr(demuxer, den, None)
        if callable(get_num) and callable(get_den):
            try:
                n, d = int(get_num()), int(get_den())
            except Exception:
                return None
            return Fraction(n, d) if n > 0 and d > 0 else None
    return None
