"""The GPU benchmark's printed table: every figure as the median of its runs with (min–max).
No torch here, so the table is checked on any host (tests/unit/test_gpu_bench_stats.py)."""

from __future__ import annotations

from typing import Any

from bench.gpu.stats import Row, Spread, ratios, spread


def workers_of(mode: str) -> int:
    """Worker processes of a (c) configuration: ``w4`` → 4; an NVDEC mode runs in-process."""
    return int(mode[1:]) if mode.startswith("w") else 1


def slots_of(mode: str) -> int | None:
    """Ring slots (requests in flight) of a (c) configuration: ``s9`` → 9; None: --inflight."""
    return int(mode[1:]) if mode.startswith("s") else None


def mode_label(mode: str) -> str:
    """How a (c) configuration is named in the table: ``NVDEC threaded``, ``4 workers``,
    ``NVDEC threaded, 9 in flight``."""
    workers = workers_of(mode)
    if workers > 1:
        return f"{workers} worker processes"
    if mode == "overlap":
        return "NVDEC threaded, stages overlapped"
    slots = slots_of(mode)
    return f"NVDEC threaded, {slots} in flight" if slots else f"NVDEC {mode}"


def parse_model_variants(text: str) -> dict[str, tuple[int, int]]:
    """``--model-variants``: ``"1x2,2x2"`` → ``{"i1g2": (1, 2), "i2g2": (2, 2)}`` (model
    instances × requests an instance may run per execute)."""
    variants: dict[str, tuple[int, int]] = {}
    for part in text.split(","):
        if part:
            instances_text, _, group_text = part.partition("x")
            instances, group = int(instances_text), int(group_text or 1)
            variants[f"i{instances}g{group}"] = (instances, group)
    return variants


def variant_label(instances: int, group: int, inflight: int) -> str:
    """How a serving configuration is named in the table: ``(1, 2)`` → ``Triton + CUDA shm,
    1 instance × 2 requests per execute (6 in flight)``."""
    plural = "" if instances == 1 else "s"
    return (
        f"Triton + CUDA shm, {instances} instance{plural} × {group} requests per execute "
        f"({inflight} in flight)"
    )


