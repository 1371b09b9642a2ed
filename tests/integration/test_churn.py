"""100 add/remove cycles against the running service leak nothing."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.helpers import ServiceProcess, shm_segments_of, wait_for
from tests.support.rtsp import RtspCamera, rtsp_server_available

pytestmark = pytest.mark.integration

# Allocator arenas and FFmpeg pools fill up during the first few dozen cycles (measured: RSS
# plateaus by cycle 50 and stays flat through 400), so the baseline is taken after 30.
WARMUP_CYCLES, CYCLES = 30, 100
RSS_BUDGET_MB = 20.0


def footprint(pid: int) -> dict[str, float]:
    """RSS (MB), threads, open fds and /dev/shm segments of a process (its own only: other
    Vigil processes on the machine come and go)."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
    return {
        "rss_mb": rss_kb / 1024,
        "threads": len(os.listdir(f"/proc/{pid}/task")),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        "shm": len(shm_segments_of(pid)),
    }


def thread_roles(api: httpx.Client) -> dict[str, int]:
    """The service's ``vigil_threads{role}`` gauge from its metrics endpoint."""
    roles = {}
    for line in api.get("/metrics").text.splitlines():
        match = re.fullmatch(r'vigil_threads\{role="([^"]+)"\} ([0-9.e+]+)', line)
        if match:
            roles[match.group(1)] = int(float(match.group(2)))
    assert roles, "the service exports no vigil_threads gauge"
    return roles


def steady_threads(pid: int, quiet_s: float = 3.0, timeout_s: float = 20.0) -> None:
    """Wait until the thread count has not changed for ``quiet_s`` (removed streams' decoder
    threads are joined in the background and end within the read timeout)."""
    deadline = time.monotonic() + timeout_s
    count, since = footprint(pid)["threads"], time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < quiet_s:
        time.sleep(0.25)
        now = footprint(pid)["threads"]
        if now != count:
            count, since = now, time.monotonic()


def test_add_remove_churn_returns_to_baseline(tmp_path, short_clip, reference_model):
    reason = rtsp_server_available()
    if reason:
        pytest.fail(f"GStreamer RTSP server unavailable (run `make test`): {reason}")
    with (
        RtspCamera(fps=10) as camera,
        ServiceProcess(tmp_path, {"sources": {"read_timeout_s": 2}}) as svc,
        httpx.Client(base_url=svc.url, timeout=10) as api,
    ):

        def cycle(i: int) -> None:
            url = short_clip.as_uri() if i % 2 else camera.url
            sid = f"churn-{i}"
            assert api.post("/api/v1/streams", json={"id": sid, "url": url}).status_code == 201

            def busy() -> bool:
                s = api.get(f"/api/v1/streams/{sid}").json()
                return s["frames_processed"] > 0 or s["state"] in ("stopped", "error")

            assert wait_for(busy, 20, 0.05), api.get(f"/api/v1/streams/{sid}").json()
            assert api.delete(f"/api/v1/streams/{sid}").status_code == 204

        def settled() -> tuple[dict[str, float], dict[str, int]]:
            # Removed streams' decoder threads are joined in the background: measure once
            # none is left, so a thread still ending is not taken for the baseline or a leak.
            wait_for(lambda: api.get("/api/v1/streams").json()["streams"] == [], 10)
            steady_threads(svc.pid)
            return footprint(svc.pid), thread_roles(api)

        for i in range(WARMUP_CYCLES):
            cycle(i)
        baseline, roles_before = settled()
        for i in range(WARMUP_CYCLES, WARMUP_CYCLES + CYCLES):
            cycle(i)
        after, roles_after = settled()

    growth = after["rss_mb"] - baseline["rss_mb"]
    print(f"\nchurn: {CYCLES} cycles; baseline {baseline}; after {after}; RSS +{growth:.1f} MB")
    print(f"threads by role: before {roles_before}; after {roles_after}")
    assert growth <= RSS_BUDGET_MB
    # The event loop's executor starts threads on demand up to a fixed bound and keeps them:
    # that is a pool filling up, not a leak. Every other role must come back to its baseline.
    pool = roles_after.pop("asyncio", 0)
    roles_before.pop("asyncio", None)
    assert pool <= min(32, (os.cpu_count() or 1) + 4)
    grown = {r: n for r, n in roles_after.items() if n > roles_before.get(r, 0)}
    assert not grown, f"threads that did not come back: {grown} (before {roles_before})"
    assert after["fds"] == baseline["fds"]
    assert after["shm"] == baseline["shm"]
