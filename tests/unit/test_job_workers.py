"""Unit tests of the pieces of ``vigil run --workers`` that need no process: how streams are
dealt, the per-worker files, progress sums, status snapshots and disjoint track ids."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vigil.cli import build_parser
from vigil.config import Settings
from vigil.job_workers import WorkerJob, WorkerProgress, _part
from vigil.pipeline.stream_state import StreamState, StreamStatus
from vigil.specs import StreamSpec
from vigil.stages.tracking import TrackIds


def _specs(n: int) -> list[StreamSpec]:
    return [StreamSpec(id=f"s{i}", url=f"file:///v{i}.mp4") for i in range(n)]


def test_streams_are_dealt_round_robin_and_never_to_an_idle_worker() -> None:
    job = WorkerJob(Settings(), _specs(5), workers=2)
    assert [[s.id for s in share] for share in job.shares] == [["s0", "s2", "s4"], ["s1", "s3"]]
    assert len(WorkerJob(Settings(), _specs(2), workers=8).shares) == 2


@pytest.mark.parametrize("workers", [0, -1])
def test_fewer_than_one_worker_is_refused(workers: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        WorkerJob(Settings(), _specs(1), workers=workers)


def test_a_job_without_streams_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one stream"):
        WorkerJob(Settings(), [], workers=2)


def test_workers_get_their_own_event_and_outbox_files_and_disjoint_track_ids(
    tmp_path: Path,
) -> None:
    base = Settings()
    settings = base.model_copy(
        update={
            "data_dir": tmp_path,
            "events": base.events.model_copy(update={"jsonl_path": tmp_path / "ev.jsonl"}),
        }
    )
    job = WorkerJob(settings, _specs(6), workers=3)
    second = job._worker_settings(1, "127.0.0.1:9", ("det", 4))
    assert second.triton.url == "127.0.0.1:9"
    assert (second.model.name, second.model.version) == ("det", 4)
    assert second.events.jsonl_path == tmp_path / "ev.worker-2.jsonl"
    assert second.kafka.outbox.path == tmp_path / "outbox.worker-2.db"
    assert (second.tracking.id_first, second.tracking.id_step) == (2, 3)
    first = job._worker_settings(0, "127.0.0.1:9", None)
    assert first.model.version == settings.model.version  # the first loads by the usual rules
    # what a worker reads back from the job line
    again = Settings.model_validate(json.loads(json.dumps(second.model_dump(mode="json"))))
    assert again.events.jsonl_path == second.events.jsonl_path


def test_part_names_keep_the_suffix() -> None:
    assert _part(Path("/x/events.jsonl"), 0) == Path("/x/events.worker-1.jsonl")
    assert _part(Path("/x/outbox.db"), 9) == Path("/x/outbox.worker-10.db")


def test_progress_sums_each_workers_latest_report() -> None:
    progress = WorkerProgress()
    progress.add(0, 1.0, 10)
    progress.add(1, 1.1, 5)
    progress.add(0, 1.5, 30)
    assert progress.samples == [(1.0, 10), (1.1, 15), (1.5, 35)]


def test_a_status_snapshot_reads_back_with_counters_and_latencies() -> None:
    status = StreamStatus("cam", "file:///v.mp4")
    status.transition(StreamState.RUNNING)
    status.transition(StreamState.ERROR, "decoder died")
    status.expected_frames = 100
    stats = status.stats
    stats.frames_processed, stats.decode_errors = 42, 2
    stats.detections["person"] += 7
    stats.dropped["queue_full"] += 3
    for i in range(5000):  # more than the window holds: the oldest are overwritten
        stats.latencies_s.append(i / 1000)
    data = json.loads(json.dumps(status.snapshot(latencies=True)))
    back = StreamStatus.restored(data)
    assert (back.state, back.reason, back.last_error) == (
        StreamState.ERROR,
        "decoder died",
        "decoder died",
    )
    assert back.expected_frames == 100
    assert (back.stats.frames_processed, back.stats.decode_errors) == (42, 2)
    assert back.stats.detections == {"person": 7}
    assert back.stats.frames_dropped == 3
    assert back.stats.latencies_s.values() == stats.latencies_s.values()
    assert back.stats.latencies_s.values()[0] == pytest.approx(0.904)
    assert back.stats.latency_percentile_ms(99) == stats.latency_percentile_ms(99)
    assert "latencies_s" not in status.snapshot()  # progress reports stay small


def test_track_ids_in_steps_never_meet() -> None:
    odd, even = TrackIds(1, 2), TrackIds(2, 2)
    first = {odd() for _ in range(50)}
    second = {even() for _ in range(50)}
    assert not first & second
    assert min(first) == 1
    assert min(second) == 2


def test_the_cli_takes_workers_and_refuses_fewer_than_one(capsys: pytest.CaptureFixture) -> None:
    args = build_parser().parse_args(["run", "--source", "a.mp4", "--workers", "3"])
    assert args.workers == 3
    assert build_parser().parse_args(["run", "--source", "a.mp4"]).workers == 1
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["run", "--source", "a.mp4", "--workers", "0"])
    assert exit_info.value.code == 2
    assert "--workers: must be at least 1, not 0" in capsys.readouterr().err
