"""How long opening an NVDEC session takes, and whether it holds the GIL while it does.

A ticker thread wakes every millisecond and records the longest gap between its wake-ups: a
gap as long as an open means the open kept the GIL, so every other Python thread (the
asyncio loop that batches and sends to Triton included) stood still meanwhile. Prints, for
the threaded decoder (the service's default) and the plain one:

- one open after another: each open's time, the longest tick gap;
- N opens at once, one thread each: when the last returned, the longest tick gap;
- the time from open to the first fetched frames;
- N new decoders at once against N decoders that had already decoded and are pointed at the
  file again (``reconfigure_decoder``, what vigil.sources.nvdec_pool does): when the last
  stream had its first frames. New sessions are created at the first picture, one after
  another; a reused decoder keeps its session.

Usage (on the GPU machine, after bench/gpu/device_run.sh has set up the packages)::

    python bench/gpu/nvdec_open.py CLIP --streams 16
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "service")]


class Ticker:
    """A thread that measures the longest time it could not run (GIL held elsewhere)."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Ticker:
        self._thread.start()
        time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        last = time.perf_counter()
        while not self._stop.is_set():
            time.sleep(0.001)
            now = time.perf_counter()
            self.longest = max(self.longest, now - last)
            last = now


def threaded(nvc: Any, clip: Path) -> Any:
    return nvc.ThreadedDecoder(
        str(clip), 16, gpu_id=0, use_device_memory=True,
        output_color_type=nvc.OutputColorType.NATIVE,
    )  # fmt: skip


def plain(nvc: Any, clip: Path) -> Any:
    demuxer = nvc.CreateDemuxer(filename=str(clip))
    decoder = nvc.CreateDecoder(
        gpuid=0, codec=demuxer.GetNvCodecId(), cudacontext=0, cudastream=0, usedevicememory=True
    )
    return demuxer, decoder


def one_after_another(open_one: Callable[[], Any], count: int) -> None:
    times, kept = [], []
    with Ticker() as ticker:
        for _ in range(count):
            began = time.perf_counter()
            kept.append(open_one())
            times.append(time.perf_counter() - began)
    print(
        f"  one after another ×{count}: opens {', '.join(f'{t:.3f}' for t in times)} s; "
        f"longest GIL gap {ticker.longest:.3f} s",
        flush=True,
    )
    close(kept)


def in_threads(work: Callable[[int], None], count: int) -> list[float]:
    """Run ``work(i)`` for ``count`` values of ``i`` at once, one thread each; the seconds
    from the start at which each returned, sorted."""
    done = [0.0] * count

    def worker(i: int) -> None:
        work(i)
        done[i] = time.perf_counter() - start

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(done)


def at_once(open_one: Callable[[], Any], count: int) -> None:
    kept: list[Any] = [None] * count
    with Ticker() as ticker:
        done = in_threads(lambda i: kept.__setitem__(i, open_one()), count)
    print(
        f"  {count} at once: first returned {done[0]:.3f} s, median {done[count // 2]:.3f} s, "
        f"last {done[-1]:.3f} s; longest GIL gap {ticker.longest:.3f} s",
        flush=True,
    )
    close(kept)


def first_frames(nvc: Any, clip: Path) -> None:
    with Ticker() as ticker:
        began = time.perf_counter()
        decoder = threaded(nvc, clip)
        opened = time.perf_counter() - began
        pictures = decoder.get_batch_frames(8)
        first = time.perf_counter() - began
    print(
        f"  threaded: open {opened:.3f} s, first {len(pictures)} frames at {first:.3f} s; "
        f"longest GIL gap {ticker.longest:.3f} s",
        flush=True,
    )
    del pictures
    close([decoder])


def first_frames_at_once(nvc: Any, clip: Path, count: int, reuse: list[Any] | None) -> list[Any]:
    """``count`` streams at once, each opening (or, given ``reuse``, reconfiguring) a
    threaded decoder and fetching its first 8 frames; returns the decoders."""
    decoders: list[Any] = [None] * count

    def work(i: int) -> None:
        if reuse is None:
            decoders[i] = threaded(nvc, clip)
        else:
            decoders[i] = reuse[i]
            decoders[i].reconfigure_decoder(str(clip))
        decoders[i].get_batch_frames(8)  # the first pictures, dropped at once

    done = in_threads(work, count)
    print(
        f"  {count} {'reused' if reuse else 'new'} decoders at once: first frames of the first "
        f"stream at {done[0]:.3f} s, median {done[count // 2]:.3f} s, last {done[-1]:.3f} s",
        flush=True,
    )
    return decoders


def close(kept: list[Any]) -> None:
    for item in kept:
        end = getattr(item, "end", None)
        if end is not None:
            end()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("clip", type=Path)
    parser.add_argument("--streams", type=int, default=16)
    args = parser.parse_args()
    import torch

    from vigil.sources.nvdec import load_pynvvideocodec

    torch.zeros(1, device="cuda")  # the context exists before the first open, as in Vigil
    nvc = load_pynvvideocodec()
    for name, open_one in (
        ("threaded", lambda: threaded(nvc, args.clip)),
        ("plain", lambda: plain(nvc, args.clip)),
    ):
        print(f"NVDEC {name} decoder:", flush=True)
        one_after_another(open_one, 4)
        at_once(open_one, args.streams)
    first_frames(nvc, args.clip)
    print("first frames, new sessions against reused decoders:", flush=True)
    decoders = first_frames_at_once(nvc, args.clip, args.streams, None)
    first_frames_at_once(nvc, args.clip, args.streams, decoders)
    close(decoders)
