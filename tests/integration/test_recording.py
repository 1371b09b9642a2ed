"""Smart recording in `vigil serve`: real RTSP camera, real Triton, real broker, clips read back
and decoded with PyAV."""

from __future__ import annotations

import itertools
import json
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import httpx
import pytest

from tests.integration.helpers import ServiceProcess, wait_for
from tests.support.kafka import TansuBroker, consume_all, create_topic, produce, require_kafka
from tests.support.rtsp import RtspCamera, rtsp_server_available
from tests.support.tmpfs import small_tmpfs
from vigil.record.store import RecordingStore

pytestmark = pytest.mark.integration

COMMANDS, DLQ = "vigil-commands", "vigil-commands-dlq"


@pytest.fixture(scope="module")
def camera():
    reason = rtsp_server_available()
    if reason:
        pytest.fail(f"GStreamer RTSP server unavailable (run `make test`): {reason}")
    with RtspCamera(fps=10, width=320, height=240) as cam:
        yield cam


def recording_config(run_dir: Path, **extra) -> dict:
    return {
        "recording": {"directory": str(run_dir / "recordings"), "pre_roll_s": 2.0,
                      "post_roll_s": 0.0, "retention": {"check_interval_s": 1}},
        "sources": {"open_timeout_s": 5, "read_timeout_s": 3},
        "data_dir": str(run_dir / "data"),
        **extra,
    }  # fmt: skip


def add_camera(api: httpx.Client, camera: RtspCamera, sid: str = "cam") -> None:
    r = api.post("/api/v1/streams", json={"id": sid, "url": camera.url})
    assert r.status_code == 201, r.text
    assert wait_for(
        lambda: api.get(f"/api/v1/streams/{sid}").json()["frames_processed"] > 20, 60
    ), api.get(f"/api/v1/streams/{sid}").text


def wait_state(api: httpx.Client, rid: str, state: str, timeout_s: float = 30) -> dict:
    assert wait_for(lambda: api.get(f"/api/v1/recordings/{rid}").json()["state"] == state,
                    timeout_s), api.get(f"/api/v1/recordings/{rid}").text  # fmt: skip
    return api.get(f"/api/v1/recordings/{rid}").json()


def closed_event(run_dir: Path, rid: str) -> dict | None:
    """The details of a clip's ``recording`` event in the JSONL sink, once it is there."""
    for line in (run_dir / "events.jsonl").read_text().splitlines():
        event = json.loads(line)
        details = event["object"].get("recording", {})
        if event["event"]["type"] == "recording" and details.get("recording_id") == rid:
            return details
    return None


def decoded(path: Path) -> tuple[list[av.Packet], int]:
    with av.open(str(path)) as f:
        packets = [p for p in f.demux(f.streams.video[0]) if p.size]
    with av.open(str(path)) as f:
        frames = sum(1 for _ in f.decode(video=0))
    return packets, frames


def monotonic(packets: list[av.Packet]) -> bool:
    return all(b.dts > a.dts for a, b in itertools.pairwise(packets))


