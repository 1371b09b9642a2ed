"""Make the GPU benchmark's synthetic 1080p H.264 clip with PyAV (on any CPU host).

People-sized boxes walking over a textured background, 30 fps, constant bitrate: a stand-in for
a street camera that NVDEC and FFmpeg decode at their normal cost. The H100 has no NVENC, so
clips are encoded here and carried to the GPU machine.

Usage: ``python bench/gpu/make_clip.py OUT.mp4 [--frames 1800] [--bitrate 2000000]``
"""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

WIDTH, HEIGHT, FPS = 1920, 1080, 30


def frames(count: int, seed: int = 0) -> np.ndarray:
    """Yield ``count`` RGB frames."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    background = np.stack([60 + 60 * x / WIDTH, 80 + 50 * y / HEIGHT, 90 + 0 * x], -1)
    background += rng.normal(0, 12, background.shape).astype(np.float32)  # texture, fixed
    background = background.clip(0, 255).astype(np.uint8)
    walkers = rng.uniform([0, 300, -6, -1], [WIDTH, HEIGHT - 300, 6, 1], (12, 4))
    colors = rng.integers(40, 240, (12, 3), dtype=np.uint8)
    for n in range(count):
        image = background.copy()
        for (x0, y0, vx, vy), color in zip(walkers, colors, strict=True):
            cx = int((x0 + vx * n) % WIDTH)
            cy = int(y0 + vy * n) % (HEIGHT - 260)
            image[cy : cy + 240, cx : cx + 90] = color
            image[cy : cy + 50, cx + 25 : cx + 65] = (220, 180, 150)
        yield image


def make_clip(out: Path, count: int, bitrate: int) -> Path:
    """Encode ``count`` frames as H.264 (yuv420p, constant bitrate) into ``out``."""
    with av.open(str(out), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.time_base = Fraction(1, FPS)
        stream.bit_rate = bitrate
        stream.options = {"preset": "veryfast", "g": "60", "bf": "0"}
        for i, rgb in enumerate(frames(count)):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--frames", type=int, default=1800)
    parser.add_argument("--bitrate", type=int, default=2_000_000)
    args = parser.parse_args()
    make_clip(args.out, args.frames, args.bitrate)
    print(f"{args.out}: {args.out.stat().st_size / 1e6:.1f} MB, {args.frames} frames")
