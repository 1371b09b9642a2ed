"""``vigil run --workers N`` as users run it: exit codes, signals and Triton dying, with the
real embedded Triton and real worker processes; nothing may be left behind on any path."""

from __future__ import annotations

import os
import signal

import pytest

from tests.integration.helpers import (
    assert_clean,
    processes_mentioning,
    run_vigil,
    start_vigil,
    wait_for,
)

pytestmark = pytest.mark.integration

WORKER = "-m vigil.job_workers"


def _no_worker_left() -> None:
    assert wait_for(lambda: not processes_mentioning(WORKER), 20), processes_mentioning(WORKER)


def test_a_failing_stream_fails_alone_and_the_exit_code_says_so(
    tmp_path, short_clip, corrupt_video, reference_model
):
    events = tmp_path / "e.jsonl"
    args = ["run", "--workers", "2", "--no-progress", "--out", str(events)]
    for source in (f"a={short_clip}", f"bad={corrupt_video}", f"c={short_clip}"):
        args += ["--source", source]
    code, out, pid = run_vigil(args, tmp_path)
    assert code == 1, out
    assert "stream bad failed" in out
    assert out.count("stopped") >= 2, out  # a and c ran to their end
    sensors = {line.split('"sensor":{"id":"')[1].split('"')[0] for line in events.open()}
    assert sensors == {"a", "c"}
    assert not list(tmp_path.glob("e.worker-*"))
    assert_clean(tmp_path, pid)
    _no_worker_left()


@pytest.mark.parametrize("how", ["SIGINT", "triton killed"])
def test_a_signal_or_tritons_death_ends_the_job_and_every_worker(
    tmp_path, sample_video, reference_model, how
):
    events = tmp_path / "events.jsonl"
    args = ["run", "--workers", "2", "--no-progress", "--out", str(events)]
    args += ["--source", f"a={sample_video}", "--source", f"b={sample_video}"]
    proc = start_vigil(args, tmp_path)
    try:
        # the workers write their own files until the end; processing has begun once both grow
        parts = [tmp_path / f"events.worker-{i}.jsonl" for i in (1, 2)]
        running = wait_for(
            lambda: all(p.exists() and p.stat().st_size for p in parts) or proc.poll() is not None,
            120,
        )
        assert running
        assert proc.poll() is None, proc.communicate()[0]
        assert len(processes_mentioning(WORKER)) == 2
        if how == "SIGINT":
            proc.send_signal(signal.SIGINT)
        else:
            tritons = [p for p in processes_mentioning(str(tmp_path)) if "bin/tritonserver " in p]
            assert len(tritons) == 1, tritons
            os.kill(int(tritons[0].split(":")[0]), signal.SIGKILL)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    if how == "SIGINT":
        assert proc.returncode == 128 + signal.SIGINT, out
        assert "stopped by SIGINT" in out
    else:
        assert proc.returncode == 2, out
        assert "exited unexpectedly" in out
    assert_clean(tmp_path, proc.pid)
    _no_worker_left()