def test_rest_recording_lifecycle_and_errors(tmp_path, reference_model, camera):
    config = recording_config(tmp_path)
    with ServiceProcess(tmp_path, config) as svc, httpx.Client(base_url=svc.url, timeout=10) as api:
        add_camera(api, camera)
        time.sleep(2.5)  # fill the pre-event cache
        asked = time.time()
        created = api.post("/api/v1/streams/cam/recordings", json={"duration_s": 2})
        assert created.status_code == 201, created.text
        rid = created.json()["id"]
        again = api.post("/api/v1/streams/cam/recordings", json={"duration_s": 3})
        assert again.status_code == 200, again.text  # extends the open clip
        assert again.json()["id"] == rid
        # errors name the problem
        assert api.post("/api/v1/streams/nope/recordings", json={}).status_code == 404
        bad = api.post(
            "/api/v1/streams/cam/recordings",
            json={"start": "2026-01-01T00:00:10Z", "end": "2026-01-01T00:00:00Z"},
        )
        assert bad.status_code == 422
        assert "end" in bad.text
        future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        bad = api.post("/api/v1/streams/cam/recordings", json={"start": future})
        assert bad.status_code == 422
        assert "start" in bad.text
        both = api.post("/api/v1/streams/cam/recordings",
                        json={"end": future, "duration_s": 1})  # fmt: skip
        assert both.status_code == 422
        assert "duration_s" in both.text
        assert api.delete(f"/api/v1/recordings/{rid}").status_code == 409  # still written

        info = wait_state(api, rid, "complete")
        assert api.post("/api/v1/streams/cam/recordings/stop").status_code == 409
        assert info["codec"] == "h264"
        assert info["container"] == "mp4"
        # 2 s of pre-roll (from the last keyframe before it) + 3 s
        assert 4.5 <= info["duration_s"] <= 7.0, info
        start = datetime.fromisoformat(info["start"]).timestamp()
        assert start <= asked - 2.0 + 0.05, "the clip starts before the pre-roll, never later"
        listed = api.get("/api/v1/recordings", params={"stream_id": "cam"}).json()["recordings"]
        assert [r["id"] for r in listed] == [rid]
        later = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
        assert api.get("/api/v1/recordings", params={"since": later}).json()["recordings"] == []

        whole = api.get(info["file_url"])
        assert whole.status_code == 200
        assert whole.headers["content-type"] == "video/mp4"
        assert int(whole.headers["content-length"]) == info["size_bytes"]
        part = api.get(info["file_url"], headers={"Range": "bytes=100-1099"})
        assert part.status_code == 206
        assert part.content == whole.content[100:1100]
        clip = tmp_path / "clip.mp4"
        clip.write_bytes(whole.content)
        packets, frames = decoded(clip)
        assert packets[0].is_keyframe
        assert packets[0].pts == 0
        assert monotonic(packets)
        assert frames == len(packets) >= 45

        # the recording event reached the sinks, naming the clip
        def recording_events() -> list[dict]:
            lines = (tmp_path / "events.jsonl").read_text().splitlines()
            return [e for e in map(json.loads, lines) if e["event"]["type"] == "recording"]

        assert wait_for(lambda: recording_events(), 10)
        event = recording_events()[0]
        assert event["videoPath"] == info["file_url"]
        assert rid in json.dumps(event["object"])

        assert api.delete(f"/api/v1/recordings/{rid}").status_code == 204
        assert api.get(f"/api/v1/recordings/{rid}").status_code == 404
        assert api.get(f"/api/v1/recordings/{rid}/file").status_code == 404
        assert api.get("/api/v1/recordings/..%2F..%2Fetc%2Fpasswd/file").status_code == 404
        metrics = api.get("/metrics").text
        assert 'vigil_recording_cache_bytes{stream="cam"}' in metrics


def test_camera_outage_during_a_clip_leaves_one_playable_monotonic_clip(
    tmp_path, reference_model, camera
):
    config = recording_config(tmp_path)
    with ServiceProcess(tmp_path, config) as svc, httpx.Client(base_url=svc.url, timeout=10) as api:
        add_camera(api, camera, "out")
        time.sleep(1.5)
        r = api.post("/api/v1/streams/out/recordings", json={"duration_s": 12, "pre_roll_s": 0})
        assert r.status_code == 201, r.text
        rid = r.json()["id"]
        time.sleep(2.0)
        camera.restart()  # the camera goes away and comes back: its clock starts again
        assert wait_for(lambda: api.get("/api/v1/streams/out").json()["reconnects"] >= 1, 30)
        info = wait_state(api, rid, "complete", timeout_s=40)
        listed = api.get("/api/v1/recordings", params={"stream_id": "out"}).json()["recordings"]
        assert len(listed) == 1, "one clip across the outage"
        path = tmp_path / "recordings" / "out" / f"{rid}.mp4"
        packets, frames = decoded(path)
        assert monotonic(packets)
        assert frames == len(packets)
        assert info["duration_s"] >= 8.0


def test_kill_9_while_recording_leaves_a_clip_that_plays(tmp_path, reference_model, camera):
    config = recording_config(tmp_path)
    svc = ServiceProcess(tmp_path, config)
    with svc, httpx.Client(base_url=svc.url, timeout=10) as api:
        add_camera(api, camera, "k9")
        r = api.post("/api/v1/streams/k9/recordings", json={"pre_roll_s": 0})
        assert r.status_code == 201, r.text
        rid = r.json()["id"]
        time.sleep(4.5)
        svc.stop(signal.SIGKILL)
    path = tmp_path / "recordings" / "k9" / f"{rid}.mp4"
    packets, frames = decoded(path)  # no "moov atom not found"
    assert frames >= 25, "decodes up to the last written fragment"
    assert monotonic(packets)
    rec = RecordingStore(tmp_path / "recordings").get(rid)  # what the next start sees
    assert rec is not None
    assert rec.state == "interrupted"


