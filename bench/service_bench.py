"""Service benchmark: does the long-running service keep up with the one-shot job?

Measured in one run, on the same files:

1. ``vigil run``'s code path (:func:`vigil.jobs.run_streams`) on N file streams;
2. ``vigil serve`` as a separate process, the same N files added through the REST API,
   frames counted through the API until every stream has ended; the latency of those API
   calls (every 50 ms, while the pipeline runs flat out) shows whether the REST API stays
   responsive (p99 ≤ 50 ms).

Both exclude Triton's start-up: timing starts when the streams are added. The ratio
service / run should be ≥ 0.95 (the REST layer, metrics and stream manager cost nothing
measurable).

Usage: ``python bench/service_bench.py --video vtest.avi [--streams 4] [--frames 300]``
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import results_table, vigil_serve
from tests.support.clips import make_clip
from vigil.config import Settings
from vigil.jobs import file_spec, run_streams


async def job_fps(clips: list[Path], tmp: Path) -> float:
    """Frames/s of the one-shot job path on the clips."""
    base = Settings()
    settings = base.model_copy(
        update={"events": base.events.model_copy(update={"jsonl_path": tmp / "run.jsonl"})}
    )
    specs = [file_spec(f"cam-{i}", str(c)) for i, c in enumerate(clips, 1)]
    result = await run_streams(settings, specs)
    frames = sum(s.stats.frames_processed for s in result.streams.values())
    return frames / result.elapsed_s


def service_fps(clips: list[Path], tmp: Path) -> tuple[float, list[float]]:
    """Frames/s of `vigil serve` with the clips added over REST, and the latencies (s) of
    the ``GET /api/v1/streams`` calls made every 50 ms while it ran flat out."""
    # the clips are in the temporary folder: clients may add files only under file_roots
    config = {
        "events": {"jsonl_path": str(tmp / "serve.jsonl")},
        "sources": {"file_roots": [str(tmp)]},
    }
    with vigil_serve(config, tmp, ready_timeout_s=120) as served:
        api = served.api
        start = time.monotonic()
        for i, clip in enumerate(clips, 1):
            added = api.post("/api/v1/streams", json={"id": f"cam-{i}", "url": clip.as_uri()})
            if added.status_code != 201:
                raise SystemExit(f"vigil serve refused cam-{i}: {added.status_code} {added.text}")
        latencies: list[float] = []
        while True:
            sent = time.perf_counter()
            reply = api.get("/api/v1/streams")
            latencies.append(time.perf_counter() - sent)
            streams = reply.json()["streams"]
            # a file's state turns "stopped" when its last frame is decoded; wait until
            # every decoded frame is processed too
            if all(
                s["state"] == "stopped" and s["frames_processed"] >= s["frames_decoded"]
                for s in streams
            ):
                break
            time.sleep(0.05)
        elapsed = time.monotonic() - start
        return sum(s["frames_processed"] for s in streams) / elapsed, latencies


def main(args: argparse.Namespace) -> None:
    console = Console()
    with tempfile.TemporaryDirectory(prefix="vigil-bench-") as name:
        tmp = Path(name)
        clip = make_clip(args.video, args.frames, tmp / "clip.mp4")
        clips = [clip] * args.streams
        run = asyncio.run(job_fps(clips, tmp))
        served, latencies = service_fps(clips, tmp)
    details = f"{args.streams} streams × {args.frames} frames"
    table = results_table("service", details, "frames/s")
    table.add_row("vigil run (one-shot job)", f"{run:.1f}")
    table.add_row("vigil serve (streams added over REST)", f"{served:.1f}")
    console.print(table)
    console.print(f"service / run = [bold]{served / run:.2f}[/bold] (target ≥ 0.95)")
    ms = np.array(latencies) * 1000
    console.print(
        f"GET /api/v1/streams under full load: {len(ms)} calls, p50 {np.percentile(ms, 50):.1f} "
        f"ms, p99 [bold]{np.percentile(ms, 99):.1f} ms[/bold] (target ≤ 50 ms)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", type=Path, required=True)
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--frames", type=int, default=300)
    main(parser.parse_args())
