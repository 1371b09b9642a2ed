"""The GPU benchmark's arithmetic (bench/gpu/stats.py) and table (bench/gpu/report.py), which
need no GPU: medians with spread, run-by-run ratios, request counts by origin."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from bench.gpu.meter import cores_between, thread_cpu_seconds
from bench.gpu.peoplenet import bucket_sizes, config_text
from bench.gpu.report import (
    mode_label,
    parse_model_variants,
    print_table,
    slots_of,
    variant_label,
    workers_of,
)
from bench.gpu.stats import (
    Row,
    Spread,
    ratios,
    read_origin_counts,
    summary_ratios,
)


def test_spread_is_median_min_max_and_prints_the_range():
    s = Spread.of([2_000.0, 1_800.0, 2_100.0])
    assert (s.median, s.low, s.high, s.runs) == (2_000.0, 1_800.0, 2_100.0, 3)
    assert s.text() == "2,000 (1,800–2,100)"
    assert Spread.of([0.5]).text(".2f") == "0.50"


def test_ratios_pair_runs_in_order():
    c = [Row("c", 900, 1.0), Row("c", 800, 1.0), Row("c", 1000, 1.0)]
    a = [Row("a", 1000, 1.0), Row("a", 1000, 1.0), Row("a", 2000, 1.0)]
    r = ratios(c, a)
    assert (r.median, r.low, r.high) == (0.8, 0.5, 0.9)


def test_origin_counts_are_summed_by_origin_and_never_negative(tmp_path):
    """The old counter subtracted the naive client's frames from the per-instance totals and
    went negative when an instance's line was lost; counts by origin cannot."""
    (tmp_path / "run" / "m" / "1").mkdir(parents=True)
    (tmp_path / "run" / "m" / "1" / "counts-11.json").write_text(
        json.dumps({"vigil": [700, 0], "naive": [400, 400]})
    )
    (tmp_path / "counts-12.json").write_text(json.dumps({"vigil": [19, 0], "naive": [0, 0]}))
    counts = read_origin_counts(tmp_path)
    assert (counts.vigil_requests, counts.vigil_cpu_inputs) == (719, 0)
    assert (counts.naive_requests, counts.naive_cpu_inputs) == (400, 400)
    assert counts.instances == 2
    empty = read_origin_counts(tmp_path / "nothing")
    assert (empty.vigil_requests, empty.vigil_cpu_inputs, empty.instances) == (0, 0, 0)


def fake_runs() -> dict[str, list[Row]]:
    extra = {
        "events": 100.0,
        "latency_p50_ms": 300.0,
        "latency_p99_ms": 700.0,
        "d2h_bytes_per_frame": 122_400.0,
        "slots_busy": 5.5,
    }
    runs: dict[str, list[Row]] = {}
    for key, name, fps in [
        ("a", "(a) model alone", [2500, 2600, 2550]),
        ("b", "(b) Triton", [2200, 2250, 2240]),
        ("c-threaded", "(c) whole threaded", [1900, 2000, 1950]),
        ("c-steady-threaded", "(c) steady threaded", [2100, 2150, 2120]),
        ("c-plain", "(c) whole plain", [1300, 1500, 1400]),
        ("c-steady-plain", "(c) steady plain", [1500, 1600, 1550]),
        ("d-loop", "(d) loop", [50, 55, 52]),
        ("d-threads", "(d) threads", [400, 410, 405]),
        ("decode-threaded", "decode threaded", [2600, 2650, 2700]),
    ]:
        runs[key] = [Row(name, f, 1.0, 50.0, 40.0, 4.0, dict(extra)) for f in fps]
    return runs


def check(streams: int, slowest: float, p99_ms: float, workers: int = 1) -> dict:
    """A real-time check's result, as bench/gpu/live.py reports it."""
    return {
        "streams": float(streams),
        "workers": float(workers),
        "min_stream_fps": slowest,
        "mean_stream_fps": slowest + 0.2,
        "latency_p99_ms": p99_ms,
    }


def fake_report(runs: dict[str, list[Row]], modes: list[str], **args: object) -> dict:
    """What bench.py hands print_table, with no counted requests and no cost curve."""
    return {
        "date": "2026-12-05",
        "device": "GPU",
        "driver": "1",
        "path": "GPU path",
        "cpu_count": 16,
        "tracker": "on",
        "args": {"repeats": 3, "streams": 16, "instances": 3, "batch_timeout_ms": 20.0} | args,
        "ratios": summary_ratios(runs, modes, "threaded"),
        "origin_counts": dict.fromkeys(
            ["vigil_requests", "vigil_cpu_inputs", "naive_requests", "naive_cpu_inputs"], 0
        )
        | {"instances": 3},
        "streams_1080p30": 0,
    }


