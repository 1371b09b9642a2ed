"""Pipeline benchmark: how close does Vigil's full pipeline run to the model-only limit?

Measured in one run, on the same clip and batch size. Every row goes through the same
frames: the clip's, in order (``--batches N`` limits the model-only rows to the first N
batches, for a quick run; the table says so):

1. decode only — PyAV decoding of the clip to RGB frames;
2. model only, onnxruntime in-process — the SSD on the clip's preprocessed batches, no Triton;
3. model only, through Triton — the same batches, each sent once, copied into a free
   shared-memory slot before its request (a memory copy, as the pipeline's preprocess writes
   into the slot), with the same number of requests in flight as the pipeline uses (no
   decode, no preprocess, no parse);
4. full pipeline — ``vigil run``'s code path: decode → batch → preprocess → Triton → parse →
   events to a JSONL file;
5. ratio pipeline / model-only-through-Triton (target ≥ 0.85 on the 2-core CI machine).

Rows 3 and 4 run ``--repeats`` times (default 3), interleaved run by run; the table gives
each as the median (min–max), and the ratio is the median of the runs' own ratios.

Usage: ``python bench/pipeline_bench.py --video vtest.avi [--batch-size 4] [--streams 2]``
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import results_table, spread
from vigil.config import Settings
from vigil.infer.model import ModelInfo
from vigil.infer.shm import SystemShmRing
from vigil.infer.tensors import InputFormat
from vigil.jobs import file_spec, run_streams
from vigil.preprocess.cpu import CpuPreprocessor
from vigil.shm_segments import new_prefix
from vigil.sources.file import FileSource
from vigil.triton_connection import TritonConnection, connect


def decode_only(video: Path) -> tuple[int, float]:
    """Frames decoded per second (to RGB arrays)."""
    source = FileSource("bench", video)
    source.open()
    start = time.perf_counter()
    frames = sum(1 for _ in source.frames())
    source.close()
    return frames, frames / (time.perf_counter() - start)


def preprocessed_batches(
    video: Path, model: ModelInfo, batch: int, count: int | None
) -> list[np.ndarray]:
    """The clip's frames, preprocessed, in full batches: the first ``count`` batches, or
    all of them (``count`` None; a last partial batch is left out)."""
    pre = CpuPreprocessor(InputFormat.from_tensor(model.inputs[0]))
    source = FileSource("bench", video)
    source.open()
    frames = source.frames()
    batches = []
    while count is None or len(batches) < count:
        chunk = list(itertools.islice(frames, batch))
        if len(chunk) < batch:
            break
        out = np.empty((batch, *model.inputs[0].shape), model.inputs[0].dtype)
        pre(chunk, out)
        batches.append(out)
    source.close()
    return batches


def onnxruntime_only(onnx_path: Path, batches: list[np.ndarray], input_name: str) -> float:
    """Frames per second of the ONNX model called in-process."""
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    session.run(None, {input_name: batches[0]})  # warm-up
    start = time.perf_counter()
    for b in batches:
        session.run(None, {input_name: b})
    return sum(len(b) for b in batches) / (time.perf_counter() - start)


async def triton_only(
    triton: TritonConnection, model: ModelInfo, batches: list[np.ndarray], inflight: int
) -> float:
    """Frames per second through Triton: each of ``batches`` once, in order, copied into
    a free shared-memory slot before its request."""
    batch = len(batches[0])
    name = model.inputs[0].name
    ring = SystemShmRing(new_prefix("bench"), inflight, batch, model.inputs, model.outputs)
    try:
        for slot in ring.slots:
            await triton.client.register_slot(slot)
        ring.slots[0].inputs[name][:] = batches[0]
        await triton.client.infer(model, ring.slots[0], batch)  # warm-up

        async def one(tensor: np.ndarray) -> None:
            slot = await ring.acquire()
            try:
                slot.inputs[name][:] = tensor
                await triton.client.infer(model, slot, batch)
            finally:
                ring.release(slot)

        start = time.perf_counter()
        await asyncio.gather(*(one(b) for b in batches))
        elapsed = time.perf_counter() - start
        for slot in ring.slots:
            await triton.client.unregister_slot(slot)
    finally:
        ring.close()
    return len(batches) * batch / elapsed


def triton_profile(before: dict, after: dict) -> str:
    """Where Triton spent the pipeline's requests, from its statistics endpoint."""

    def totals(stats: dict) -> dict[str, float]:
        s = stats["model_stats"][0]
        out = {k: float(v.get("ns", 0)) for k, v in s["inference_stats"].items()}
        out["executions"] = float(s.get("execution_count", 0))
        out["inferences"] = float(s.get("inference_count", 0))
        out["requests"] = float(s["inference_stats"]["success"].get("count", 0))
        return out

    b, a = totals(before), totals(after)
    d = {k: a[k] - b.get(k, 0.0) for k in a}
    ms = {k: d[k] / max(d["requests"], 1) / 1e6 for k in d}
    return (
        f"{d['requests']:.0f} requests, {d['executions']:.0f} executions "
        f"(avg {d['inferences'] / max(d['executions'], 1):.1f} frames each); per request: "
        f"queue {ms['queue']:.1f} ms, compute {ms['compute_infer']:.1f} ms, "
        f"input {ms['compute_input']:.2f} ms, "
        f"output {ms['compute_output']:.2f} ms"
    )


