"""NVDEC decoding alone at several stream counts: does decoding bound the pipeline's rate?

Runs Vigil's NVDEC file source (threaded mode, the service's default) on N copies of the clip,
each in its own thread, for each N given, twice, and prints frames/s. If the rate grows with
N, a fixed number of streams is bounded per stream by its decoder, not by the GPU. It also
prints when the last stream had opened and had its first frame: if sessions open one after
another, that grows with N and, in a short run, is most of the time.

Usage (on the GPU machine, after bench/gpu/device_run.sh has set up the packages)::

    python bench/gpu/decode_scaling.py CLIP --streams 16,32 --frames 300
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "service")]

from bench.gpu.baselines import nvdec_only, opening_text  # noqa: E402

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("clip", type=Path)
    parser.add_argument("--streams", default="16,32")
    parser.add_argument("--frames", type=int, default=300, help="per stream")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    for _ in range(args.repeats):
        for streams in [int(s) for s in args.streams.split(",") if s]:
            row = nvdec_only(args.clip, streams, args.frames, threaded=True)
            print(
                f"decode only, NVDEC threaded, {streams} streams × {args.frames} frames: "
                f"{row.fps:,.0f} frames/s ({row.fps / streams:,.0f} per stream) in "
                f"{row.seconds:.2f} s; {opening_text(row)}",
                flush=True,
            )
