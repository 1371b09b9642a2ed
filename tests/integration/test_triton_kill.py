"""`vigil run` never hangs when Triton is SIGKILLed, wherever in the run it happens.

Each case starts a real run on the sample video and kills the real Triton at a point chosen
by its seed: as soon as the server process exists (model loading), shortly after (warm-up,
first requests), or at a random moment while events are being written (mid-request or
between batches). Every run must end within 60 s with exit code 2 and the reason (with the
log tail once the server has logged anything), leaving no process and no shared-memory
segment.

CI runs a few points; ``make kill-campaign`` runs ``TEST_KILL_RUNS`` of them (50) with a CPU
hog beside them.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.helpers import (
    assert_clean,
    processes_mentioning,
    start_run_no_recover,
    wait_for,
)

pytestmark = pytest.mark.integration

RUNS = int(os.environ.get("TEST_KILL_RUNS", "4"))
# Points of a run, cycled through by the cases: (what must have happened, extra delay range).
POINTS = [
    ("triton started", (0.0, 0.0)),  # loading the model
    ("triton started", (0.5, 3.0)),  # loading, warming up, first requests
    ("events written", (0.0, 0.0)),  # just as events start flowing
    ("events written", (0.0, 2.0)),  # mid-request or between batches
]


def _triton_pid(run_dir: Path) -> int | None:
    tritons = [p for p in processes_mentioning(str(run_dir)) if "bin/tritonserver " in p]
    return int(tritons[0].split(":")[0]) if tritons else None


def _kill_point(seed: int) -> tuple[str, float]:
    milestone, (low, high) = POINTS[seed % len(POINTS)]
    return milestone, random.Random(seed).uniform(low, high)


@pytest.mark.parametrize("seed", range(RUNS))
def test_cli_when_triton_is_killed_at_any_point_exits_2_and_cleans_up(
    tmp_path: Path, sample_video: Path, reference_model: str, seed: int
) -> None:
    milestone, delay_s = _kill_point(seed)
    events = tmp_path / "events.jsonl"
    proc = start_run_no_recover(sample_video, events, tmp_path)
    try:
        assert wait_for(lambda: _triton_pid(tmp_path) is not None or proc.poll() is not None, 60)
        if milestone == "events written":
            assert wait_for(
                lambda: (events.exists() and events.stat().st_size > 0) or proc.poll() is not None,
                120,
            )
        time.sleep(delay_s)
        if proc.poll() is not None:
            pytest.fail(f"vigil ended before Triton could be killed: {proc.communicate()[0]}")
        pid = _triton_pid(tmp_path)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        try:
            out, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"vigil hung after Triton was killed ({milestone} + {delay_s:.2f} s)")
        exit_s = time.monotonic() - killed_at
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 2, out
    assert re.search(r"Triton( \(pid \d+\))? exited", out), out
    if milestone == "events written":  # a server killed at birth may have logged nothing
        assert "tail of Triton's log" in out, out
    assert exit_s < 60
    assert_clean(tmp_path, proc.pid)
