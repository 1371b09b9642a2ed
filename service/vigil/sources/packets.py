"""Encoded packets as sources hand them out before decoding (the packet tap).

Smart recording (:mod:`vigil.record`) keeps a short cache of each stream's *encoded* video and
writes clips from it without re-encoding. Sources hand every demuxed video packet to their
:attr:`~vigil.sources.base.Source.packets` sink before decoding it, so the cache sees the
camera's whole stream whatever happens after the decoder: pacing, drop policies and the
inference interval never thin it out.

Plain values only (no PyAV objects), so packets cross the decoder child's pipe
(:mod:`vigil.sources.isolated`) as they are and the recorder needs no live demuxer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # PyAV is imported by the CPU sources only
    import av


@dataclass(frozen=True, slots=True)
class CodecParams:
    """What a muxer needs to write a stream's packets without decoding them.

    Attributes:
        codec: FFmpeg codec name (``h264``, ``hevc``, ``mjpeg``, ...).
        width: Picture width in pixels.
        height: Picture height in pixels.
        time_base: Unit of the packets' ``pts`` and ``dts``, in seconds.
        extradata: The codec's out-of-band set-up (H.264 SPS/PPS as ``avcC`` or Annex B);
            empty when the stream carries it in-band.
        pix_fmt: Pixel format name, when known.
    """

    codec: str
    width: int
    height: int
    time_base: Fraction
    extradata: bytes = b""
    pix_fmt: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (extradata as hex)."""
        return {
            "codec": self.codec,
            "width": self.width,
            "height": self.height,
            "time_base": [self.time_base.numerator, self.time_base.denominator],
            "extradata": self.extradata.hex(),
            "pix_fmt": self.pix_fmt,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CodecParams:
        """The inverse of :meth:`to_dict`."""
        num, den = data["time_base"]
        return cls(
            codec=data["codec"],
            width=int(data["width"]),
            height=int(data["height"]),
            time_base=Fraction(int(num), int(den)),
            extradata=bytes.fromhex(data.get("extradata") or ""),
            pix_fmt=data.get("pix_fmt"),
        )

    @classmethod
    def of_stream(cls, stream: av.video.stream.VideoStream) -> CodecParams:
        """The parameters of a PyAV input stream."""
        ctx = stream.codec_context
        return cls(
            codec=ctx.name,
            width=ctx.width,
            height=ctx.height,
            time_base=stream.time_base or Fraction(1, 90_000),
            extradata=bytes(ctx.extradata or b""),
            pix_fmt=ctx.pix_fmt,
        )


@dataclass(frozen=True, slots=True)
class EncodedPacket:
    """One encoded video packet, as the demuxer read it.

    Attributes:
        data: The packet's bytes, untouched.
        pts: Presentation time in ``params.time_base`` units (None when the container has none).
        dts: Decoding time in the same units (None when unknown).
        duration: Duration in the same units (0 when unknown).
        keyframe: True when decoding can start at this packet.
        arrival_s: Wall-clock time (``time.time()``) the source read it: the clock frames'
            capture times and events use, so a trigger at time t finds its packets.
        params: The stream's codec parameters (the same object for every packet of one
            opening of the source; a new one after a reconnect).
    """

    data: bytes
    pts: int | None
    dts: int | None
    duration: int
    keyframe: bool
    arrival_s: float
    params: CodecParams

    @property
    def size(self) -> int:
        """Bytes of encoded video."""
        return len(self.data)


#: Where a source hands its packets: called on the source's thread, must not block for long.
PacketSink = Callable[[EncodedPacket], None]


def packet_from_av(packet: av.Packet, params: CodecParams, arrival_s: float) -> EncodedPacket:
    """An :class:`EncodedPacket` from a packet PyAV demuxed (its bytes are copied)."""
    return EncodedPacket(
        data=bytes(packet),
        pts=packet.pts,
        dts=packet.dts,
        duration=packet.duration or 0,
        keyframe=packet.is_keyframe,
        arrival_s=arrival_s,
        params=params,
    )
