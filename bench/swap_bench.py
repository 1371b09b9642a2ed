"""Model swap benchmark: how long a hot swap of the SSD detector takes, with streams running.

A copy of the repository's SSD model gets a second version (the same weights under version
2), then, while N file streams play at camera rate through the real embedded Triton:

1. a *cold* swap 1 → 2: version 2 is loaded beside version 1 (Triton reloads the model with
   both versions), warmed up, switched to; version 1 drains;
2. a *warm* swap 2 → 1: version 1 was kept loaded (``model.keep_previous_loaded``), so only
   warm-up and the switch remain;
3. a rollback 1 → 2, also warm.

Each swap's duration is request → first frame emitted on the new version. The frame
latency p99 (capture → events) before and during the swaps, and lost frames, are printed
too.

Usage: ``python bench/swap_bench.py --video vtest.avi [--streams 2] [--fps 10]``
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vigil.config import Settings
from vigil.events.schema import Event
from vigil.events.sinks import EventSink
from vigil.runtime import open_runtime
from vigil.specs import StreamSpec

ROOT = Path(__file__).resolve().parents[1]
MODEL = "ssd_mobilenet_v2_coco"


class LatencySink(EventSink):
    """Records (emit time, capture → emit latency) per event."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []

    async def emit(self, events: Sequence[Event]) -> None:
        now = time.time()
        self.samples.extend((now, now - e.timestamp.timestamp()) for e in events)

    async def close(self) -> None:
        pass


def _repository(tmp: Path) -> Path:
    source = ROOT / "model_repository" / MODEL
    weights = source / "1" / "model.onnx"
    if not weights.is_file():
        sys.exit(f"{weights} is missing: run `make models`")
    dest = tmp / "repo" / MODEL
    dest.mkdir(parents=True)
    for item in source.iterdir():
        if item.is_file():
            shutil.copy(item, dest / item.name)
    for version in (1, 2):
        (dest / str(version)).mkdir()
        (dest / str(version) / "model.onnx").symlink_to(weights)
    return tmp / "repo"


def _p99(samples: list[tuple[float, float]], start: float, end: float) -> float:
    values = [lat for at, lat in samples if start <= at <= end]
    return float(np.percentile(values, 99)) * 1000 if values else float("nan")


async def main(video: Path, streams: int, fps: float) -> None:
    console = Console()
    with tempfile.TemporaryDirectory(prefix="vigil-swap-bench-") as tmp_name:
        tmp = Path(tmp_name)
        base = Settings()
        settings = base.model_copy(
            update={
                "run_dir": tmp,
                "data_dir": tmp / "data",
                "triton": base.triton.model_copy(update={"model_repository": _repository(tmp)}),
                "model": base.model.model_copy(update={"name": MODEL, "version": 1}),
                "events": base.events.model_copy(update={"jsonl_path": None}),
            }
        )
        sink = LatencySink()
        rows = []
        async with open_runtime(settings, extra_sinks=[sink]) as runtime:
            for i in range(streams):  # files played at `fps` (vtest.avi lasts 80 s at 10 fps)
                spec = StreamSpec(id=f"cam-{i + 1}", url=f"file://{video}", max_fps=fps)
                await runtime.streams.add(spec, trusted=True)
            await asyncio.sleep(5)
            steady_from = time.time()
            await asyncio.sleep(10)
            swaps_from = time.time()
            for label, call in (
                ("cold swap 1 → 2", lambda: runtime.models.swap(MODEL, 2)),
                ("warm swap 2 → 1", lambda: runtime.models.swap(MODEL, 1)),
                ("rollback 1 → 2", lambda: runtime.models.rollback()),
            ):
                record = await call()
                rows.append((label, record.switch_s, record.duration_s, record.drained_frames))
                await asyncio.sleep(3)
            swaps_to = time.time()
            dropped = sum(m.status.stats.frames_dropped for m in runtime.streams.list())
        table = Table(title=f"Hot swap of {MODEL}, {streams} live streams at {fps:g} fps")
        for column in ("swap", "switched after (s)", "first frame on new (s)", "drained frames"):
            table.add_column(column)
        for label, switch_s, duration_s, drained in rows:
            table.add_row(label, f"{switch_s:.2f}", f"{duration_s:.2f}", str(drained))
        console.print(table)
        console.print(
            f"frame latency p99: steady {_p99(sink.samples, steady_from, swaps_from):.0f} ms, "
            f"during swaps {_p99(sink.samples, swaps_from, swaps_to):.0f} ms; "
            f"frames dropped {dropped}"
        )
        console.print(
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
            f"{platform.processor() or platform.machine()}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, required=True, help="e.g. vtest.avi")
    parser.add_argument("--streams", type=int, default=2)
    parser.add_argument("--fps", type=float, default=10)
    args = parser.parse_args()
    asyncio.run(main(args.video.resolve(), args.streams, args.fps))