async def main(args: argparse.Namespace) -> None:
    console = Console()
    base = Settings()
    pipeline_settings = base.pipeline.model_copy(update={"max_batch_size": args.batch_size})
    with tempfile.TemporaryDirectory(prefix="vigil-bench-") as tmp:
        settings = base.model_copy(
            update={
                "pipeline": pipeline_settings,
                "events": base.events.model_copy(update={"jsonl_path": Path(tmp) / "e.jsonl"}),
            }
        )
        frames, decode_fps = decode_only(args.video)
        async with connect(settings) as triton:
            model = await triton.client.load_model(settings.model.name)
            batches = preprocessed_batches(args.video, model, args.batch_size, args.batches)
            onnx_path = settings.triton.model_repository / model.name / "1" / "model.onnx"
            ort_fps = onnxruntime_only(onnx_path, batches, model.inputs[0].name)
            specs = [file_spec(f"cam-{i}", str(args.video)) for i in range(1, args.streams + 1)]
            triton_runs, pipeline_runs, ratios, p50, p99 = [], [], [], [], []
            for _ in range(args.repeats):  # interleaved, so a slow spell hits both rows
                triton_runs.append(
                    await triton_only(triton, model, batches, settings.pipeline.inflight_requests)
                )
                before = await triton.client.statistics(model.name)
                result = await run_streams(settings, specs, connection=triton)
                server_side = triton_profile(before, await triton.client.statistics(model.name))
                processed = sum(s.stats.frames_processed for s in result.streams.values())
                pipeline_runs.append(processed / result.elapsed_s)
                ratios.append(pipeline_runs[-1] / triton_runs[-1])
                p50 += [s.stats.latency_percentile_ms(50) for s in result.streams.values()]
                p99 += [s.stats.latency_percentile_ms(99) for s in result.streams.values()]

    table = results_table("pipeline", f"batch {args.batch_size}", "frames/s")
    table.add_column("vs model-only (Triton)", justify="right")
    model_frames = len(batches) * args.batch_size
    which = "the clip's" if args.batches is None else f"the clip's first {model_frames}"
    triton_fps = statistics.median(triton_runs)
    rows = [
        (f"decode only ({frames} frames, PyAV → RGB)", [decode_fps]),
        (f"model only, onnxruntime in-process ({which} frames)", [ort_fps]),
        (
            f"model only, Triton + system shm ({settings.pipeline.inflight_requests} in flight, "
            f"{which} frames)",
            triton_runs,
        ),
        (f"full pipeline ({args.streams} streams × {frames} frames → events)", pipeline_runs),
    ]
    for name, runs in rows:
        table.add_row(name, spread(runs, ",.1f"), f"{statistics.median(runs) / triton_fps:.2f}")
    console.print(table)
    console.print(f"Triton during the last pipeline run: {server_side}")
    console.print(
        f"pipeline / model-only (Triton), run by run: {', '.join(f'{r:.2f}' for r in ratios)}"
        f" → median [bold]{spread(ratios, '.2f')}[/bold] (target ≥ 0.85); frame latency "
        f"p50 {max(p50):.0f} ms, p99 {max(p99):.0f} ms"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", type=Path, required=True)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument(
        "--batches",
        type=int,
        default=None,
        help="model-only rows on the clip's first N batches (default: the whole clip)",
    )
    parser.add_argument("--streams", type=int, default=2)
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="runs of the Triton model-only row and the pipeline, interleaved (median, min–max)",
    )
    asyncio.run(main(parser.parse_args()))