def test_table_prints_medians_with_spread_and_the_origin_counts(capsys):
    runs = fake_runs()
    modes = ["threaded", "plain"]
    report = {
        "date": "2026-12-04",
        "device": "GPU",
        "driver": "1",
        "path": "GPU path",
        "cpu_count": 16,
        "tracker": "on",
        "args": {"repeats": 3, "streams": 16, "instances": 3, "batch_timeout_ms": 20.0},
        "ratios": summary_ratios(runs, modes, "threaded"),
        "origin_counts": {
            "vigil_requests": 719,
            "vigil_cpu_inputs": 0,
            "naive_requests": 400,
            "naive_cpu_inputs": 400,
            "instances": 3,
        },
        "cost_curve": {
            "16": [
                {
                    "fps": 2000.0,
                    "cpu_cores": 6.0,
                    "gpu_mib_per_stream": 80.0,
                    "gpu_mib_used": 9000.0,
                }
            ]
            * 3,
            "32": [
                {
                    "fps": 2100.0,
                    "cpu_cores": 7.0,
                    "gpu_mib_per_stream": 70.0,
                    "gpu_mib_used": 10600.0,
                    "model_busy": 0.98,
                    "frames_per_execution": 96.0,
                    "execute_ms": 42.8,
                }
            ]
            * 3,
        },
        "streams_1080p30": 60,
        "realtime": {"checks": [check(60, 29.8, 140.0)] * 3, "tries": []},
    }
    print_table(report, runs, modes, "threaded")
    text = capsys.readouterr().out
    assert "2,550 (2,500–2,600)" in text  # (a)
    assert "1,950 (1,900–2,000)" in text  # (c) whole, threaded
    # (c)/(a) whole, run by run: 1900/2500, 2000/2600, 1950/2550 → median 0.76
    assert "(c)/(a), whole run, NVDEC threaded (the service's mode): 0.76 (0.76–0.77)" in text
    assert "0 of 719" in text
    assert "400 of 400" in text
    assert "summed over 3 model-instance processes" in text
    assert (
        "1080p30 streams sustained in real time: 60 (in-process, batch timeout 20 ms; the cost "
        "curve too); 3 checks: slowest stream 29.8, 29.8, 29.8 fps, latency p99 140, 140, 140 ms"
    ) in text
    assert "  check: 60 streams (in-process): slowest 29.80 fps" in text
    line = next(x for x in text.splitlines() if x.strip().startswith("16 "))
    assert "2,000 (2,000–2,000)" in line
    assert "80 (80–80)" in line
    line = next(x for x in text.splitlines() if x.strip().startswith("32 "))
    # marginal: (10,600 − 9,000) MiB / 16 streams; then how the model was served
    assert line.split()[-4:] == ["100", "0.98", "96.0", "42.8"]
    assert summary_ratios(runs, modes, "threaded")["c_over_d"] == asdict(
        ratios(runs["c-threaded"], runs["d-loop"])
    )


@pytest.mark.parametrize("missing", ["d-loop", "c-plain"])
def test_summary_ratios_need_every_figure(missing):
    runs = fake_runs()
    del runs[missing]
    with pytest.raises(KeyError):
        summary_ratios(runs, ["threaded", "plain"], "threaded")


def test_worker_configurations_get_their_own_rows_and_ratio(capsys):
    """(c) over worker processes (`--workers 4`) is a configuration of its own: its rows, its
    (c)/(a) line, and the real-time line says how the search ran."""
    runs = fake_runs()
    extra = dict(runs["c-threaded"][0].extra)
    runs["c-w4"] = [Row("(c) w4", f, 1.0, 90.0, 40.0, 9.0, extra) for f in (2200, 2250, 2300)]
    runs["c-steady-w4"] = [
        Row("(c) steady w4", f, 1.0, 90.0, 40.0, 9.0, extra) for f in (2300,) * 3
    ]
    modes = ["threaded", "w4"]
    checked = {"checks": [check(70, 29.7, 200.0, workers=4)], "tries": []}
    report = fake_report(runs, modes, rt_workers=4, rt_batch_timeout_ms=40.0) | {
        "streams_1080p30": 70,
        "realtime": checked,
        "realtime_at": [check(72, 28.1, 900.0, workers=4) | {"point": "72+workers=4"}],
    }
    print_table(report, runs, modes, "threaded")
    text = capsys.readouterr().out
    assert workers_of("w4") == 4
    assert workers_of("plain") == 1
    assert mode_label("w4") == "4 worker processes"
    # 2200/2500, 2250/2600, 2300/2550 → 0.88, 0.865, 0.90
    assert "(c)/(a) with 4 worker processes: whole 0.88 (0.87–0.90)" in text
    assert "sustained in real time: 70 (4 worker processes, batch timeout 40" in text
    assert "  at 72+workers=4: 72 streams (4 workers): slowest 28.10 fps" in text
    unchecked = fake_report(runs, modes, rt_workers=4) | {"streams_1080p30": 70}
    print_table(unchecked, runs, modes, "threaded")
    assert "not checked (--rt-seconds 0); the search would start at 70" in capsys.readouterr().out
    tries = [check(66, 31.2, 100.0), check(66, 25.8, 900.0), check(59, 31.6, 100.0)]
    ran_out = fake_report(runs, modes) | {
        "streams_1080p30": 0,
        "realtime": {"sustained": 0, "tries": tries, "checks": []},
    }
    print_table(ran_out, runs, modes, "threaded")
    assert (
        "sustained in real time: none confirmed in 3 checks (in-process); "
        "passed once or more: [66, 59]" in capsys.readouterr().out
    )


