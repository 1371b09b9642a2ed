"""Hunts the native crash seen at the start of the bench's first (c) run, without Triton.

Each child process does what (c) does on the GPU without the model server: N threaded NVDEC
sources (the service's default) in threads of their own, each putting frames into a bounded
queue, and one consumer that takes batches from every queue and runs Vigil's GPU
preprocessor into a model-sized tensor, as the pipeline does. Children run one after another,
so every run is a process's first, as in the crashes. Each child's exit status is printed; run
it with bench/gpu/crash_trace.c preloaded (``device_run.sh hunt``) to get the crashing thread's
native frames.

``--cycles K`` makes each child run K rounds instead: the crash of 2026-12-06 (a heap
corruption) came in a long-lived process, when a real-time check opened 66 decoders right
after the cost curve had stopped 64 mid-stream, ending decoders whose native threads were
still decoding ahead. Rounds that open many decoders and stop them mid-stream repeat that.

Usage (on the GPU machine, after bench/gpu/device_run.sh has set up the packages)::

    python bench/gpu/crash_hunt.py CLIP --children 8 --streams 16 --frames 600
    python bench/gpu/crash_hunt.py CLIP --children 2 --streams 64 --frames 60 --cycles 20
"""

from __future__ import annotations

import argparse
import faulthandler
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "service")]


def child(clip: Path, streams: int, frames: int, batch: int, queue_size: int, cycles: int) -> None:
    """``cycles`` rounds in one process, as the bench's cost curve and real-time checks run:
    every round opens ``streams`` decoders (new, or idle ones of the service's pool), decodes
    ``frames`` of each and stops them there, ending decoders whose native thread is still
    decoding ahead."""
    for cycle in range(cycles):
        one_round(clip, streams, frames, batch, queue_size)
        if cycles > 1:
            print(f"  child: round {cycle + 1} of {cycles} done", flush=True)


def one_round(clip: Path, streams: int, frames: int, batch: int, queue_size: int) -> None:
    import numpy as np
    import torch

    from vigil.infer.tensors import InputFormat, Layout
    from vigil.preprocess.gpu import GpuPreprocessor
    from vigil.sources.nvdec import NvdecFileSource
    from vigil.sources.nvdec_pool import DECODERS

    faulthandler.enable()
    fmt = InputFormat(960, 544, Layout.CHW, np.dtype(np.float16), 1 / 255)
    preprocess = GpuPreprocessor(fmt)
    out = torch.empty((batch, 3, 544, 960), dtype=torch.float16, device="cuda")
    queues: list[queue.Queue] = [queue.Queue(maxsize=queue_size) for _ in range(streams)]
    done = [False] * streams

    def decode(i: int) -> None:
        source = NvdecFileSource(f"s{i}", clip, pool=DECODERS)
        source.open()
        try:
            for count, frame in enumerate(source.frames(), 1):
                queues[i].put(frame)
                if count >= frames:
                    break
        finally:
            source.close()
            done[i] = True

    threads = [threading.Thread(target=decode, args=(i,), daemon=True) for i in range(streams)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    processed = 0
    while not all(done) or any(not q.empty() for q in queues):
        taken = []
        for q in queues:
            while len(taken) < batch:
                try:
                    taken.append(q.get_nowait())
                except queue.Empty:
                    break
        if not taken:
            time.sleep(0.002)
            continue
        preprocess(taken, out)
        processed += len(taken)
    print(f"  child: {processed} frames in {time.perf_counter() - start:.2f} s", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("clip", type=Path)
    parser.add_argument("--children", type=int, default=8)
    parser.add_argument("--streams", type=int, default=16)
    parser.add_argument("--frames", type=int, default=600, help="per stream")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--queue", type=int, default=32, help="frames buffered per stream")
    parser.add_argument(
        "--cycles", type=int, default=1,
        help="rounds per child: open, decode --frames, stop mid-stream (the bench's churn)",
    )  # fmt: skip
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.clip, args.streams, args.frames, args.batch, args.queue, args.cycles)
        sys.exit(0)
    crashes = 0
    for n in range(args.children):
        command = [sys.executable, __file__, str(args.clip), "--child"]
        command += ["--streams", str(args.streams), "--frames", str(args.frames)]
        command += ["--batch", str(args.batch), "--queue", str(args.queue)]
        command += ["--cycles", str(args.cycles)]
        began = time.perf_counter()
        try:
            rc: int | str = subprocess.call(command, timeout=120)
        except subprocess.TimeoutExpired:
            rc = "timeout (120 s)"
        crashes += rc != 0
        print(f"child {n}: exit {rc} after {time.perf_counter() - began:.1f} s", flush=True)
    print(f"crash hunt: {crashes} of {args.children} children failed", flush=True)
