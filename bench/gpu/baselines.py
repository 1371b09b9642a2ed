"""The GPU benchmark's reference measurements: (a) the model in-process, (b) Triton + CUDA
shared memory, (b) under (c)'s GPU loads, decode alone, and (d) the naive clients. Imported by
bench.py (which sets up ``sys.path``)."""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

from bench.gpu import peoplenet, peoplenet_net
from bench.gpu.stats import NAIVE_REQUEST_ID, Row
from vigil.infer.cuda_shm import CudaShmRing
from vigil.infer.model import ModelInfo
from vigil.shm_segments import new_prefix
from vigil.triton_connection import TritonConnection

#: The benchmark's entry point (the other-process decode load runs it with --decode-forever).
BENCH = Path(__file__).with_name("bench.py")


def cpu_frames(clip: Path, count: int) -> list[np.ndarray]:
    """The clip's first ``count`` frames as RGB arrays (OpenCV)."""
    cap = cv2.VideoCapture(str(clip))
    frames = []
    while len(frames) < count:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    return frames


def model_input(rgb: np.ndarray) -> np.ndarray:
    """One RGB frame → the model's input: float16 (3, 544, 960) in [0, 1] (stretched)."""
    small = cv2.resize(rgb, (peoplenet_net.INPUT_WIDTH, peoplenet_net.INPUT_HEIGHT))
    return (small.transpose(2, 0, 1) / 255.0).astype(np.float16)


# --- (a) the model in-process --------------------------------------------------------------


def model_in_process(net: torch.nn.Module, batch: torch.Tensor, iterations: int) -> Row:
    """Frames/s of the network called directly on a batch already on the GPU, timed by the
    wall clock like (b) and (c): from an idle, synchronized GPU to the last batch done."""
    x = batch.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        for _ in range(10):
            net(x)
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(iterations):
            net(x)
        torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
    return Row("(a) model alone, in-process (torch)", iterations * len(batch), elapsed)


# --- decode alone (context for (c)) --------------------------------------------------------


def nvdec_only(clip: Path, streams: int, frames: int, threaded: bool) -> Row:
    """Frames/s of NVDEC alone: one Vigil NVDEC source per stream, each in its own thread, up
    to ``frames`` frames each (what (c)'s decoders can give at most)."""
    from vigil.sources.nvdec import NvdecFileSource

    counts = [0] * streams
    opened = [0.0] * streams  # seconds from the start until the stream's open() returned
    first = [0.0] * streams  # ... until its first frame
    open_s = [0.0] * streams  # how long its open() took

    def worker(i: int) -> None:
        source = NvdecFileSource(f"d{i}", clip, threaded=threaded)
        began = time.perf_counter()
        source.open()
        opened[i] = time.perf_counter() - start
        open_s[i] = time.perf_counter() - began
        try:
            for _ in source.frames():
                counts[i] += 1
                if counts[i] == 1:
                    first[i] = time.perf_counter() - start
                if counts[i] >= frames:
                    break
        finally:
            source.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(streams)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    # Whether sessions open one after another (the last opens streams × one open's time
    # after the start) or side by side (all at about one open's time).
    extra: dict[str, float | str] = {
        "open_s_median": float(sorted(open_s)[streams // 2]),
        "last_opened_s": max(opened),
        "last_first_frame_s": max(first),
    }
    return Row(
        f"decode only: NVDEC {'threaded' if threaded else 'plain'}, {streams} streams",
        sum(counts),
        elapsed,
        extra=extra,
    )


def opening_text(row: Row) -> str:
    """How an :func:`nvdec_only` run's sessions opened, for its printed line."""
    return (
        f"one open {row.extra['open_s_median']:.3f} s (median), last stream opened at "
        f"{row.extra['last_opened_s']:.2f} s, first frame of every stream by "
        f"{row.extra['last_first_frame_s']:.2f} s"
    )


# --- (b) Triton + CUDA shared memory, model only --------------------------------------------


async def triton_model_only(
    triton: TritonConnection, model: ModelInfo, batch: torch.Tensor, inflight: int, batches: int
) -> Row:
    """Frames/s through Triton with the batch already in registered CUDA slots."""
    size = len(batch)
    ring = CudaShmRing(new_prefix("bench"), inflight, size, model.inputs, model.outputs)
    try:
        for slot in ring.slots:
            await triton.client.register_slot(slot)
            slot.inputs[model.inputs[0].name][:size].copy_(batch)
        torch.cuda.synchronize()
        for _ in range(2):
            await triton.client.infer(model, ring.slots[0], size)

        async def one() -> None:
            slot = await ring.acquire()
            try:
                await triton.client.infer(model, slot, size)
            finally:
                ring.release(slot)

        start = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(batches)))
        elapsed = time.perf_counter() - start
    finally:
        for slot in ring.slots:
            await triton.client.unregister_slot(slot)
        ring.close()
    return Row(f"(b) Triton + CUDA shm, model only ({inflight} in flight)", batches * size, elapsed)