def print_table(
    report: dict[str, Any], runs: dict[str, list[Row]], modes: list[str], headline: str
) -> None:
    """Every figure as the median of the runs with (min–max)."""
    a_runs = runs["a"]
    print()
    print(
        f"Vigil GPU benchmark — {report['date']} — {report['device']} (driver {report['driver']})"
    )
    print(f"{report['path']}; {report['cpu_count']} CPU cores; tracker {report['tracker']}")
    print(f"args {report['args']}")
    print(f"each figure: median (min–max) of {report['args']['repeats']} runs, wall-clock rates")
    header = (
        f"{'measurement':<58} {'frames/s':>22} {'vs (a)':>17} {'GPU %':>12} {'NVDEC %':>12} "
        f"{'CPU cores':>16}"
    )
    print(header)
    print("-" * len(header))
    keys = ["a", "b"]
    for mode in sorted(modes, key=lambda m: m != headline):
        keys += [f"c-{mode}", f"c-steady-{mode}"]
    keys += ["d-loop", "d-threads"]
    keys[2:2] = [k for k in runs if k.startswith("b-")]
    keys += [k for k in runs if k.startswith("variant-")]
    for key in keys:
        rows = runs[key]
        fps = Spread.of([r.fps for r in rows])
        versus = ratios(rows, a_runs)
        gpu = spread([r.gpu_util for r in rows])
        dec = spread([r.nvdec_util for r in rows])
        cpu = spread([r.cpu_cores for r in rows])
        print(
            f"{rows[0].name:<58} {fps.text():>22} {versus.text('.2f'):>17} "
            f"{gpu.text('.0f') if gpu.runs else '-':>12} "
            f"{dec.text('.0f') if dec.runs else '-':>12} "
            f"{cpu.text('.1f') if cpu.runs else '-':>16}"
        )
    ratio = report["ratios"]

    def show(name: str) -> str:
        return Spread(**ratio[name]).text(".2f")

    print(
        f"(c)/(a), whole run, NVDEC {headline} (the service's mode): {show(f'c_{headline}_over_a')}"
        f"; steady part: {show(f'c_steady_{headline}_over_a')}   (target ≥ 0.90 whole)"
    )
    cold = report.get("cold_run")
    if cold:  # not a measured run: it creates the NVDEC sessions the measured runs reuse
        a_median = Spread.of([r.fps for r in a_runs]).median
        print(
            f"(c) the process's first run, before the measured ones (new NVDEC sessions): "
            f"whole {cold['fps'] / a_median:.2f}, steady {cold['steady_fps'] / a_median:.2f} "
            f"of (a); {cold.get('startup', '')}"
        )
    for mode in modes:
        if mode != headline:
            print(
                f"(c)/(a) with {mode_label(mode)}: whole {show(f'c_{mode}_over_a')}, "
                f"steady {show(f'c_steady_{mode}_over_a')}"
            )
    print(
        f"(b)/(a) = {show('b_over_a')}   (c)/(d) = {show('c_over_d')}; against the threaded "
        f"naive client {show('c_over_d_threads')}"
    )
    for load, fps in report.get("contention", {}).items():
        print(f"(b) while this process runs {load}: {fps:,.0f} frames/s")
    c_rows = runs[f"c-{headline}"]
    events = Spread.of([float(r.extra["events"]) for r in c_rows])
    p50 = Spread.of([float(r.extra["latency_p50_ms"]) for r in c_rows])
    p99 = Spread.of([float(r.extra["latency_p99_ms"]) for r in c_rows])
    d2h = Spread.of([float(r.extra["d2h_bytes_per_frame"]) for r in c_rows])
    print(
        f"(c): events {events.text()}, latency p50 {p50.text()} ms / p99 {p99.text()} ms; "
        f"device→host {d2h.text()} bytes/frame (detector outputs only; a 1080p RGB frame is "
        "6,220,800)"
    )
    for mode in sorted(modes, key=lambda m: m != headline):
        rows = runs.get(f"c-{mode}", [])
        for key in (
            "slots_busy", "requests_queued", "requests_done", "mean_request_ms", "mean_batch",
            "model_busy", "model_queue_ms", "frames_per_execution", "execute_ms",
        ):  # fmt: skip
            values = [float(r.extra[key]) for r in rows if key in r.extra]
            if values:
                print(f"(c) {mode_label(mode)}, {key}: {Spread.of(values).text('.2f')}")
        for i, row in enumerate(rows):
            if row.extra.get("emit_chain"):
                print(f"(c) {mode_label(mode)}, run {i + 1}, emit chain: {row.extra['emit_chain']}")
            if "thread_cores" in row.extra:  # steady window, cores per thread group
                cores = row.extra["thread_cores"]
                print(f"(c) {mode_label(mode)}, run {i + 1}, cores by thread: {cores}")
    for mode in ("threaded", "plain"):
        rows = runs.get(f"decode-{mode}", [])
        if rows:
            print(
                f"decode only, NVDEC {mode}, {report['args']['streams']} streams (context): "
                f"{Spread.of([r.fps for r in rows]).text()} frames/s, NVDEC "
                f"{spread([r.nvdec_util for r in rows]).text('.0f')} %, "
                f"{spread([r.cpu_cores for r in rows]).text('.1f')} CPU cores"
            )
    counts = report["origin_counts"]
    print(
        "GPU-path (Vigil) requests whose input reached the model in CPU memory: "
        f"{counts['vigil_cpu_inputs']} of {counts['vigil_requests']} (naive client: "
        f"{counts['naive_cpu_inputs']} of {counts['naive_requests']}; counted by request "
        f"origin, summed over {counts['instances']} model-instance processes: "
        f"{report['args']['instances']} per load of the model)"
    )
    print("cost curve (unpaced streams, window after all started):")
    print(
        f"  {'streams':>7} {'frames/s':>22} {'CPU cores':>17} {'GPU MiB / stream':>22} "
        f"{'marginal MiB / stream':>22} {'model busy':>11} {'frames/exec':>12} {'exec ms':>8}"
    )
    previous: tuple[int, float] | None = None
    for streams, points in report.get("cost_curve", {}).items():
        fps = Spread.of([p["fps"] for p in points])
        cpu = Spread.of([p["cpu_cores"] for p in points])
        mem = Spread.of([p["gpu_mib_per_stream"] for p in points])
        used = Spread.of([p.get("gpu_mib_used", float("nan")) for p in points]).median
        marginal = "-"
        if previous is not None and int(streams) > previous[0]:
            marginal = f"{(used - previous[1]) / (int(streams) - previous[0]):,.0f}"
        previous = (int(streams), used)
        served = [
            Spread.of([p.get(key, float("nan")) for p in points]).median
            for key in ("model_busy", "frames_per_execution", "execute_ms")
        ]
        print(
            f"  {streams:>7} {fps.text():>22} {cpu.text('.1f'):>17} {mem.text():>22} {marginal:>22}"
            f" {served[0]:>11.2f} {served[1]:>12.1f} {served[2]:>8.1f}"
        )
    realtime = report.get("realtime", {})
    workers = report["args"].get("rt_workers", 1)
    where = "in-process" if workers == 1 else f"{workers} worker processes"
    if "realtime" in report and not report["streams_1080p30"]:
        # the checks ran out before any count passed every one of its checks
        passed = [int(c["streams"]) for c in realtime["tries"] if c["min_stream_fps"] >= 29.5]
        print(
            f"1080p30 streams sustained in real time: none confirmed in "
            f"{len(realtime['tries'])} checks ({where}); passed once or more: "
            f"{sorted(set(passed), reverse=True) or 'none'}"
        )
    elif "realtime" in report:
        checks = realtime.get("checks", [])
        slowest = ", ".join(f"{c['min_stream_fps']:.1f}" for c in checks)
        p99 = ", ".join(f"{c['latency_p99_ms']:,.0f}" for c in checks)
        timeout = report["args"].get("rt_batch_timeout_ms") or report["args"]["batch_timeout_ms"]
        print(
            f"1080p30 streams sustained in real time: {report['streams_1080p30']} "
            f"({where}, batch timeout {timeout:g} ms; the cost curve too); {len(checks)} "
            f"checks: slowest stream {slowest} fps, latency p99 {p99} ms"
        )
    else:
        print(
            f"1080p30 streams in real time: not checked (--rt-seconds 0); the search would "
            f"start at {report['streams_1080p30']} ({where})"
        )
    for check in report.get("realtime_at", []):
        print(f"  at {check['point']}: {_check_line(check)}")
    for check in realtime.get("checks", []):
        print(f"  check: {_check_line(check)}")
    for check in realtime.get("tries", []):
        if check not in realtime.get("checks", []):
            print(f"  try:   {_check_line(check)}")
    if "cupti" in report:
        print(f"  CUPTI memcpy bytes during a 2-stream run: {report['cupti']}")
    print(f"  Triton: {report.get('triton_log_tail')}")


def _check_line(check: dict[str, Any]) -> str:
    """One real-time check in a line (its trace stays in the JSON report)."""
    workers = int(check.get("workers", 1))
    line = (
        f"{int(check['streams'])} streams ({'in-process' if workers == 1 else f'{workers} workers'}"
        f"): slowest {check['min_stream_fps']:.2f} fps, mean {check['mean_stream_fps']:.2f}, "
        f"latency p99 {check['latency_p99_ms']:,.0f} ms"
    )
    if "model_busy" in check:
        line += (
            f", model busy {check['model_busy']:.2f} at {check.get('frames_per_execution', 0):.0f}"
            " frames/exec"
        )
    return line + ("" if check.get("settled", 1.0) else ", start-up backlog not drained")
