"""GPU benchmark: Vigil's GPU path against the model's own limit, in one run, on one GPU.

A PeopleNet-class detector (ResNet34 + DetectNet_v2 heads, 960×544, fp16, random weights) on
N synthetic 1080p H.264 streams. Measured side by side:

(a) the model alone, in this process (torch, same batch, inputs already on the GPU): the limit;
(b) Triton + CUDA shared memory, model only: batches already in registered CUDA slots;
(c) the full Vigil pipeline: NVDEC decode → batch → GPU preprocess into CUDA shm → Triton →
    parse → events to a JSONL file (``vigil run``'s code path);
(d) a naive baseline: OpenCV decode on the CPU, per-frame tensors as bytes over HTTP (batch 1).

For each: frames/s, ratio to (a), mean GPU utilization (NVML), CPU cores used (CPU time of
Vigil + Triton / wall time). Then: device → host bytes per frame on the GPU path (Vigil's own
counter, plus a CUPTI trace of a short run that sees every copy in the process), and the
number of 1080p30 streams sustained in real time (paced at 30 fps, checked).

Usage (on a GPU host with Triton from ``scripts/install_triton.py``)::

    python bench/gpu/bench.py --clip clip_1080p.mp4 --streams 16 --out results/
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import json
import math
import os
import platform
import sys
import tempfile
import threading
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "service")]

import torch  # noqa: E402

from bench.gpu import peoplenet, peoplenet_net  # noqa: E402
from bench.gpu.baselines import (  # noqa: E402
    contention,
    cpu_frames,
    model_in_process,
    model_input,
    naive_baseline,
    nvdec_only,
    opening_text,
    triton_model_only,
)
from bench.gpu.live import cost_point, realtime_at, realtime_search  # noqa: E402
from bench.gpu.meter import Meter  # noqa: E402
from bench.gpu.report import (  # noqa: E402
    mode_label,
    parse_model_variants,
    print_table,
    slots_of,
    variant_label,
    workers_of,
)
from bench.gpu.runs import (  # noqa: E402
    cupti_copies,
    full_pipeline,
    full_pipeline_workers,
    pipeline_settings,
    profile_pipeline,
    sampled_by_pyspy,
    with_batch_timeout,
    with_slots,
)
from bench.gpu.stats import (  # noqa: E402
    Row,
    Spread,
    read_origin_counts,
    summary_ratios,
)
from vigil.accel import choose_acceleration  # noqa: E402
from vigil.config import Settings  # noqa: E402
from vigil.jobs import file_spec  # noqa: E402
from vigil.parsers import make_parser  # noqa: E402
from vigil.pipeline.pipeline import Pipeline  # noqa: E402
from vigil.triton_connection import connect  # noqa: E402

# --- main -----------------------------------------------------------------------------------


async def main(args: argparse.Namespace) -> dict[str, object]:
    # a native crash (one run of 2026-12-04 died of SIGSEGV) prints every thread's stack
    faulthandler.enable()
    base = Settings()
    acceleration = choose_acceleration(base.gpu)
    if not acceleration.on_gpu:
        raise SystemExit(f"no GPU path on this host: {acceleration.describe()}")
    device = torch.device("cuda", acceleration.device_id)
    meter = Meter(acceleration.device_id)
    print(f"# {acceleration.describe()}", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (before anything runs)
    runs: dict[str, list[Row]] = {}  # figure → its repeated runs, in order

    def add(key: str, row: Row) -> Row:
        runs.setdefault(key, []).append(row)
        return row

    report: dict[str, object] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "device": meter.device_name,
        "driver": meter.driver,
        "host": platform.node(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "args": vars(args),
        "path": acceleration.describe(),
        "tracker": "on" if base.tracking.enabled else "off",
    }
    repeats = args.repeats
    with tempfile.TemporaryDirectory(prefix="vigil-gpu-bench-") as tmp_text:
        tmp = Path(tmp_text)
        # The network, calibrated on the clip's frames, saved for Triton's instances.
        frames = cpu_frames(args.clip, args.batch)
        calib = torch.from_numpy(np.stack([model_input(f) for f in frames])).to(device)
        net = peoplenet_net.calibrate(peoplenet_net.build(0).to(device), calib.float())
        net = peoplenet_net.for_inference(net, device)
        weights = tmp / "weights.pt"
        torch.save(net.state_dict(), weights)
        batch = calib.half()

        model_in_process(net, batch, args.iterations)  # warm-up (cuDNN autotuning)
        for _ in range(repeats):
            row = Row("", 0, 0)
            with meter.measure(row):
                a = model_in_process(net, batch, args.iterations)
            a.gpu_util, a.cpu_cores = row.gpu_util, row.cpu_cores
            print(f"(a) {add('a', a).fps:,.0f} frames/s", flush=True)
        del net
        torch.cuda.empty_cache()
        for _ in range(repeats):
            for threaded in (True, False):
                decode = Row("", 0, 0)
                with meter.measure(decode):
                    measured = nvdec_only(args.clip, args.streams, args.decode_frames, threaded)
                measured.gpu_util, measured.cpu_cores = decode.gpu_util, decode.cpu_cores
                measured.nvdec_util = decode.nvdec_util
                add(f"decode-{'threaded' if threaded else 'plain'}", measured)
                print(
                    f"{measured.name}: {measured.fps:,.0f} frames/s in {measured.seconds:.2f} s; "
                    f"{opening_text(measured)}",
                    flush=True,
                )
        from vigil.sources.nvdec import NvdecFileSource

        # (c) runs in the NVDEC modes asked for, interleaved run by run so that drift of the
        # machine does not favour one; the headline rows are the service's default mode
        default_mode = "threaded" if NvdecFileSource.threaded_default else "plain"
        modes = ["threaded", "plain"] if args.nvdec_mode == "both" else [args.nvdec_mode]
        headline = default_mode if default_mode in modes else modes[0]
        # and (c) over worker processes (`vigil run --workers`), NVDEC in its default mode
        modes += [f"w{k}" for k in args.workers if k > 1]
        # and (c) in-process with other ring sizes (requests in flight)
        modes += [f"s{k}" for k in args.slots if k != args.inflight]
        # and (c) with the stage thread overlapping delivery (Pipeline.overlap_stages)
        modes += ["overlap"] if args.overlap else []
        report["nvdec_default"] = default_mode
        report["nvdec_modes"] = modes

        repository = tmp / "repository"
        (tmp / "run").mkdir()
        peoplenet.write_repository(
            repository, weights, max_batch=args.batch, instances=args.instances, group=args.group,
            queue_delay_us=args.queue_delay_us,
        )  # fmt: skip
        # the same network in other serving configurations: (b) for each, (c) on request
        variant_models = {
            label: peoplenet.write_repository(
                repository, weights, max_batch=args.batch, instances=instances, group=group,
                name=f"{peoplenet.MODEL_NAME}_{label}", queue_delay_us=args.queue_delay_us,
            ).name
            for label, (instances, group) in args.model_variants.items()
        }  # fmt: skip
        settings = pipeline_settings(
            base.model_copy(
                update={
                    "run_dir": tmp / "run",
                    "triton": base.triton.model_copy(update={"model_repository": repository}),
                    "model": base.model.model_copy(
                        update={"name": peoplenet.MODEL_NAME, "confidence_threshold": 0.5}
                    ),
                }
            ),
            args,
            tmp / "events.jsonl",
        )
        async with connect(settings, acceleration) as triton:
            started = time.perf_counter()
            model = await triton.client.load_model(peoplenet.MODEL_NAME)
            report["model_load_s"] = time.perf_counter() - started
            print(f"# model loaded in {report['model_load_s']:.1f} s", flush=True)

            served = {"b": model}
            for label, name in variant_models.items():
                served[f"b-{label}"] = await triton.client.load_model(name)
            for _ in range(repeats):  # interleaved run by run, like (c)'s configurations
                for key, target in served.items():
                    row = Row("", 0, 0)
                    with meter.measure(row):
                        b = await triton_model_only(
                            triton, target, batch, args.inflight, args.batches
                        )
                    b.gpu_util, b.cpu_cores = row.gpu_util, row.cpu_cores
                    if key != "b":
                        serving = args.model_variants[key[2:]]
                        b.name = f"(b) {variant_label(*serving, args.inflight)}"
                    print(f"{b.name}: {add(key, b).fps:,.0f} frames/s", flush=True)

            if args.contention:
                report["contention"] = await contention(triton, model, batch, args)
            specs = [file_spec(f"cam-{i}", str(args.clip)) for i in range(args.streams)]
            if args.cold_run:
                # The process's first (c) run creates the NVDEC sessions (~65 ms each, one
                # after another), as a service does once per camera when it starts; the runs
                # after it reuse them (vigil/sources/nvdec_pool.py). Like (a)'s warm-up, it is
                # not one of the measured runs, and it is printed on its own line.
                NvdecFileSource.threaded_default = headline != "plain"
                cold, cold_extra = await full_pipeline(settings, triton, specs)
                report["cold_run"] = {"fps": cold.fps, **cold_extra}
                print(
                    f"(c) first run of the process: {cold.fps:,.0f} frames/s (steady "
                    f"{cold_extra['steady_fps']:,.0f}) {cold_extra.get('startup', '')}",
                    flush=True,
                )
            for repeat in range(repeats):
                for mode in modes:
                    workers = workers_of(mode)
                    NvdecFileSource.threaded_default = mode != "plain"
                    Pipeline.overlap_stages = mode == "overlap"
                    spy = None
                    if args.pyspy and repeat == 0 and workers == 1:
                        spy = out / f"pyspy-c-{mode}.txt"
                    row = Row("", 0, 0)
                    with meter.measure(row), sampled_by_pyspy(spy):
                        if workers > 1:
                            c, extra = await full_pipeline_workers(settings, triton, specs, workers)
                        else:
                            c, extra = await full_pipeline(
                                with_slots(settings, slots_of(mode)), triton, specs
                            )
                    c.gpu_util, c.cpu_cores, c.nvdec_util = (
                        row.gpu_util, row.cpu_cores, row.nvdec_util,
                    )  # fmt: skip
                    c.name = f"(c) full pipeline, whole run, {mode_label(mode)}"
                    # the steady part (10 % → 90 % of the frames) beside it: what is left
                    # when the decoders' start and teardown are taken out
                    steady = Row(
                        f"(c) full pipeline, steady (10 % → 90 %), {mode_label(mode)}",
                        int(extra["steady_frames"]),
                        float(extra["steady_seconds"]),
                        c.gpu_util,
                        c.nvdec_util,
                        c.cpu_cores,
                        extra,
                    )
                    add(f"c-{mode}", c)
                    add(f"c-steady-{mode}", steady)
                    print(
                        f"(c) {mode}: {c.fps:,.0f} frames/s (steady {steady.fps:,.0f}) "
                        f"{extra['timeline']} {extra.get('startup', '')}; requests done and "
                        f"not emitted {extra.get('requests_done', float('nan')):.2f}, cores "
                        f"{extra.get('thread_cores', '')}; emit chain (ms per batch, wait/"
                        f"wall/cpu) {extra.get('emit_chain', '')}",
                        flush=True,
                    )
                    if args.pyspy and spy is not None:
                        print(f"# (c) {mode} with py-spy attached: {extra}", flush=True)
            NvdecFileSource.threaded_default = headline == "threaded"
            Pipeline.overlap_stages = False
            for variant in args.variants:
                saved = (
                    sys.getswitchinterval(),
                    NvdecFileSource.fetch_frames,
                    NvdecFileSource.buffer_frames,
                )
                varied = settings
                variant_workers = 1
                for part in variant.split("+"):
                    key, _, value = part.partition("=")
                    if key == "tracker":  # tracker=off: what tracking costs (c)
                        tracking = settings.tracking.model_copy(update={"enabled": value == "on"})
                        varied = varied.model_copy(update={"tracking": tracking})
                    elif key == "switch":
                        sys.setswitchinterval(float(value))
                    elif key == "fetch":
                        NvdecFileSource.fetch_frames = int(value)
                        NvdecFileSource.buffer_frames = 2 * int(value)
                    elif key == "model":  # model=i1g2: a --model-variants configuration
                        named = varied.model.model_copy(update={"name": variant_models[value]})
                        varied = varied.model_copy(update={"model": named})
                    elif key == "workers":
                        variant_workers = int(value)
                if variant_workers > 1:
                    c2, extra2 = await full_pipeline_workers(varied, triton, specs, variant_workers)
                else:
                    c2, extra2 = await full_pipeline(varied, triton, specs)
                c2.name = f"(c) variant {variant}, whole run"
                add(f"variant-{variant}", c2)
                sys.setswitchinterval(saved[0])
                NvdecFileSource.fetch_frames, NvdecFileSource.buffer_frames = saved[1:]
                print(
                    f"# (c) variant {variant}: {c2.fps:,.0f} frames/s, "
                    f"steady {extra2['steady_fps']:,.0f} {extra2['timeline']}",
                    flush=True,
                )
            parser = make_parser(model, 0.5)
            for _ in range(repeats):
                for threads in (1, args.streams):
                    with meter.measure(row):
                        d = naive_baseline(
                            triton.server.http_url if triton.server else "",
                            args.clip,
                            args.streams,
                            args.naive_seconds,
                            parser.parse,
                            threads,
                        )
                    d.gpu_util, d.cpu_cores, d.nvdec_util = row.gpu_util, row.cpu_cores, None
                    add("d-loop" if threads == 1 else "d-threads", d)
                    print(f"{d.name}: {d.fps:,.0f} frames/s", flush=True)

            if args.cupti:
                short = [
                    file_spec(f"prof-{i}", str(args.cupti_clip or args.clip)) for i in range(2)
                ]
                report["cupti"] = await cupti_copies(settings, triton, short, out / "trace.json")
                print(f"# CUPTI copies: {report['cupti']}", flush=True)

            uri = args.clip.absolute().as_uri()
            cost: dict[int, list[dict[str, float]]] = {}
            for _ in range(repeats):
                for streams in args.cost_streams:
                    point = await cost_point(
                        settings, triton, meter, uri, streams, args, args.rt_workers
                    )
                    cost.setdefault(streams, []).append(point)
                    print(f"# cost curve: {point}", flush=True)
            report["cost_curve"] = {str(k): v for k, v in cost.items()}

            # The search starts from (c)'s rate in the configuration it runs in, or from the
            # acceptance target (0.85 × (a) / 30) when that is higher: it checks the target.
            whole = runs.get(f"c-w{args.rt_workers}") or runs[f"c-{headline}"]
            streams_rt = max(1, math.floor(Spread.of([r.fps for r in whole]).median / 30.0))
            streams_rt = max(1, math.floor(streams_rt * args.rt_margin))
            target = math.ceil(0.85 * Spread.of([r.fps for r in runs["a"]]).median / 30.0)
            streams_rt = args.rt_start or max(streams_rt, target)
            live_settings = with_batch_timeout(settings, args.rt_batch_timeout_ms)
            if args.rt_at:
                report["realtime_at"] = await realtime_at(live_settings, triton, uri, args)
            if args.rt_seconds > 0:
                report["realtime"] = await realtime_search(
                    live_settings, triton, uri, streams_rt, args
                )
                streams_rt = int(report["realtime"]["sustained"])
            report["streams_1080p30"] = streams_rt
            if args.profile:
                report["profile"] = await profile_pipeline(settings, triton, specs)
        report["triton_log_tail"] = _peoplenet_lines(tmp / "run" / "triton.log")
        report["origin_counts"] = asdict(read_origin_counts(tmp))
    report["runs"] = {k: [asdict(r) | {"fps": r.fps} for r in v] for k, v in runs.items()}
    report["ratios"] = summary_ratios(runs, modes, headline)
    report["headline_mode"] = headline
    (out / "gpu_bench.json").write_text(json.dumps(report, indent=2, default=str))
    print_table(report, runs, modes, headline)
    return report


def _peoplenet_lines(log: Path) -> list[str]:
    try:
        # "origin: N requests, M with inputs in CPU memory" per model instance and origin
        return [line for line in log.read_text().splitlines() if "with inputs in CPU" in line]
    except OSError:
        return []


def decode_forever(clip: Path, streams: int) -> None:
    """Decode ``streams`` copies of the clip with Vigil's NVDEC source, over and over, until
    the process is terminated (the load of ``--contention``'s other-process row)."""
    from vigil.sources.nvdec import NvdecFileSource

    def loop(i: int) -> None:
        while True:
            source = NvdecFileSource(f"other{i}", clip)
            source.open()
            for _ in source.frames():
                pass
            source.close()

    for i in range(streams):
        threading.Thread(target=loop, args=(i,), daemon=True).start()
    threading.Event().wait()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--decode-forever"]:
        decode_forever(Path(sys.argv[2]), int(sys.argv[4]))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clip", type=Path, required=True, help="1080p H.264 clip")
    parser.add_argument("--streams", type=int, default=16)
    parser.add_argument("--batch", type=int, default=16)
    # 9 = 3 executes' worth of requests (one running, one queued, one being emitted and
    # refilled): 0.94 of (a) against 0.93 with 6 on one machine (docs/benchmarks.md, 2026-12-05)
    parser.add_argument("--inflight", type=int, default=9, help="requests in flight")
    parser.add_argument("--queue", type=int, default=32, help="frames buffered per stream")
    parser.add_argument(
        "--batch-timeout-ms", type=float, default=20.0,
        help="(c): how long a batch waits to fill (a worker process batches only its share)",
    )  # fmt: skip
    # one instance taking up to 3 queued requests per execute: (b)/(a) 0.97, against 0.87 with
    # 3 instances (three CUDA contexts time-sliced); docs/benchmarks.md, 2026-12-05
    parser.add_argument("--instances", type=int, default=1, help="Triton model instances")
    parser.add_argument(
        "--group", type=int, default=3,
        help="requests a model instance may run per execute (dynamic batching when > 1)",
    )  # fmt: skip
    parser.add_argument(
        "--queue-delay-us", type=int, default=0,
        help="dynamic batching's max_queue_delay_microseconds (with --group > 1): how long "
        "Triton may hold a request for others to join it",
    )  # fmt: skip
    parser.add_argument(
        "--model-variants", type=parse_model_variants, default={},
        help="(b) also with these serving configurations, instances x group, e.g. 1x2,2x2; "
        "(c) with one of them: --variants model=i1g2",
    )  # fmt: skip
    parser.add_argument("--iterations", type=int, default=100, help="(a) batches timed")
    parser.add_argument("--batches", type=int, default=300, help="(b) requests")
    parser.add_argument("--naive-seconds", type=float, default=10.0)
    parser.add_argument("--decode-frames", type=int, default=300, help="decode-only, per stream")
    parser.add_argument("--rt-seconds", type=float, default=8.0, help="0: skip the check")
    parser.add_argument("--rt-margin", type=float, default=0.9, help="share of (c) to try")
    parser.add_argument(
        "--rt-start", type=int, default=0,
        help="streams the real-time search starts at (0: from (c) and the acceptance target)",
    )  # fmt: skip
    parser.add_argument(
        "--rt-batch-timeout-ms", type=float, default=0.0,
        help="the batch timeout of the real-time checks (0: --batch-timeout-ms); paced "
        "cameras over worker processes fill a worker's batch in 1/fps or so",
    )  # fmt: skip
    parser.add_argument("--rt-tries", type=int, default=6, help="real-time checks at most")
    parser.add_argument(
        "--rt-settle-s", type=float, default=30.0,
        help="a real-time check's window waits this long at most for the start-up backlog to "
        "drain (at 66 streams it drains at only ~10 %% of the offered rate)",
    )  # fmt: skip
    parser.add_argument(
        "--rt-at", type=lambda text: [v for v in text.split(",") if v], default=[],
        help="one real-time check at each of these points before the search: a stream count "
        "with options joined by + (overlap, switch=S, seconds=S, workers=N, timeout=MS), "
        "comma-separated, e.g. 66,72,66+overlap,66+switch=0.02,72+workers=2+timeout=40; with "
        "--rt-seconds 0 they stay and the search is skipped",
    )  # fmt: skip
    parser.add_argument("--cupti", action="store_true", help="trace copies of a short run")
    parser.add_argument("--profile", action="store_true", help="cProfile a (c) run's loop")
    parser.add_argument("--pyspy", action="store_true", help="py-spy (GIL samples) during (c)")
    parser.add_argument(
        "--variants", type=lambda t: [v for v in t.split(",") if v], default=[],
        help="(c) again with e.g. switch=0.001, fetch=16 or tracker=off (+ joins; comma "
        "separates runs)",
    )  # fmt: skip
    parser.add_argument("--contention", action="store_true", help="(b) under (c)'s GPU loads")
    parser.add_argument(
        "--nvdec-mode", choices=["both", "threaded", "plain"], default="both",
        help="NVDEC mode(s) of (c); both: each, interleaved, the service's default as headline",
    )  # fmt: skip
    parser.add_argument(
        "--workers", type=lambda text: [int(v) for v in text.split(",") if v], default=[],
        help="also run (c) over these numbers of worker processes (vigil run --workers; "
        "comma-separated, e.g. 2,4)",
    )  # fmt: skip
    parser.add_argument(
        "--slots", type=lambda text: [int(v) for v in text.split(",") if v], default=[],
        help="also run (c) in-process with these ring sizes (requests in flight), interleaved "
        "run by run with the others (comma-separated, e.g. 9,12)",
    )  # fmt: skip
    parser.add_argument(
        "--overlap", action="store_true",
        help="also run (c) with the stage thread overlapping delivery (Pipeline.overlap_stages), "
        "interleaved run by run",
    )  # fmt: skip
    parser.add_argument(
        "--rt-workers", type=int, default=1,
        help="worker processes of the real-time search and the cost curve (1: in-process)",
    )  # fmt: skip
    parser.add_argument("--repeats", type=int, default=3, help="runs of every figure")
    parser.add_argument(
        "--cold-run", action=argparse.BooleanOptionalAction, default=True,
        help="one (c) run before the measured ones, which creates the NVDEC sessions "
        "(printed apart)",
    )  # fmt: skip
    parser.add_argument(
        "--cost-streams", type=lambda text: [int(v) for v in text.split(",") if v],
        default=[16, 32, 64], help="cost curve: stream counts (empty: skip)",
    )  # fmt: skip
    parser.add_argument("--cost-seconds", type=float, default=4.0, help="cost curve window")
    parser.add_argument("--cupti-clip", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path("out/gpu-bench"))
    asyncio.run(main(parser.parse_args()))
