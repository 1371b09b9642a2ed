"""H.264 / H.265 bitstream forms: Annex B (start codes, what RTSP carries and NVDEC and the
clip muxer take) and length-prefixed (``avcC`` / ``hvcC``, what MP4 and Matroska files carry).

Only what Vigil needs: parameter sets out of a stream's extradata, packets converted to
Annex B, and telling keyframes and parameter sets apart by their NAL unit headers.
"""

from __future__ import annotations

import struct
from typing import Any

from vigil.sources.packets import CodecParams

START_CODE = b"\x00\x00\x00\x01"


class AnnexB:
    """Converts one stream's packets to Annex B, with the parameter sets in front of every
    keyframe that does not carry them (streams that repeat them in-band get nothing added):
    what a muxer writing Annex B and a decoder fed packet by packet both need.

    Args:
        params: The stream's codec parameters (its extradata gives the parameter sets).
    """

    def __init__(self, params: CodecParams) -> None:
        self.codec = params.codec
        self.parameter_sets, self.nal_length = parameter_sets(params)

    def __call__(self, data: bytes, keyframe: bool) -> bytes:
        """``data`` (one packet) in Annex B form; other codecs' packets as they are."""
        if self.codec not in ("h264", "hevc"):
            return data
        if self.nal_length:
            data = to_annex_b(data, self.nal_length)
        if keyframe and self.parameter_sets and not starts_with_parameter_set(data, self.codec):
            data = self.parameter_sets + data
        return data


def parameter_sets(params: CodecParams) -> tuple[bytes, int]:
    """Annex B parameter sets from the extradata, and the NAL length size of length-prefixed
    packets (0: the packets are Annex B already)."""
    data = params.extradata
    if params.codec not in ("h264", "hevc") or not data:
        return b"", 0
    if data.startswith((b"\x00\x00\x01", START_CODE)):
        return data, 0  # Annex B extradata (RTSP's sprop parameter sets)
    try:
        if params.codec == "h264":
            return _avcc_parameter_sets(data)
        return _hvcc_parameter_sets(data)
    except (IndexError, struct.error):
        return b"", 0  # malformed extradata: write the packets as they are


def _avcc_parameter_sets(data: bytes) -> tuple[bytes, int]:
    nal_length = (data[4] & 3) + 1
    units: list[bytes] = []
    i = 5
    for mask in (0x1F, 0xFF):  # the SPS count (low 5 bits of its byte), then the PPS count
        i = _read_units(data, i + 1, data[i] & mask, units)
    return b"".join(START_CODE + u for u in units), nal_length


def _hvcc_parameter_sets(data: bytes) -> tuple[bytes, int]:
    nal_length = (data[21] & 3) + 1
    units: list[bytes] = []
    i = 23
    for _ in range(data[22]):  # arrays: type byte, 16-bit unit count, units
        i = _read_units(data, i + 3, struct.unpack_from(">H", data, i + 1)[0], units)
    return b"".join(START_CODE + u for u in units), nal_length


def _read_units(data: bytes, i: int, count: int, units: list[bytes]) -> int:
    """Append the ``count`` NAL units at ``data[i:]``, each after its 16-bit size, to
    ``units``; returns the offset after them."""
    for _ in range(count):
        size = struct.unpack_from(">H", data, i)[0]
        units.append(data[i + 2 : i + 2 + size])
        i += 2 + size
    return i


def to_annex_b(data: bytes, nal_length: int) -> bytes:
    out, i = [], 0
    while i + nal_length <= len(data):
        size = int.from_bytes(data[i : i + nal_length], "big")
        i += nal_length
        out.append(START_CODE + data[i : i + size])
        i += size
    return b"".join(out)


def starts_with_parameter_set(data: bytes, codec: str) -> bool:
    """True when the first NAL unit of an Annex B packet is a parameter set (or an access unit
    delimiter before one): streams that repeat them in-band need nothing added."""
    start = data.find(b"\x00\x00\x01")
    if start < 0 or start + 3 >= len(data):
        return False
    header = data[start + 3]
    if codec == "h264":
        return header & 0x1F in (7, 8, 9)  # SPS, PPS, access unit delimiter
    return (header >> 1) & 0x3F in (32, 33, 34, 35)  # VPS, SPS, PPS, access unit delimiter


def is_keyframe(data: bytes, codec: str, flagged: Any = None) -> bool:
    """True when an Annex B access unit holds an IDR (H.264) or IRAP (H.265) picture; for
    other codecs, the demuxer's flag (every packet when it gives none: intra-only codecs)."""
    if codec not in ("h264", "hevc"):
        return True if flagged is None else bool(flagged)
    start = data.find(b"\x00\x00\x01")
    while 0 <= start < len(data) - 3:
        header = data[start + 3]
        if codec == "h264" and header & 0x1F == 5:
            return True
        if codec == "hevc" and 16 <= (header >> 1) & 0x3F <= 21:
            return True
        start = data.find(b"\x00\x00\x01", start + 3)
    return False
