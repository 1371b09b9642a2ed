"""``vigil run --workers``: a job's streams over worker processes sharing one real Triton.

Real Triton (embedded, started by the module fixture), real decoding of H.264 files, real
worker processes. The workers must give what one process gives (every frame, the same
tracks per stream), keep track ids apart, fail only the streams of a worker that is killed,
stop on request, and leave no process, shared-memory segment or Triton registration behind.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import REPOSITORY
from tests.support.clips import make_clip
from vigil.config import Settings
from vigil.job_workers import JobWorkerError, WorkerJob
from vigil.jobs import run_streams
from vigil.pipeline.stream_state import StreamState
from vigil.shm_segments import NAME_PREFIX, SHM_DIR, pid_alive
from vigil.specs import StreamSpec
from vigil.triton_connection import TritonConnection

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

FRAMES = 60


@pytest.fixture(scope="module")
def module_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    base = Settings()
    return base.model_copy(
        update={
            "run_dir": tmp_path_factory.mktemp("run"),
            "data_dir": tmp_path_factory.mktemp("data"),
            "triton": base.triton.model_copy(update={"model_repository": REPOSITORY}),
            "tracking": base.tracking.model_copy(update={"enabled": True}),
        }
    )


@pytest.fixture(scope="module")
def clip(sample_video: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(sample_video, FRAMES, tmp_path_factory.mktemp("clip") / "vtest.mp4")


@pytest.fixture
def job_settings(module_settings: Settings, tmp_path: Path) -> Settings:
    events = module_settings.events.model_copy(update={"jsonl_path": tmp_path / "events.jsonl"})
    return module_settings.model_copy(update={"events": events})


def _specs(clip: Path, count: int, **extra: object) -> list[StreamSpec]:
    return [StreamSpec(id=f"cam-{i}", url=clip.as_uri(), **extra) for i in range(1, count + 1)]


def _tracks(path: Path) -> dict[str, list[tuple]]:
    """Per sensor, its events in order as (track number in order of appearance, box, type)."""
    seen: dict[str, dict[str, int]] = {}
    out: dict[str, list[tuple]] = {}
    for line in path.read_text().splitlines():
        event = json.loads(line)
        sensor, obj = event["sensor"]["id"], event["object"]
        numbers = seen.setdefault(sensor, {})
        number = numbers.setdefault(obj["id"], len(numbers))
        box = tuple(obj["bbox"].values())
        out.setdefault(sensor, []).append((number, box, event["event"]["type"]))
    return out


def _ids_by_sensor(path: Path) -> dict[str, set[str]]:
    ids: dict[str, set[str]] = {}
    for line in path.read_text().splitlines():
        event = json.loads(line)
        ids.setdefault(event["sensor"]["id"], set()).add(event["object"]["id"])
    return ids


def _segments_of(pids: list[int]) -> list[str]:
    prefixes = tuple(f"{NAME_PREFIX}{pid}_" for pid in pids)
    return [p.name for p in SHM_DIR.glob(f"{NAME_PREFIX}*") if p.name.startswith(prefixes)]


async def _regions_of(triton: TritonConnection, pids: list[int]) -> list[str]:
    prefixes = tuple(f"{NAME_PREFIX}{pid}_" for pid in pids)
    return [r for r in await triton.client.registered_regions() if r.startswith(prefixes)]


async def _until(condition: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


@pytest.fixture
def reaped() -> Iterator[list[int]]:
    """Worker pids a test saw; after it, none of them may be alive."""
    pids: list[int] = []
    yield pids
    assert not [p for p in pids if pid_alive(p)], "a worker process outlived its job"


async def test_two_workers_give_every_frame_and_the_same_tracks_as_one_process(
    triton: TritonConnection, job_settings: Settings, clip: Path, tmp_path: Path, reaped
) -> None:
    specs = _specs(clip, 3)
    one = job_settings.model_copy(
        update={
            "events": job_settings.events.model_copy(update={"jsonl_path": tmp_path / "1.jsonl"})
        }
    )
    alone = await run_streams(one, specs, connection=triton)

    job = WorkerJob(job_settings, specs, workers=2, report_s=0.1)
    result = await job.run(triton)
    reaped.extend(job.pids)

    assert len(job.pids) == 2
    assert [s.id for share in job.shares for s in share] == ["cam-1", "cam-3", "cam-2"]
    for sid, status in result.streams.items():
        assert status.state is StreamState.STOPPED, (sid, status.reason)
        assert status.stats.frames_processed == FRAMES
        assert status.stats.latency_percentile_ms(50) is not None  # the window came back
    events = job_settings.events.jsonl_path
    assert result.events_written == alone.events_written > 0
    assert len(events.read_text().splitlines()) == result.events_written
    assert not (tmp_path / "events.worker-1.jsonl").exists(), "the files were not merged"
    assert not (tmp_path / "events.worker-2.jsonl").exists()
    # the same tracks per stream; only the ids' numbering differs
    assert _tracks(events) == _tracks(tmp_path / "1.jsonl")
    # ids never meet across the workers' streams (worker 1: odd, worker 2: even)
    ids = _ids_by_sensor(events)
    assert not ids["cam-1"] & ids["cam-2"]
    assert not ids["cam-3"] & ids["cam-2"]
    assert {int(i) % 2 for i in ids["cam-2"]} == {0}
    # progress reports covered the run, from every worker
    assert job.progress.samples[-1][1] == 3 * FRAMES
    await asyncio.sleep(0)
    assert not _segments_of(job.pids)
    assert not await _regions_of(triton, job.pids)


async def test_a_killed_worker_fails_only_its_streams_and_is_swept(
    triton: TritonConnection, job_settings: Settings, clip: Path, reaped
) -> None:
    job = WorkerJob(job_settings, _specs(clip, 4, max_fps=15.0), workers=2, report_s=0.1)
    run = asyncio.create_task(job.run(triton))
    await _until(lambda: len(job.progress.samples) >= 4)
    reaped.extend(job.pids)
    victim = job.pids[1]
    os.kill(victim, signal.SIGKILL)
    result = await asyncio.wait_for(run, 120)

    for sid in ("cam-2", "cam-4"):  # worker 2's
        status = result.streams[sid]
        assert status.state is StreamState.ERROR
        assert "worker 2" in status.reason, status.reason
        assert "code -9" in status.reason, status.reason
    for sid in ("cam-1", "cam-3"):
        status = result.streams[sid]
        assert status.state is StreamState.STOPPED, status.reason
        assert status.stats.frames_processed == FRAMES
    assert not _segments_of([victim]), "the killed worker's segments were not swept"
    assert not await _regions_of(triton, [victim])


async def test_stopping_a_job_stops_every_worker_with_its_counts(
    triton: TritonConnection, job_settings: Settings, sample_video: Path, reaped
) -> None:
    # the whole of vtest.avi at 10 fps would take 80 s: it is stopped after a few reports
    specs = [StreamSpec(id=f"live-{i}", url=sample_video.as_uri(), max_fps=10.0) for i in (1, 2)]
    job = WorkerJob(job_settings, specs, workers=2, report_s=0.1)
    run = asyncio.create_task(job.run(triton))
    await _until(lambda: all(s.stats.frames_processed >= 5 for s in job.statuses.values()))
    reaped.extend(job.pids)
    started = time.monotonic()
    job.stop()
    result = await asyncio.wait_for(run, 60)
    assert time.monotonic() - started < 20
    for status in result.streams.values():
        assert status.state is StreamState.STOPPED
        assert 5 <= status.stats.frames_processed < 795
    assert result.events_written == len(job_settings.events.jsonl_path.read_text().splitlines())
    assert not _segments_of(job.pids)


async def test_cancelling_a_job_ends_its_workers(
    triton: TritonConnection, job_settings: Settings, sample_video: Path, reaped
) -> None:
    specs = [StreamSpec(id="live-1", url=sample_video.as_uri(), max_fps=10.0)]
    specs.append(StreamSpec(id="live-2", url=sample_video.as_uri(), max_fps=10.0))
    job = WorkerJob(job_settings, specs, workers=2, report_s=0.1)
    run = asyncio.create_task(job.run(triton))
    await _until(lambda: len(job.progress.samples) >= 2)
    reaped.extend(job.pids)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert not [p for p in job.pids if pid_alive(p)]
    assert not _segments_of(job.pids)
    assert not await _regions_of(triton, job.pids)


async def test_an_unknown_model_is_a_clear_error_and_leaves_no_worker(
    triton: TritonConnection, job_settings: Settings, clip: Path, reaped
) -> None:
    bad = job_settings.model_copy(
        update={"model": job_settings.model.model_copy(update={"name": "no_such_model"})}
    )
    job = WorkerJob(bad, _specs(clip, 2), workers=2)
    with pytest.raises(JobWorkerError, match=r"worker 1: .*no_such_model"):
        await job.run(triton)
    reaped.extend(job.pids)
    assert not [p for p in job.pids if pid_alive(p)]
