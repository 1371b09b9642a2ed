"""Short test clips (H.264 MP4, MJPEG AVI) cut from a longer video with PyAV."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av

# codec → the pixel format it encodes
PIXEL_FORMATS = {"libx264": "yuv420p", "mjpeg": "yuvj420p"}


def make_clip(video: Path, frames: int, out: Path, fps: int = 10, codec: str = "libx264") -> Path:
    """The first ``frames`` frames of ``video`` re-encoded with ``codec`` (H.264 by default;
    ``mjpeg`` for an MJPEG AVI) at ``out``; the container follows ``out``'s suffix."""
    pix_fmt = PIXEL_FORMATS[codec]
    with av.open(str(video)) as src, av.open(str(out), "w") as dst:
        stream = dst.add_stream(codec, rate=fps)
        source = src.streams.video[0].codec_context
        stream.width, stream.height, stream.pix_fmt = source.width, source.height, pix_fmt
        stream.time_base = Fraction(1, fps)
        for i, frame in enumerate(src.decode(video=0)):
            if i == frames:
                break
            new = frame.reformat(format=pix_fmt)
            new.pts = i
            dst.mux(stream.encode(new))
        dst.mux(stream.encode())
    return out