def test_kafka_test5_start_and_stop_recording(tmp_path, reference_model, camera):
    require_kafka()
    with TansuBroker() as broker:
        for topic in (COMMANDS, DLQ):
            create_topic(broker.bootstrap, topic)
        config = recording_config(
            tmp_path,
            kafka={"bootstrap_servers": broker.bootstrap, "commands": {"enabled": True},
                   "outbox": {"path": str(tmp_path / "outbox.db")}},
        )  # fmt: skip
        with ServiceProcess(tmp_path, config) as svc, httpx.Client(base_url=svc.url) as api:
            add_camera(api, camera, "k1")
            time.sleep(2.5)
            past = datetime.now(UTC) - timedelta(seconds=2)
            stamp = past.strftime("%Y-%m-%dT%H:%M:%S.") + f"{past.microsecond // 1000:03d}Z"
            # DeepStream test5's bodies, exactly
            start = {"command": "start-recording", "start": stamp, "sensor": {"id": "k1"}}
            produce(broker.bootstrap, COMMANDS, [json.dumps(start).encode()])
            assert wait_for(lambda: api.get("/api/v1/recordings").json()["recordings"], 30), (
                "start-recording made no clip"
            )
            rid = api.get("/api/v1/recordings").json()["recordings"][0]["id"]
            time.sleep(2.0)
            stop = {"command": "stop-recording", "sensor": {"id": "k1"}}
            bad = [
                b'{"command": "start-recording", "sensor": {"id": "k1"}}',
                b'{"command": "start-recording", "start": "yesterday", "sensor": {"id": "k1"}}',
            ]
            produce(broker.bootstrap, COMMANDS, [json.dumps(stop).encode(), *bad])
            info = wait_state(api, rid, "complete")
            assert info["trigger"]["kind"] == "kafka"
            assert 3.0 <= info["duration_s"] <= 8.0, info
            dead = consume_all(broker.bootstrap, DLQ, expected=2, timeout_s=30)
            assert [json.loads(m.value)["reason"] for m in dead] == ["invalid_fields"] * 2
            assert "start" in json.loads(dead[0].value)["detail"]
            packets, frames = decoded(tmp_path / "recordings" / "k1" / f"{rid}.mp4")
            assert frames >= 30
            assert monotonic(packets)


@pytest.fixture
def tiny_disk(tmp_path):
    """A 128 KiB tmpfs (needs root; skipped with the reason otherwise)."""
    with small_tmpfs(tmp_path / "tiny", "128k") as mount:
        yield mount


def test_retention_and_a_full_disk_stop_nothing_else(tmp_path, tiny_disk, reference_model, camera):
    config = recording_config(tmp_path)
    config["recording"].update(directory=str(tiny_disk), retention={"check_interval_s": 0.5,
                               "max_total_bytes": 45_000, "max_age_s": None})  # fmt: skip
    with ServiceProcess(tmp_path, config) as svc, httpx.Client(base_url=svc.url, timeout=10) as api:
        add_camera(api, camera, "disk")
        first = api.post("/api/v1/streams/disk/recordings", json={"duration_s": 2}).json()["id"]
        wait_state(api, first, "complete")
        second = api.post("/api/v1/streams/disk/recordings", json={"duration_s": 2}).json()["id"]
        wait_state(api, second, "complete")
        # two clips are over 45 kB: retention deletes the older one by itself
        assert wait_for(lambda: api.get(f"/api/v1/recordings/{first}").status_code == 404, 10)
        assert api.get(f"/api/v1/recordings/{second}").status_code == 200
        # a clip with no end fills the 128 KiB disk
        frames_before = api.get("/api/v1/streams/disk").json()["frames_processed"]
        third = api.post("/api/v1/streams/disk/recordings", json={"pre_roll_s": 0}).json()["id"]
        # retention may delete the failed clip (over the cap too) within half a second, so
        # its outcome is read from its `recording` event rather than polled
        assert wait_for(lambda: closed_event(tmp_path, third), 60)
        closed = closed_event(tmp_path, third)
        assert closed["state"] == "failed"
        assert "disk full" in closed["error"]
        metrics = api.get("/metrics").text
        assert 'vigil_recording_failures_total{reason="no_space"} 1.0' in metrics
        assert "vigil_recordings_deleted_total" in metrics
        # nothing else stopped: the stream runs on, the service is ready
        assert wait_for(lambda: api.get("/api/v1/streams/disk").json()["frames_processed"]
                        > frames_before + 30, 20)  # fmt: skip
        assert api.get("/api/v1/streams/disk").json()["state"] != "error"
        assert api.get("/api/v1/ready").status_code == 200
        # retention frees the disk by itself (the failed clip is over the cap too): recording
        # works again with no one stepping in
        assert wait_for(lambda: api.get(f"/api/v1/recordings/{third}").status_code == 404, 10)
        fourth = api.post("/api/v1/streams/disk/recordings", json={"duration_s": 1}).json()["id"]
        assert wait_state(api, fourth, "complete")["size_bytes"] > 0