def test_serving_configurations_are_parsed_named_and_get_rows(capsys):
    """`--model-variants 1x2` measures (b) with one instance running up to 2 queued requests
    per execute; its (b) rows and any (c) variant run get their own lines in the table."""
    assert parse_model_variants("1x2,2x2,3") == {"i1g2": (1, 2), "i2g2": (2, 2), "i3g1": (3, 1)}
    assert variant_label(1, 2, 6) == (
        "Triton + CUDA shm, 1 instance × 2 requests per execute (6 in flight)"
    )
    text = config_text(32, 1, group=2, name="peoplenet_rn34_i1g2")
    assert 'name: "peoplenet_rn34_i1g2"' in text
    assert "max_batch_size: 64" in text
    assert "dynamic_batching { max_queue_delay_microseconds: 0 }" in text
    assert 'string_value: "1,8,16,24,32"' in text, "warmed up at the sizes requests run at"
    assert bucket_sizes(8) == [1, 8]
    assert bucket_sizes(20) == [1, 8, 16, 20]
    assert "dynamic_batching" not in config_text(32, 3)
    runs = fake_runs()
    runs["b-i1g2"] = [Row("(b) one instance", f, 1.0, 99.0, None, 3.0) for f in (2400, 2450)]
    runs["variant-model=i1g2+workers=4"] = [Row("(c) variant model=i1g2+workers=4", 2300, 1.0)]
    report = fake_report(runs, ["threaded", "plain"])
    print_table(report, runs, ["threaded", "plain"], "threaded")
    lines = capsys.readouterr().out.splitlines()
    b_line = next(x for x in lines if x.startswith("(b) one instance"))
    assert "2,425 (2,400–2,450)" in b_line
    assert any(x.startswith("(c) variant model=i1g2+workers=4") and "2,300" in x for x in lines)


def test_ring_size_configurations_get_their_own_rows_and_diagnostics(capsys):
    """`--slots 9` runs (c) in-process with 9 requests in flight beside the default; its rows,
    its (c)/(a) line and its diagnostics (model busy, cores by thread) are printed apart."""
    runs = fake_runs()
    extra = dict(runs["c-threaded"][0].extra) | {
        "model_busy": 0.9,
        "frames_per_execution": 96.0,
        "thread_cores": "{'stages': 0.97, 'MainThread': 0.5}",
    }
    runs["c-s9"] = [Row("(c) s9", f, 1.0, 90.0, 40.0, 3.0, extra) for f in (2200, 2250, 2300)]
    runs["c-steady-s9"] = [
        Row("(c) steady s9", f, 1.0, 90.0, 40.0, 3.0, extra) for f in (2300,) * 3
    ]
    modes = ["threaded", "s9"]
    cold = {"fps": 1275.0, "steady_fps": 1530.0, "startup": "start-up: all decoding by 1.3 s"}
    print_table(fake_report(runs, modes) | {"cold_run": cold}, runs, modes, "threaded")
    text = capsys.readouterr().out
    assert (slots_of("s9"), slots_of("threaded"), workers_of("s9")) == (9, None, 1)
    assert mode_label("s9") == "NVDEC threaded, 9 in flight"
    assert mode_label("overlap") == "NVDEC threaded, stages overlapped"
    assert (workers_of("overlap"), slots_of("overlap")) == (1, None)
    assert "(c)/(a) with NVDEC threaded, 9 in flight: whole 0.88 (0.87–0.90)" in text
    assert "(c) NVDEC threaded, 9 in flight, frames_per_execution: 96.00 (96.00–96.00)" in text
    assert "9 in flight, run 2, cores by thread: {'stages': 0.97" in text
    # the unmeasured first run, against (a)'s median 2,550: 0.50 whole, 0.60 steady
    assert (
        "first run, before the measured ones (new NVDEC sessions): whole 0.50, steady 0.60" in text
    )


def test_thread_clock_names_the_thread_that_burns_cpu():
    """The steady window's cores per thread group: a busy thread named like a decoder thread
    shows as ``decode``, the busiest group."""
    import threading
    import time

    done = threading.Event()

    def spin() -> None:
        end = time.perf_counter() + 0.3
        while time.perf_counter() < end:
            pass
        done.wait()

    thread = threading.Thread(target=spin, name="decode-cam-1")
    before, t0 = thread_cpu_seconds(), time.perf_counter()
    thread.start()
    time.sleep(0.35)
    cores = cores_between(before, thread_cpu_seconds(), time.perf_counter() - t0)
    done.set()
    thread.join()
    # busiest first; how much of a core it got depends on the host's load, not on the clock
    assert next(iter(cores)) == "decode", cores
    assert cores["decode"] <= 1.05, cores
    assert cores_between(before, before, 0.0) == {}
