"""Recovery from Triton failures inside `vigil serve`, against the real server and real streams.

Embedded: Triton is SIGKILLed several times; external: the server is stopped for a while and
started again. Each time the service stays up, `/api/v1/ready` says 503 with the reason, every
stream processes frames again soon after Triton is ready, the outage is reported with
its lost frames per stream, no event is sent twice, and the file stream's objects keep their
ids. CI runs 2 kills 10 s apart and a 5 s external outage and prints the resume times;
`make recovery-campaign` asserts the acceptance figures (10 kills 20 s apart, a 30 s outage,
every stream processing within 10 s of Triton being ready).
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
import urllib.request
from pathlib import Path

import httpx
import pytest

from tests.integration.helpers import ServiceProcess, processes_mentioning, wait_for
from tests.support.rtsp import RtspCamera
from vigil.triton.server import EmbeddedTriton

pytestmark = pytest.mark.integration

KILLS = int(os.environ.get("TEST_RECOVERY_KILLS", "2"))
GAP_S = float(os.environ.get("TEST_RECOVERY_GAP_S", "10"))
EXTERNAL_OUTAGE_S = float(os.environ.get("TEST_EXTERNAL_OUTAGE_S", "5"))
# The acceptance figure (10 s) is asserted by the campaign on a quiet machine; CI, which may
# share its 2 cores, asserts that streams resume and prints the figure.
RESUME_WITHIN_S = float(os.environ.get("TEST_RESUME_WITHIN_S", "60"))


def _triton(run_dir: Path) -> tuple[int, int] | None:
    """(pid, HTTP port) of the embedded tritonserver of the service in ``run_dir``."""
    for line in processes_mentioning(str(run_dir)):
        if "bin/tritonserver " in line:
            pid = int(line.split(":")[0])
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            port = re.search(r"--http-port=(\d+)", cmdline)
            if port:
                return pid, int(port.group(1))
    return None


def _http_ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def _not_ready(api: httpx.Client) -> str:
    """The reason ``/api/v1/ready`` gives for a 503 ('' when ready)."""
    reply = api.get("/api/v1/ready")
    return reply.json()["reason"] if reply.status_code == 503 else ""


def _processed(api: httpx.Client) -> dict[str, int]:
    return {s["id"]: s["frames_processed"] for s in api.get("/api/v1/streams").json()["streams"]}


def _wait_resumed(api: httpx.Client, since: dict[str, int], timeout_s: float) -> float:
    """Seconds until every stream processed a frame more than in ``since``."""
    start = time.monotonic()
    pending = set(since)
    while pending and time.monotonic() - start < timeout_s:
        now = _processed(api)
        pending = {sid for sid in pending if now.get(sid, 0) <= since[sid]}
        time.sleep(0.05)
    assert not pending, f"streams {sorted(pending)} did not resume within {timeout_s:.0f} s"
    return time.monotonic() - start


def _events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _object_ids(lines: list[dict], sensor: str) -> set[str]:
    return {e["object"]["id"] for e in lines if e["sensor"]["id"] == sensor}


def _assert_no_duplicates(events: list[dict]) -> None:
    ids = [e["messageid"] for e in events]
    assert len(ids) == len(set(ids)), f"{len(ids) - len(set(ids))} events sent twice"


def _check_outages(api: httpx.Client, count: int, streams: set[str]) -> list[dict]:
    outages = api.get("/api/v1/health").json()["outages"]
    assert len(outages) == count, outages
    for outage in outages:
        assert outage["ended_s"] is not None
        assert set(outage["lost_frames"]) >= streams, outage
    return outages


def _kill_and_recover(
    svc: ServiceProcess, api: httpx.Client, run_dir: Path, events_path: Path
) -> tuple[float, float]:
    """SIGKILL the embedded Triton and check the recovery; returns the seconds from the new
    server's readiness until every stream processed a frame, and the share of the file
    stream's recent object ids seen again after it."""
    found = _triton(run_dir)
    assert found is not None, "no tritonserver process"
    pid = found[0]
    before = _events(events_path)
    os.kill(pid, signal.SIGKILL)
    # The outage is seen: 503 with the reason (first "does not answer", then recovering).
    assert wait_for(lambda: "Triton is down" in _not_ready(api), 10), _not_ready(api)
    assert "exited unexpectedly" in _not_ready(api)
    # A new server comes up; from its readiness, every stream resumes within 10 s.
    assert wait_for(lambda: (_triton(run_dir) or (pid, 0))[0] != pid, 60)
    new = _triton(run_dir)
    assert new is not None
    assert wait_for(lambda: _http_ready(new[1]), 120)
    resumed = _wait_resumed(api, _processed(api), RESUME_WITHIN_S)
    assert wait_for(lambda: api.get("/api/v1/ready").status_code == 200, 30)
    assert svc.proc is not None
    assert svc.proc.poll() is None, "the service exited"

    # The file stream waited in its queue: its objects keep their ids.
    def file_events_after() -> list[dict]:
        return [e for e in _events(events_path)[len(before) :] if e["sensor"]["id"] == "file"]

    assert wait_for(lambda: len(file_events_after()) >= 20, 30)
    last_ids = _object_ids([e for e in before if e["sensor"]["id"] == "file"][-20:], "file")
    next_ids = _object_ids(file_events_after()[:20], "file")
    assert last_ids & next_ids, (last_ids, next_ids)
    return resumed, len(last_ids & next_ids) / len(last_ids)


