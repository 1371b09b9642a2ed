"""Decoders run in child processes: a crash or hang, or a malformed file, stops that stream
only — never the service, never the other streams.

The decoder children are real FFmpeg (PyAV) processes; crashes and hangs are made from outside
with the signals a real crash or hang amounts to (SIGSEGV, SIGABRT, SIGSTOP). Fuzzing adds
damaged H.264 and MJPEG files beside two healthy streams (CI: 24 files;
`make fuzz-campaign`: 200, with a busy process beside it).
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.helpers import ServiceProcess, processes_mentioning, wait_for
from tests.support.clips import make_clip
from tests.support.fuzz import fuzz_clips

pytestmark = pytest.mark.integration

FUZZ_CLIPS = int(os.environ.get("TEST_FUZZ_CLIPS", "24"))
# The campaigns assert the acceptance bound (1 s); elsewhere the bound is relative to the same
# machine's calm stalls, measured just before, so a loaded host does not fail the test.
MAX_STALL_S = os.environ.get("TEST_MAX_STALL_S")
BASELINE_S = 8.0
# The floor of that relative bound. What this test exists to catch, a bad stream blocking the
# healthy ones, stalls them for the decoder's read timeout (2 s) or for good; a 2-core host
# that gets busier after the calm measurement (a CPU hog plus a package install) starves
# every stream for about 1.1 s at worst. 2 s tells the two apart.
STALL_FLOOR_S = 2.0


def stall_limit(url: str, streams: list[str]) -> float:
    """The longest stall allowed: ``TEST_MAX_STALL_S``, else :data:`STALL_FLOOR_S` or 3x
    the calm stall."""
    if MAX_STALL_S:
        return float(MAX_STALL_S)
    with StallWatch(url, streams) as calm:
        time.sleep(BASELINE_S)
    return max(STALL_FLOOR_S, 3 * calm.longest_s)


# Damaged streams running together, and the rate every file plays at: the 2-core CI machine
# infers ~40 frames/s, so the pipeline is not saturated and a stall means a blocked stream.
AT_ONCE = 3
FPS = 5
FUZZ_CONFIG = json.loads(os.environ.get("TEST_FUZZ_CONFIG", "{}"))


def _decoder_pid(url: str) -> int | None:
    for line in processes_mentioning("vigil.sources.decoder_process"):
        if url in line or url in Path(f"/proc/{line.split(':')[0]}/cmdline").read_text(
            errors="replace"
        ):
            return int(line.split(":")[0])
    return None


def _stream(api: httpx.Client, sid: str) -> dict:
    return api.get(f"/api/v1/streams/{sid}").json()


class StallWatch:
    """Polls the healthy streams' processed-frame counts; the longest time one that was
    running did not move."""

    def __init__(self, url: str, streams: list[str]) -> None:
        self.url, self.streams = url, streams
        self.longest_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> StallWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        last: dict[str, tuple[int, float]] = {}
        with httpx.Client(base_url=self.url, timeout=10) as api:
            while not self._stop.wait(0.05):
                now = time.monotonic()
                for s in api.get("/api/v1/streams").json()["streams"]:
                    if s["id"] not in self.streams or s["state"] != "running":
                        last.pop(s["id"], None)  # a file that ended is not stalled
                        continue
                    count, since = last.get(s["id"], (-1, now))
                    if s["frames_processed"] != count:
                        last[s["id"]] = (s["frames_processed"], now)
                    else:
                        self.longest_s = max(self.longest_s, now - since)


def test_a_crashed_or_hung_decoder_fails_its_stream_only(
    tmp_path, vtest_camera, sample_video, reference_model
):
    camera = vtest_camera
    healthy = [
        {"id": "healthy-rtsp", "url": camera.url},
        {"id": "healthy-pattern", "url": "test://pattern?fps=10"},
    ]
    config = {"streams": healthy, "sources": {"read_timeout_s": 2}}
    with (
        ServiceProcess(tmp_path, config) as svc,
        httpx.Client(base_url=svc.url, timeout=10) as api,
    ):
        assert wait_for(lambda: _stream(api, "healthy-rtsp")["frames_processed"] > 0, 30)
        limit = stall_limit(svc.url, ["healthy-rtsp", "healthy-pattern"])
        with StallWatch(svc.url, ["healthy-rtsp", "healthy-pattern"]) as watch:
            crash_file = sample_video.as_uri()
            live = f"{camera.url}?victim=1"
            for sid, url in (("crash-file", crash_file), ("hang-live", live)):
                body = {"id": sid, "url": url, "max_fps": 10}
                assert api.post("/api/v1/streams", json=body).status_code == 201
            assert wait_for(lambda: _stream(api, "crash-file")["frames_processed"] > 5, 30)
            assert wait_for(lambda: _stream(api, "hang-live")["frames_processed"] > 5, 30)

            # A segfault in a file's decoder: that stream ends in error, with the reason.
            pid = _decoder_pid(crash_file)
            assert pid is not None
            os.kill(pid, signal.SIGSEGV)
            assert wait_for(lambda: _stream(api, "crash-file")["state"] == "error", 10)
            assert "crashed (SIGSEGV)" in _stream(api, "crash-file")["reason"]

            # A hung camera decoder: noticed after read_timeout_s, killed, and reconnected.
            pid = _decoder_pid(live)
            assert pid is not None
            os.kill(pid, signal.SIGSTOP)
            assert wait_for(lambda: _stream(api, "hang-live")["reconnects"] >= 1, 15)
            assert "decoder hung" in (_stream(api, "hang-live")["last_error"] or "")
            assert wait_for(lambda: _stream(api, "hang-live")["state"] == "running", 30)
            done = _stream(api, "hang-live")["frames_processed"]
            assert wait_for(lambda: _stream(api, "hang-live")["frames_processed"] > done, 30)
            assert _decoder_pid(live) not in (None, pid), "a new decoder process"

            # An abort: the camera stream reconnects again.
            os.kill(_decoder_pid(live) or 0, signal.SIGABRT)
            assert wait_for(lambda: _stream(api, "hang-live")["reconnects"] >= 2, 15)
            assert wait_for(lambda: _stream(api, "hang-live")["state"] == "running", 30)

            assert api.get("/api/v1/live").status_code == 200
            for s in healthy:
                assert _stream(api, s["id"])["state"] == "running"
    print(f"\nhealthy streams' longest stall: {watch.longest_s:.2f} s (limit {limit:.2f} s)")
    assert watch.longest_s <= limit


def test_decoder_fuzzing_bad_files_end_their_stream_only(
    tmp_path, sample_video, short_clip, reference_model
):
    mjpeg = make_clip(sample_video, 20, tmp_path / "mjpeg.avi", codec="mjpeg")
    bad = list(fuzz_clips([short_clip, mjpeg], FUZZ_CLIPS, tmp_path / "fuzz"))
    healthy = [
        {"id": "healthy-file", "url": sample_video.as_uri(), "max_fps": FPS},
        {"id": "healthy-pattern", "url": f"test://pattern?fps={FPS}"},
    ]
    outcomes: dict[str, tuple[str, str]] = {}
    with (
        ServiceProcess(tmp_path, {"streams": healthy, **FUZZ_CONFIG}) as svc,
        httpx.Client(base_url=svc.url, timeout=10) as api,
    ):
        assert wait_for(lambda: _stream(api, "healthy-file")["frames_processed"] > 0, 30)
        limit = stall_limit(svc.url, ["healthy-file", "healthy-pattern"])
        with StallWatch(svc.url, ["healthy-file", "healthy-pattern"]) as watch:
            for start in range(0, len(bad), AT_ONCE):
                wave = {f"bad-{i}": bad[i] for i in range(start, min(start + AT_ONCE, len(bad)))}
                for sid, path in wave.items():
                    body = {"id": sid, "url": path.as_uri(), "max_fps": FPS}
                    reply = api.post("/api/v1/streams", json=body)
                    assert reply.status_code == 201, reply.text

                def ended(wave: dict[str, Path] = wave) -> bool:
                    return all(_stream(api, s)["state"] in ("error", "stopped") for s in wave)

                assert wait_for(ended, 60), [_stream(api, s) for s in wave]
                for sid, path in wave.items():
                    s = _stream(api, sid)
                    outcomes[path.name] = (s["state"], s["reason"])
                    assert s["reason"], s
                    assert api.delete(f"/api/v1/streams/{sid}").status_code == 204
                assert svc.proc is not None
                assert svc.proc.poll() is None, "the service crashed"
        for s in healthy:
            assert _stream(api, s["id"])["state"] in ("running", "stopped")
        # The healthy file may have ended: only an error would be wrong.
        assert _stream(api, "healthy-pattern")["state"] == "running"
    errors = sum(state == "error" for state, _ in outcomes.values())
    print(
        f"\n{len(bad)} damaged files: {errors} ended in error, {len(bad) - errors} stopped at "
        f"their end; healthy streams' longest stall {watch.longest_s:.2f} s (limit "
        f"{limit:.2f} s); reasons: "
        f"{sorted({r.split(':')[-1].strip()[:40] for _, r in outcomes.values()})[:8]}"
    )
    assert watch.longest_s <= limit
