"""Short H.264 test clips cut from a longer video with PyAV."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av


def make_clip(video: Path, frames: int, out: Path, fps: int = 10) -> Path:
    """The first ``frames`` frames of ``video`` re-encoded as an H.264 MP4 at ``out``."""
    with av.open(str(video)) as src, av.open(str(out), "w") as dst:
        stream = dst.add_stream("libx264", rate=fps)
        source = src.streams.video[0].codec_context
        stream.width, stream.height, stream.pix_fmt = source.width, source.height, "yuv420p"
        stream.time_base = Fraction(1, fps)
        for i, frame in enumerate(src.decode(video=0)):
            if i == frames:
                break
            new = frame.reformat(format="yuv420p")
            new.pts = i
            dst.mux(stream.encode(new))
        dst.mux(stream.encode())
    return out