def _streams(camera: RtspCamera, sample_video: Path) -> list[dict]:
    return [
        {"id": "rtsp-a", "url": camera.url},
        {"id": "rtsp-b", "url": camera.url, "inference_interval": 2},
        {"id": "pattern", "url": "test://pattern?fps=10"},
        # 2 fps: the clip lasts 400 s, longer than the campaign's 10 kills.
        {"id": "file", "url": sample_video.as_uri(), "max_fps": 2},
    ]


def test_embedded_triton_killed_repeatedly_the_service_recovers_each_time(
    tmp_path, vtest_camera, sample_video, reference_model
):
    streams = _streams(vtest_camera, sample_video)
    events_path = tmp_path / "events.jsonl"
    with (
        ServiceProcess(tmp_path, {"streams": streams}) as svc,
        httpx.Client(base_url=svc.url, timeout=10) as api,
    ):
        assert wait_for(lambda: all(n > 0 for n in _processed(api).values()), 60)
        resumed_s, kept = [], []
        for _ in range(KILLS):
            time.sleep(GAP_S)
            resumed, kept_ids = _kill_and_recover(svc, api, tmp_path, events_path)
            resumed_s.append(resumed)
            kept.append(kept_ids)
        outages = _check_outages(api, KILLS, {s["id"] for s in streams})
        _assert_no_duplicates(_events(events_path))
        print(
            f"\n{KILLS} kills: resumed after Triton ready in "
            f"{', '.join(f'{s:.2f}' for s in resumed_s)} s; outages "
            f"{', '.join(str(o['duration_s']) for o in outages)} s; lost frames "
            f"{[o['lost_frames'] for o in outages]}; file-stream ids kept {kept}"
        )


def test_external_triton_stopped_and_started_again_the_service_resumes(
    tmp_path, external_triton, sample_video, reference_model
):
    streams = [
        {"id": "pattern", "url": "test://pattern?fps=10"},
        {"id": "file", "url": sample_video.as_uri(), "max_fps": 8},
    ]
    config = {"triton": {"url": external_triton.grpc_url}, "streams": streams}
    events_path = tmp_path / "events.jsonl"
    with (
        ServiceProcess(tmp_path, config) as svc,
        httpx.Client(base_url=svc.url, timeout=10) as api,
    ):
        assert wait_for(lambda: all(n > 0 for n in _processed(api).values()), 60)
        external_triton.stop()
        stopped = time.monotonic()
        assert wait_for(lambda: "Triton is down" in _not_ready(api), 15), _not_ready(api)
        time.sleep(max(0.0, EXTERNAL_OUTAGE_S - (time.monotonic() - stopped)))
        assert api.get("/api/v1/ready").status_code == 503
        assert svc.proc is not None
        assert svc.proc.poll() is None
        external_triton.start()  # same ports; ready when this returns
        resumed_s = _wait_resumed(api, _processed(api), RESUME_WITHIN_S)
        assert wait_for(lambda: api.get("/api/v1/ready").status_code == 200, 30)
        regions = external_triton_regions(external_triton)
        assert any(r.startswith("vigil_") for r in regions), "rings registered again"
        outages = _check_outages(api, 1, {s["id"] for s in streams})
        _assert_no_duplicates(_events(events_path))
        print(
            f"\nexternal Triton down {outages[0]['duration_s']:.1f} s; streams resumed "
            f"{resumed_s:.2f} s after it was ready; lost frames {outages[0]['lost_frames']}"
        )


def external_triton_regions(server: EmbeddedTriton) -> list[str]:
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(server.grpc_url)
    return list(client.get_system_shared_memory_status(as_json=True).get("regions", {}))
