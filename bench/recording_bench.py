"""Smart recording's costs: pre-event cache memory per 1080p camera, the packet tap per packet,
writing a clip.

A synthetic 1080p30 H.264 stream at 4 Mbit/s (a moving, noisy picture, so the encoder spends
its bit budget; 2 s GOP) is encoded once with PyAV. Each run then:

- feeds its packets, arriving in real time, through the packet tap (demux +
  ``packet_from_av``'s copy, as the sources do) into a ``PreEventCache`` of 10 s, and reports
  the bytes held (``cache.bytes``) and the Python heap the cache holds (``tracemalloc``:
  packet bytes plus object overhead), against the stream's 10 s × 4 Mbit/s = 5.0 MB;
- times the tap per packet (the demux alone subtracted);
- writes a 10 s clip from the cache with ``ClipWriter`` (fragmented MP4) and times it.

Median of 3 runs with the spread (min–max), from one command.

Usage: ``python bench/recording_bench.py [--seconds 14] [--runs 3]``
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "service"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import measured_on
from vigil.record.cache import PreEventCache
from vigil.record.clip import ClipWriter
from vigil.sources.packets import CodecParams, EncodedPacket, packet_from_av

WIDTH, HEIGHT, FPS, BITRATE = 1920, 1080, 30, 4_000_000
CACHE_S = 10.0


def make_stream(path: Path, seconds: float) -> None:
    """1080p30 H.264 at 4 Mbit/s, 2 s GOP: a gradient that moves, plus noise."""
    rng = np.random.default_rng(0)
    base = np.tile(np.linspace(0, 255, WIDTH, dtype=np.float32), (HEIGHT, 1))
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.bit_rate = BITRATE
        stream.options = {"preset": "ultrafast", "g": str(2 * FPS), "keyint_min": str(2 * FPS),
                          "sc_threshold": "0", "nal-hrd": "cbr", "maxrate": "4M",
                          "bufsize": "4M"}  # fmt: skip
        noise = rng.integers(0, 24, (HEIGHT // 4, WIDTH // 4), dtype=np.uint8)
        for i in range(int(seconds * FPS)):
            luma = (np.roll(base, i * 8, axis=1)).astype(np.uint8)
            luma[: HEIGHT // 4, : WIDTH // 4] += np.roll(noise, i, axis=0)
            image = np.repeat(luma[:, :, None], 3, axis=2)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(stream.encode())


def tapped(path: Path) -> tuple[list[EncodedPacket], float, float]:
    """The packets as the sources' tap makes them (demux, then ``packet_from_av``: a copy of
    the bytes); seconds with the tap and for the demux alone."""
    with av.open(str(path)) as f:
        started = time.perf_counter()
        for _ in f.demux(f.streams.video[0]):
            pass
        demux_s = time.perf_counter() - started
    got: list[EncodedPacket] = []
    with av.open(str(path)) as f:
        stream = f.streams.video[0]
        params = CodecParams.of_stream(stream)
        started = time.perf_counter()
        for packet in f.demux(stream):
            if packet.size:
                got.append(packet_from_av(packet, params, time.time()))
        tap_s = time.perf_counter() - started
    return got, tap_s, demux_s


def run_once(path: Path, out_dir: Path) -> dict[str, float]:
    packets, tap_s, demux_s = tapped(path)
    t0 = 1_700_000_000.0
    packets = [
        dataclasses.replace(p, arrival_s=t0 + float(p.pts * p.params.time_base)) for p in packets
    ]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    cache = PreEventCache(CACHE_S, 64 * 1024**2)
    for p in packets:
        cache.push(p)
    # the packets themselves were made before tracing: count what the cache holds
    held = cache.since(0)
    heap = tracemalloc.get_traced_memory()[0] - before + sum(len(p.data) for p in held)
    tracemalloc.stop()
    started = time.perf_counter()
    writer = ClipWriter(out_dir / "clip.mp4", "mp4")
    for p in held:
        writer.write(p)
    writer.close()
    write_s = time.perf_counter() - started
    return {
        "cache_mb": cache.bytes / 1e6,
        "cache_s": cache.seconds,
        "heap_mb": heap / 1e6,
        "tap_us": max(0.0, tap_s - demux_s) / len(packets) * 1e6,
        "packets": len(packets),
        "bitrate_mbps": sum(p.size for p in packets) * 8 / (len(packets) / FPS) / 1e6,
        "write_ms": write_s * 1e3,
        "clip_s": writer.duration_s,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=14.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "camera.mp4"
        make_stream(clip, args.seconds)
        runs = [run_once(clip, Path(tmp)) for _ in range(args.runs)]
    print(f"smart recording — {measured_on()}, Python {platform.python_version()}")
    print(f"1080p{FPS} H.264, {runs[0]['bitrate_mbps']:.2f} Mbit/s measured, 2 s GOP, "
          f"{runs[0]['packets']} packets; median of {len(runs)} runs (min–max)")  # fmt: skip
    rows = [
        ("pre-event cache, bytes held (MB)", "cache_mb", "{:.2f}"),
        ("pre-event cache, seconds held", "cache_s", "{:.2f}"),
        ("pre-event cache, Python heap incl. objects (MB)", "heap_mb", "{:.2f}"),
        ("packet tap per packet (µs, demux subtracted)", "tap_us", "{:.1f}"),
        ("write the cached clip, fMP4 (ms)", "write_ms", "{:.1f}"),
        ("clip length (s)", "clip_s", "{:.2f}"),
    ]
    ideal = CACHE_S * BITRATE / 8 / 1e6
    for label, key, fmt in rows:
        values = [r[key] for r in runs]
        median = statistics.median(values)
        spread = f"{fmt.format(min(values))}–{fmt.format(max(values))}"
        print(f"  {label:<50} {fmt.format(median):>9}   ({spread})")
    print(f"  (10 s at 4 Mbit/s is {ideal:.2f} MB; the cache keeps whole 2 s groups, so it "
          f"holds 10–12 s)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
