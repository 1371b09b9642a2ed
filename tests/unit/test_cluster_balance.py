"""The group leader's balance watch: level-triggered, calm first, never mid-move, backs off."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime

from tests.unit.test_cluster_control import KAFKA, record, spec
from vigil.cluster.assignor import Placement
from vigil.cluster.control import encode_spec
from vigil.cluster.status import WorkerStatus
from vigil.cluster.worker import ClusterWorker
from vigil.cluster_settings import ClusterSettings


class NoStreams:
    def __contains__(self, stream_id: str) -> bool:
        return False


def leader(calm_s: float, assignment: dict[str, set[int]], withheld: set[int] = set()):  # noqa: B006
    """A worker that led a generation with ``assignment`` and wants no broker."""
    worker = ClusterWorker(
        KAFKA,
        ClusterSettings(enabled=True, worker_id="w1", partitions=4, rebalance_delay_s=calm_s),
        NoStreams(),  # type: ignore[arg-type]
        lambda: "m:1",
    )
    held = {m: frozenset(ps) for m, ps in assignment.items()}
    target = dict(held)
    if withheld:
        target["m2"] = held["m2"] | frozenset(withheld)
    worker.assignor.led = Placement(
        held, target, frozenset(withheld), partitions=frozenset(range(4))
    )
    return worker


def put_streams(worker: ClusterWorker, per_partition: dict[int, int]) -> None:
    offset = 0
    for partition, count in per_partition.items():
        for i in range(count):
            sid = f"s{partition}-{i}"
            worker.desired._apply(record(sid.encode(), encode_spec(spec(sid)), partition, offset))
            offset += 1


async def requests_within(worker: ClusterWorker, seconds: float) -> list[float]:
    """When the watch asked for a rebalance (each request is taken at once, as the membership
    loop does), over ``seconds``."""
    loop = asyncio.get_running_loop()
    start, asked = loop.time(), []
    watch = asyncio.create_task(worker._watch_balance())
    try:
        while loop.time() - start < seconds:
            await asyncio.sleep(0.05)
            if worker._resubscribe:
                worker._resubscribe = False
                asked.append(loop.time() - start)
    finally:
        watch.cancel()
    return asked


def test_uneven_streams_with_no_change_event_still_get_a_rebalance():
    worker = leader(0.2, {"m1": {0, 1}, "m2": {2, 3}})
    put_streams(worker, {0: 4, 1: 4})  # 8/0
    worker._changed_at = None  # the change event was missed or consumed earlier
    asked = asyncio.run(requests_within(worker, 1.5))
    assert asked
    assert asked[0] < 1.2


def test_an_even_group_gets_no_rebalance():
    worker = leader(0.1, {"m1": {0, 1}, "m2": {2, 3}})
    put_streams(worker, {0: 2, 1: 2, 2: 2, 3: 1})  # 4/3
    assert asyncio.run(requests_within(worker, 1.2)) == []


def test_no_rebalance_while_a_two_step_move_is_under_way():
    worker = leader(0.1, {"m1": {0}, "m2": {2, 3}}, withheld={1})
    put_streams(worker, {0: 4, 1: 4})
    assert asyncio.run(requests_within(worker, 1.2)) == []


def test_streams_still_changing_wait_for_calm():
    worker = leader(0.6, {"m1": {0, 1}, "m2": {2, 3}})
    put_streams(worker, {0: 4, 1: 4})

    async def scenario() -> list[float]:
        worker._changed_at = asyncio.get_running_loop().time()
        return await requests_within(worker, 1.6)

    asked = asyncio.run(scenario())
    assert asked
    assert asked[0] >= 0.6


def test_a_rebalance_that_did_not_help_is_asked_again_later_and_later():
    worker = leader(0.3, {"m1": {0, 1}, "m2": {2, 3}})
    put_streams(worker, {0: 4, 1: 4})
    asked = asyncio.run(requests_within(worker, 4.0))
    gaps = [b - a for a, b in itertools.pairwise(asked)]
    assert len(asked) >= 3
    assert gaps[0] >= 0.6
    assert gaps[1] >= 1.2


class Streams:
    """A stream manager that only remembers what runs."""

    def __init__(self) -> None:
        self.running: dict[str, object] = {}

    def __contains__(self, stream_id: str) -> bool:
        return stream_id in self.running

    def get(self, stream_id: str):
        from vigil.pipeline.stream_state import StreamStatus

        class Managed:
            status = StreamStatus(stream_id, "test://pattern")

        return Managed()

    async def add(self, spec):
        self.running[spec.id] = spec

    async def remove(self, stream_id: str) -> None:
        del self.running[stream_id]


def test_a_worker_at_its_cap_starts_no_more_and_reports_the_rest_pending():
    streams = Streams()
    worker = ClusterWorker(
        KAFKA,
        ClusterSettings(enabled=True, worker_id="w1", partitions=4, max_streams=2),
        streams,  # type: ignore[arg-type]
        lambda: "m:1",
    )
    assert worker.assignor.cap == 2  # claimed in every JoinGroup
    put_streams(worker, {0: 2, 1: 1})
    asyncio.run(worker._apply(frozenset({0, 1})))
    assert len(streams.running) == 2
    reports = {r.id: (r.state, r.reason) for r in worker.status().streams}
    [(waiting, reason)] = [(s, r) for s, (state, r) in reports.items() if state == "pending"]
    assert waiting not in streams.running
    assert "cap of 2" in reason


def holding(worker: ClusterWorker, name: str, partitions: set[int]) -> None:
    """``name``'s latest status, as the status topic would bring it."""
    worker.board.latest[name] = WorkerStatus(
        worker=name,
        at=datetime.now(UTC),
        partitions=sorted(partitions),
        streams=[],
        model="m:1",
        leader=False,
        rebalances=1,
    )


def test_the_second_step_of_a_move_waits_until_the_old_holder_lets_go():
    worker = leader(0.1, {"m1": {0}, "m2": {2, 3}}, withheld={1})
    holding(worker, "w2", {1, 2, 3})  # still syncing the first step

    async def scenario() -> tuple[bool, bool]:
        hand_over = asyncio.create_task(worker._hand_over(frozenset({1})))
        await asyncio.sleep(0.5)
        early = worker._resubscribe
        holding(worker, "w2", {2, 3})  # it applied the first step
        await asyncio.wait_for(hand_over, 1.0)
        return early, worker._resubscribe

    assert asyncio.run(scenario()) == (False, True)


def test_the_second_step_of_a_move_goes_on_after_the_session_timeout_without_word():
    worker = leader(0.1, {"m1": {0}, "m2": {2, 3}}, withheld={1})
    worker.cluster = worker.cluster.model_copy(update={"session_timeout_ms": 600})
    holding(worker, "w2", {1, 2, 3})  # never reports again
    asyncio.run(asyncio.wait_for(worker._hand_over(frozenset({1})), 2.0))
    assert worker._resubscribe
