"""Soak: `vigil serve` for an hour with 4 streams and a stream added and removed every 5 s.

What leaks slowly shows only over time: the service process's resident memory (RSS), open
file descriptors, threads and Vigil's `/dev/shm` segments are sampled every 30 s. The verdict
is the RSS slope (least squares) over the last 40 minutes — it must stay ≤ 1 MB per 10 min —
and fds, threads and segments back at their level after warm-up (flat).

The 4 streams are real: two RTSP clients of a camera that loops the sample video (decoded by
FFmpeg), a test pattern, and the sample video played at 2 fps. The churn alternates an RTSP
stream, a short file and a test pattern.

Usage: ``python bench/soak.py [--minutes 60] [--video vtest.avi]`` (``make soak``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import measured_on, vigil_serve
from tests.support.clips import make_clip
from tests.support.rtsp import RtspCamera

ROOT = Path(__file__).resolve().parents[1]
SHM = Path("/dev/shm")
FLAT = ("fds", "threads", "shm")  # must stay flat


def footprint(pid: int) -> dict[str, float]:
    """RSS (MB), open fds, threads of ``pid`` and Vigil's shared-memory segments."""
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {
        "rss_mb": int(fields["VmRSS"].split()[0]) / 1024,
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        "threads": int(fields["Threads"]),
        "shm": len([p for p in SHM.glob(f"vigil_{pid}_*")]),
    }


def slope_mb_per_10min(samples: list[tuple[float, dict]], last_s: float) -> float:
    """Least-squares RSS slope over the last ``last_s`` seconds, in MB per 10 minutes."""
    end = samples[-1][0]
    window = [(t, f["rss_mb"]) for t, f in samples if t >= end - last_s]
    if len(window) < 3:
        return float("nan")
    t, rss = np.array(window).T
    return float(np.polyfit(t, rss, 1)[0] * 600)


def print_growth(snapshots: Path, settled_fraction: float, top: int = 15) -> None:
    """Print the allocation sites that grew most between a settled snapshot and the last."""
    files = sorted(snapshots.glob("snap-*.pickle"))
    if len(files) < 2:
        print("tracemalloc: fewer than two snapshots")
        return
    # Snapshots are evenly spaced over the run: the judged window starts a third of the way in.
    first = files[min(len(files) - 2, round(len(files) * settled_fraction))]
    old = tracemalloc.Snapshot.load(str(first))
    new = tracemalloc.Snapshot.load(str(files[-1]))
    total = sum(s.size for s in new.statistics("filename")) - sum(
        s.size for s in old.statistics("filename")
    )
    print(f"tracemalloc: Python heap {total / 1e6:+.2f} MB from {first.name} to {files[-1].name}")
    for stat in new.compare_to(old, "traceback")[:top]:
        where = " < ".join(f"{f.filename}:{f.lineno}" for f in reversed(stat.traceback[-3:]))
        print(f"  {stat.size_diff / 1e3:+9.1f} kB {stat.count_diff:+7d}  {where}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument(
        "--video", type=Path, default=Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
    )
    parser.add_argument("--churn-s", type=float, default=5.0)
    parser.add_argument("--sample-s", type=float, default=30.0)
    parser.add_argument("--out", type=Path, help="write the samples as JSON here")
    parser.add_argument(
        "--tracemalloc",
        type=Path,
        metavar="DIR",
        help="run the service under tracemalloc, snapshots in DIR; print what grew",
    )
    args = parser.parse_args()
    duration_s = args.minutes * 60
    judged_s = min(40 * 60, duration_s * 2 / 3)

    with (
        tempfile.TemporaryDirectory(prefix="vigil-soak-") as tmp,
        RtspCamera(source=args.video, fps=10) as camera,
    ):
        run_dir = Path(tmp)
        clip = make_clip(args.video, 20, run_dir / "short.mp4")
        config = {
            "events": {"jsonl_path": None},
            "sources": {"file_roots": [str(args.video.parent), str(run_dir)]},
            "streams": [
                {"id": "rtsp-a", "url": camera.url},
                {"id": "rtsp-b", "url": camera.url},
                {"id": "pattern", "url": "test://pattern?fps=10"},
                {"id": "file", "url": args.video.resolve().as_uri(), "max_fps": 2},
            ],
        }
        env = {**os.environ, "VIGIL_RUN_DIR": str(run_dir)}
        if args.tracemalloc:
            launcher = [str(ROOT / "bench" / "traced_serve.py"), "--out", str(args.tracemalloc)]
            launcher += ["--every", str(max(60.0, duration_s / 15)), "--"]
        else:
            launcher = ["-m", "vigil.cli"]
        with (
            (run_dir / "service.log").open("w") as log,
            vigil_serve(config, run_dir, launcher=launcher, env=env, log=log) as served,
        ):
            api, proc = served.api, served.process
            urls = [camera.url, clip.as_uri(), "test://pattern?fps=10"]
            samples: list[tuple[float, dict]] = []
            start = time.monotonic()
            next_sample = start
            cycle = 0
            while (now := time.monotonic()) - start < duration_s:
                if proc.poll() is not None:
                    raise SystemExit(f"the service exited with {proc.returncode}")
                sid = f"churn-{cycle}"
                reply = api.post("/api/v1/streams", json={"id": sid, "url": urls[cycle % 3]})
                assert reply.status_code == 201, reply.text
                time.sleep(args.churn_s / 2)
                assert api.delete(f"/api/v1/streams/{sid}").status_code == 204
                cycle += 1
                if now >= next_sample:
                    f = footprint(proc.pid)
                    samples.append((now - start, f))
                    next_sample += args.sample_s
                    print(f"{(now - start) / 60:6.1f} min  {json.dumps(f)}", flush=True)
                time.sleep(args.churn_s / 2)
            streams = api.get("/api/v1/streams").json()["streams"]

    slope = slope_mb_per_10min(samples, judged_s)
    settled = [f for t, f in samples if t >= duration_s - judged_s]
    spread = {k: (min(f[k] for f in settled), max(f[k] for f in settled)) for k in FLAT}
    states = ", ".join(f"{s['id']} {s['state']}" for s in streams)
    first, last = samples[0][1]["rss_mb"], samples[-1][1]["rss_mb"]
    print(f"\nsoak {measured_on()}")
    print(f"{args.minutes:g} min, {cycle} add/remove cycles; streams at the end: {states}")
    print(f"RSS {first:.1f} -> {last:.1f} MB; slope over the last {judged_s / 60:.0f} min:")
    print(f"  {slope:+.2f} MB / 10 min (limit 1.0)")
    print("  " + ", ".join(f"{k} {lo}-{hi}" for k, (lo, hi) in spread.items()))
    if args.tracemalloc:
        print_growth(args.tracemalloc, settled_fraction=1 - judged_s / duration_s)
    if args.out:
        args.out.write_text(json.dumps({"samples": samples, "slope_mb_per_10min": slope}))
    return 0 if slope <= 1.0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