async def contention(
    triton: TritonConnection,
    model: ModelInfo,
    batch: torch.Tensor,
    args: argparse.Namespace,
) -> dict[str, float]:
    """(b) again while this process keeps the GPU busy the way (c) does, without the rest of
    the pipeline: NVDEC decoding of the streams, and/or GPU preprocessing of 1080p NV12
    batches paced at (b)'s rate. Shows what sharing the GPU with Triton's processes costs."""
    from vigil.frame import Frame, PixelFormat
    from vigil.infer.tensors import InputFormat
    from vigil.preprocess.gpu import GpuPreprocessor
    from vigil.sources.nvdec import NvdecFileSource

    stop = threading.Event()

    def decode(i: int) -> None:
        while not stop.is_set():
            source = NvdecFileSource(f"bg{i}", args.clip)
            source.open()
            try:
                for _ in source.frames():
                    if stop.is_set():
                        break
            finally:
                source.close()

    def preprocess() -> None:
        pre = GpuPreprocessor(InputFormat.from_tensor(model.inputs[0]))
        image = torch.randint(0, 255, (1620, 1920), dtype=torch.uint8, device="cuda")
        frames = [Frame.captured_now("bg", n, None, image, PixelFormat.NV12) for n in range(32)]
        out = torch.empty((32, *model.inputs[0].shape), dtype=torch.float16, device="cuda")
        period = 32 / 2000
        due = time.perf_counter()
        while not stop.is_set():
            pre(frames, out)
            due += period
            time.sleep(max(0.0, due - time.perf_counter()))

    def fetch_only(i: int) -> None:  # the decoder's own work, no copy of ours
        from vigil.sources.nvdec import load_pynvvideocodec

        nvc = load_pynvvideocodec()
        while not stop.is_set():
            decoder = nvc.ThreadedDecoder(
                str(args.clip), 16, gpu_id=0, use_device_memory=True,
                output_color_type=nvc.OutputColorType.NATIVE,
            )  # fmt: skip
            while not stop.is_set() and decoder.get_batch_frames(8):
                pass
            decoder.end()

    def elsewhere(i: int) -> None:  # Vigil's decoding in another process: the GPU share only
        if i:
            return
        child = subprocess.Popen(
            [
                sys.executable,
                str(BENCH),
                "--decode-forever",
                str(args.clip),
                "--streams",
                str(args.streams),
            ],
        )
        stop.wait()
        child.terminate()
        child.wait()

    results = {}
    for name, loads in (
        ("decode", [decode] * args.streams),
        ("decoder fetches only", [fetch_only] * args.streams),
        ("decode in another process", [elsewhere] * args.streams),
        ("preprocess", [preprocess]),
        ("decode+preprocess", [decode] * args.streams + [preprocess]),
    ):
        stop.clear()
        threads = [
            threading.Thread(target=f, args=(i,) if f is not preprocess else ())
            for i, f in enumerate(loads)
        ]
        for t in threads:
            t.start()
        await asyncio.sleep(1.0)
        row = await triton_model_only(triton, model, batch, args.inflight, args.batches)
        stop.set()
        for t in threads:
            t.join()
        results[name] = row.fps
        print(f"# (b) while {name}: {row.fps:,.0f} frames/s", flush=True)
    return results


# --- (d) naive baseline ---------------------------------------------------------------------


def naive_baseline(
    http_url: str,
    clip: Path,
    streams: int,
    seconds: float,
    parse: Callable[..., object],
    threads: int,
) -> Row:
    """The naive way: OpenCV decode, CPU resize, one HTTP request per frame with the tensor as
    bytes (Triton's binary tensor extension), parse the answer. ``threads`` = 1: one loop
    reading the streams in turn (what a first script does); ``threads`` = streams: one
    thread per stream."""
    host = http_url.removeprefix("http://")
    stop = time.perf_counter() + seconds
    counts = [0] * streams
    errors: list[str] = []
    header = {
        "id": f"{NAIVE_REQUEST_ID}{threads}",  # the model counts requests by origin
        "inputs": [
            {
                "name": peoplenet.INPUT_NAME,
                "shape": [1, 3, 544, 960],
                "datatype": "FP16",
                "parameters": {"binary_data_size": 3 * 544 * 960 * 2},
            }
        ],
        "outputs": [
            {"name": peoplenet.COVERAGE, "parameters": {"binary_data": True}},
            {"name": peoplenet.BBOX, "parameters": {"binary_data": True}},
        ],
    }
    head = json.dumps(header).encode()

    def worker(i: int) -> None:
        conn = http.client.HTTPConnection(host, timeout=60)
        mine = range(i, streams, threads)
        caps = {k: cv2.VideoCapture(str(clip)) for k in mine}
        turn = 0
        try:
            while time.perf_counter() < stop:
                k = mine[turn % len(mine)]
                turn += 1
                ok, bgr = caps[k].read()
                if not ok:
                    caps[k].release()
                    caps[k] = cv2.VideoCapture(str(clip))
                    continue
                tensor = model_input(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
                conn.request(
                    "POST",
                    f"/v2/models/{peoplenet.MODEL_NAME}/infer",
                    body=head + tensor.tobytes(),
                    headers={
                        "Content-Type": "application/octet-stream",
                        "Inference-Header-Content-Length": str(len(head)),
                    },
                )
                response = conn.getresponse()
                body = response.read()
                if response.status != 200:
                    raise RuntimeError(f"HTTP {response.status}: {body[:200]!r}")
                skip = int(response.getheader("Inference-Header-Content-Length"))
                data = np.frombuffer(body, np.float32, offset=skip)
                cov_size = 3 * 34 * 60
                parse(
                    {
                        peoplenet.COVERAGE: data[:cov_size].reshape(1, 3, 34, 60),
                        peoplenet.BBOX: data[cov_size:].reshape(1, 12, 34, 60),
                    },
                    [(bgr.shape[1], bgr.shape[0])],
                )
                counts[i] += 1
        except Exception as e:
            errors.append(repr(e))
        finally:
            for cap in caps.values():
                cap.release()
            conn.close()

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    start = time.perf_counter()
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    if errors:
        raise RuntimeError(f"naive baseline failed: {errors[:3]}")
    how = "one loop" if threads == 1 else f"{threads} threads"
    return Row(
        f"(d) naive: OpenCV decode + per-frame bytes over HTTP, {how}",
        sum(counts),
        time.perf_counter() - start,
    )
