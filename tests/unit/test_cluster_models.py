"""The cluster's model (a small fake lifecycle, no broker): a record is applied once, its outcome
reported; a refusal is reported as failed; a shared Triton keeps what the others serve; the
answer waits for every live worker."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Literal

import pytest

from tests.unit.test_cluster_control import KAFKA, record
from vigil.cluster.models import KEY, ClusterModel, DesiredModel
from vigil.cluster.status import StatusBoard, SwapReport, WorkerStatus
from vigil.cluster_settings import ClusterSettings
from vigil.lifecycle import SwapError, SwapRecord, Trigger


class FakeLifecycle:
    """Serves ``(model, version)``; a swap takes ``delay_s``; versions in ``refuse`` fail."""

    def __init__(self, serving: tuple[str, int] = ("m", 1), refuse: set[int] = set()) -> None:  # noqa: B006
        self.serving = serving
        self.refuse = refuse
        self.lock = asyncio.Lock()
        self.swaps: list[tuple[str, int, str]] = []

    @property
    def busy(self) -> bool:
        return self.lock.locked()

    async def check(self, model: str, version: int | Literal["latest"], allow_replan=False) -> int:
        if version == 99:
            raise SwapError("version 99 of m does not exist", 404)
        return 2 if version == "latest" else int(version)

    async def swap(self, model, version, allow_replan=False, trigger: Trigger = "rest"):
        async with self.lock:
            await asyncio.sleep(0.01)
            if version in self.refuse:
                raise SwapError(f"version {version} cannot be loaded", 422)
            self.swaps.append((model, version, trigger))
            self.serving = (model, version)
        return SwapRecord(1, model, version, "m", 1, trigger, "now", state="ok")


def worker_status(worker: str, model: str, swap: SwapReport | None = None) -> bytes:
    status = WorkerStatus(
        worker=worker, at=datetime.now(UTC), partitions=[], streams=[], model=model,
        leader=False, rebalances=1, swap=swap,
    )  # fmt: skip
    return status.model_dump_json().encode()


def desired(version: int, request: str = "r1") -> DesiredModel:
    return DesiredModel(request=request, model="m", version=version, at=datetime.now(UTC), by="w2")


def cluster_model(lifecycle: FakeLifecycle) -> tuple[ClusterModel, StatusBoard]:
    board = StatusBoard(KAFKA, "s", stale_s=10)
    settings = ClusterSettings(enabled=True, worker_id="w1")
    return ClusterModel(KAFKA, settings, lifecycle, board), board


def test_a_record_is_applied_once_with_the_cluster_trigger_and_reported_ok():
    lifecycle = FakeLifecycle()
    models, _ = cluster_model(lifecycle)

    async def scenario() -> None:
        await models._apply(desired(2))
        await models._apply(desired(2))  # the same request again (settle, then the tail)

    asyncio.run(scenario())
    assert lifecycle.swaps == [("m", 2, "cluster")]
    assert models.report is not None
    assert (models.report.state, models.report.serving) == ("ok", "m:2")


def test_a_version_this_worker_cannot_load_is_reported_failed_and_it_keeps_serving():
    lifecycle = FakeLifecycle(refuse={3})
    models, _ = cluster_model(lifecycle)
    asyncio.run(models._apply(desired(3)))
    assert models.report is not None
    assert models.report.state == "failed"
    assert "cannot be loaded" in models.report.error
    assert lifecycle.serving == ("m", 1)


def test_a_swap_waits_for_one_already_running_here():
    lifecycle = FakeLifecycle()
    models, _ = cluster_model(lifecycle)

    async def scenario() -> None:
        async with lifecycle.lock:  # a local swap or a Triton recovery is running
            task = asyncio.create_task(models._apply(desired(2)))
            await asyncio.sleep(0.1)
            assert not task.done()
        await asyncio.wait_for(task, 2)

    asyncio.run(scenario())
    assert lifecycle.serving == ("m", 2)


def test_records_come_from_the_model_topic_key_only():
    models, _ = cluster_model(FakeLifecycle())
    models._apply_record(record(b"other", desired(2).model_dump_json().encode()))
    models._apply_record(record(KEY, b"{not json"))
    assert models.desired is None
    models._apply_record(record(KEY, desired(2).model_dump_json().encode()))
    assert models.desired is not None
    assert models.desired.version == 2


def test_others_serve_lists_versions_of_other_live_workers_only():
    models, board = cluster_model(FakeLifecycle())
    board._apply(record(b"w1", worker_status("w1", "m:5")))  # this worker
    board._apply(record(b"w2", worker_status("w2", "m:1")))
    board._apply(record(b"w3", worker_status("w3", "other:4")))
    assert models.others_serve("m") == {1}
    assert models.others_serve("other") == {4}
    assert models.others_serve("nothing") == set()


def test_the_outcome_waits_for_every_live_worker_then_gives_each():
    models, board = cluster_model(FakeLifecycle())
    want = desired(2)
    board._apply(record(b"w1", worker_status("w1", "m:1")))
    board._apply(record(b"w2", worker_status("w2", "m:2")))  # served it already

    async def scenario():
        pending = await models.outcome(want, timeout_s=0.3)
        assert not pending.complete
        assert {w.worker: w.state for w in pending.workers} == {"w1": "pending", "w2": "ok"}
        report = SwapReport(
            worker="w1", request="r1", model="m", version=2, state="failed", error="no v2"
        )
        board._apply(record(b"w1", worker_status("w1", "m:1", report)))
        return await models.outcome(want, timeout_s=1)

    done = asyncio.run(scenario())
    assert done.complete
    assert {w.worker: (w.state, w.error) for w in done.workers} == {
        "w1": ("failed", "no v2"),
        "w2": ("ok", ""),
    }


def test_a_request_refused_here_or_already_served_everywhere_is_not_written():
    models, board = cluster_model(FakeLifecycle())
    with pytest.raises(SwapError) as unknown:
        asyncio.run(models.request("m", 99, False))
    assert unknown.value.status == 404
    board._apply(record(b"w1", worker_status("w1", "m:2")))
    board._apply(record(b"w2", worker_status("w2", "m:2")))
    with pytest.raises(SwapError) as everywhere:
        asyncio.run(models.request("m", "latest", False))
    assert everywhere.value.status == 409
    assert "every worker" in str(everywhere.value)
