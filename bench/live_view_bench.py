"""Live view benchmark: what watching costs the pipeline, and how old what a viewer sees is.

Measured in one run, against one `vigil serve` process (the real embedded Triton, the SSD
model):

1. **Throughput with viewers.** 2 file streams of the clip added over REST, played flat out,
   frames/s until both are processed, with 0 viewers and with 4 MJPEG viewers (2 per stream,
   default ``fps`` 10, reading every byte) — the two cases interleaved (ABBA), ``--runs``
   times.
   The ratio with / without should be ≥ 0.95: drawing runs only for watched streams, off the
   pipeline's thread, and a viewer that cannot keep up drops frames instead of holding it.
2. **Capture → MJPEG latency at 720p.** A live 1280×720 camera (``test://pattern``, 10 fps);
   one MJPEG viewer at 10 fps and ``height=720`` reads parts for ``--seconds``; each part's
   ``X-Capture-Time`` header (the frame's ``capture_time_s``) against the wall clock when its
   last byte arrived. Target: p50 ≤ 150 ms.

Every figure is the median of the runs with min–max beside it.

Usage: ``python bench/live_view_bench.py --video vtest.avi [--frames 300] [--runs 3]``
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import measured_on, spread, vigil_serve
from tests.support.clips import make_clip

LIVE_720P = "test://pattern?width=1280&height=720&fps=10"


class Viewer(threading.Thread):
    """Reads one MJPEG response to its end, noting each part's capture time and arrival."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.parts: list[tuple[float, float]] = []  # (capture time, arrival), UNIX seconds
        self.connected = threading.Event()
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=30) as client, client.stream("GET", self.url) as reply:
            self.connected.set()
            buffer = b""
            for chunk in reply.iter_bytes():
                buffer += chunk
                while True:  # every complete part in the buffer
                    end = buffer.find(b"\r\n--frame\r\n", buffer.find(b"\r\n\r\n"))
                    if end < 0:
                        break
                    head = buffer[: buffer.find(b"\r\n\r\n")].decode(errors="replace")
                    for line in head.split("\r\n"):
                        if line.startswith("X-Capture-Time: "):
                            self.parts.append((float(line.split(": ")[1]), time.time()))
                    buffer = buffer[end + len(b"\r\n--frame\r\n") :]
                if self.stop.is_set():
                    return


def _processed(api: httpx.Client) -> tuple[bool, int]:
    streams = api.get("/api/v1/streams").json()["streams"]
    done = all(s["state"] == "stopped" and s["frames_processed"] >= s["frames_decoded"]
               for s in streams)  # fmt: skip
    return done, sum(s["frames_processed"] for s in streams)


def throughput(api: httpx.Client, base: str, clip: Path, viewers: int) -> tuple[float, int]:
    """Frames/s of 2 file streams with ``viewers`` MJPEG viewers (spread over the two), and
    the parts the viewers got."""
    ids = ["cam-1", "cam-2"]
    watching = [Viewer(f"{base}/api/v1/streams/{ids[i % 2]}/live.mjpeg") for i in range(viewers)]
    start = time.monotonic()
    for sid in ids:
        api.post("/api/v1/streams", json={"id": sid, "url": clip.as_uri()}).raise_for_status()
    for viewer in watching:
        viewer.start()
    while not (state := _processed(api))[0]:
        time.sleep(0.05)
    elapsed = time.monotonic() - start
    for sid in ids:  # removing the streams ends the viewers' responses
        api.delete(f"/api/v1/streams/{sid}")
    for viewer in watching:
        viewer.stop.set()
        viewer.join(30)
    return state[1] / elapsed, sum(len(v.parts) for v in watching)


def latency(api: httpx.Client, base: str, seconds: float) -> list[float]:
    """Capture → last byte of the MJPEG part (s) of a 720p live camera, one viewer."""
    api.post("/api/v1/streams", json={"id": "live-720p", "url": LIVE_720P}).raise_for_status()
    viewer = Viewer(f"{base}/api/v1/streams/live-720p/live.mjpeg?fps=10&height=720")
    viewer.start()
    viewer.connected.wait(30)
    time.sleep(seconds)
    api.delete("/api/v1/streams/live-720p")
    viewer.stop.set()
    viewer.join(30)
    return [arrived - captured for captured, arrived in viewer.parts[5:]]  # after warm-up


def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="vigil-live-bench-") as name:
        tmp = Path(name)
        clip = make_clip(args.video, args.frames, tmp / "clip.mp4")
        config = {"events": {"jsonl_path": None}, "sources": {"file_roots": [str(tmp)]}}
        with vigil_serve(config, tmp, http_timeout_s=30) as served:
            api, base = served.api, served.url
            throughput(api, base, clip, 0)  # warm-up: caches, first requests
            bare, watched, parts, ratios = [], [], [], []
            for run in range(args.runs):
                # interleaved, the order swapped every run: drift of the machine's other
                # load hits both cases alike
                if run % 2 == 0:
                    fps0, _ = throughput(api, base, clip, 0)
                    fps4, got = throughput(api, base, clip, 4)
                else:
                    fps4, got = throughput(api, base, clip, 4)
                    fps0, _ = throughput(api, base, clip, 0)
                bare.append(fps0)
                watched.append(fps4)
                parts.append(got)
                ratios.append(fps4 / fps0)
            p50s, p95s = [], []
            for _ in range(args.runs):
                ms = np.array(latency(api, base, args.seconds)) * 1000
                p50s.append(float(np.percentile(ms, 50)))
                p95s.append(float(np.percentile(ms, 95)))
    load = os.getloadavg()
    print(
        f"Live view benchmark — {measured_on()}, "
        f"load average after {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
        f"median of {args.runs} runs (min–max)"
    )
    print(f"2 streams × {args.frames} frames, 0 viewers : {spread(bare)} frames/s")
    print(f"2 streams × {args.frames} frames, 4 viewers : {spread(watched)} frames/s "
          f"(viewers got {spread([float(p) for p in parts], '.0f')} parts)")  # fmt: skip
    print(f"4 viewers / 0 viewers                 : {spread(ratios, '.3f')} (target ≥ 0.95)")
    print(f"capture → MJPEG part at 720p, p50     : {spread(p50s)} ms (target ≤ 150 ms)")
    print(f"capture → MJPEG part at 720p, p95     : {spread(p95s)} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", type=Path, required=True)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    main(parser.parse_args())
