"""The worker group through a real broker (Tansu), with workers in separate processes.

Each worker is the real :class:`~vigil.cluster.worker.ClusterWorker` (consumer group,
assignor, control and status topics) over a ledger instead of a pipeline
(``tests/support/cluster_member.py``), so the group's behaviour is checked from the outside
in seconds: the spread of 12 streams over 3 workers, failover after ``kill -9``, a 4th worker
joining, and that no stream ever runs on two workers at once.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.integration.helpers import wait_for
from tests.support.json_lines import JsonLinesProcess
from tests.support.kafka import TansuBroker, kafka_available
from vigil.cluster.control import DesiredStreams
from vigil.config import KafkaSettings
from vigil.specs import StreamSpec

pytestmark = pytest.mark.integration

# The pause and broker-outage cases take minutes more on a 2-core machine: `make
# cluster-campaign` runs them (and the others) in a loop; `make test` runs the kill/join case.
campaign_only = pytest.mark.skipif(
    os.environ.get("TEST_CLUSTER_CAMPAIGN") != "1",
    reason="multi-worker cluster test: run it with `make cluster-campaign`",
)

ROOT = Path(__file__).resolve().parents[2]
SESSION_S = 6.0  # tests/support/cluster_member.py
STREAMS = [f"cam-{i:02d}" for i in range(12)]


@pytest.fixture(scope="module", autouse=True)
def _needs_kafka_tools():
    reason = kafka_available()
    if reason:
        pytest.fail(f"Kafka test tools missing (run `make test`): {reason}")


class Group:
    """Worker processes of one group, and the ledger of where each stream ran when."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.members: dict[str, JsonLinesProcess] = {}
        self.lock = threading.Lock()

    def spawn(self, name: str) -> JsonLinesProcess:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        argv = [sys.executable, "-m", "tests.support.cluster_member", self.bootstrap, name]
        member = JsonLinesProcess.spawn(name, argv, lock=self.lock, cwd=ROOT, env=env)
        self.members[name] = member
        return member

    def intervals(self) -> dict[str, list[tuple[str, float, float | None]]]:
        """Stream → [(worker, started, stopped or None)] in start order."""
        found: dict[str, list[tuple[str, float, float | None]]] = {}
        with self.lock:
            for member in self.members.values():
                open_at: dict[str, float] = {}
                for e in member.events:
                    if e["event"] == "start":
                        open_at[e["stream"]] = e["t"]
                    elif e["event"] == "stop":
                        found.setdefault(e["stream"], []).append(
                            (member.name, open_at.pop(e["stream"]), e["t"])
                        )
                # a killed worker's streams ended when it died (set by kill())
                end = getattr(member, "died_at", None)
                for stream, started in open_at.items():
                    found.setdefault(stream, []).append((member.name, started, end))
        return {s: sorted(v, key=lambda i: i[1]) for s, v in found.items()}

    def owners(self) -> dict[str, list[str]]:
        """Stream → the workers running it now."""
        return {
            s: [w for w, _, stop in spans if stop is None] for s, spans in self.intervals().items()
        }

    def overlaps(self) -> list[tuple[str, str, str, float]]:
        """(stream, worker, worker, seconds) for every time a stream ran on two at once."""
        found = []
        for stream, spans in self.intervals().items():
            for i, (w1, a1, b1) in enumerate(spans):
                for w2, a2, b2 in spans[i + 1 :]:
                    overlap = min(b1 or math.inf, b2 or math.inf) - max(a1, a2)
                    if overlap > 0:
                        found.append((stream, w1, w2, overlap))
        return found

    def stable(self, workers: set[str], settle_s: float = 3.0) -> dict[str, list[str]] | None:
        """The placement (worker → streams) once every stream runs exactly once on one of
        ``workers`` and nothing changed for ``settle_s``; None otherwise."""
        owners = self.owners()
        if sorted(owners) != STREAMS or any(
            len(o) != 1 or o[0] not in workers for o in owners.values()
        ):
            return None
        with self.lock:
            last = max((e["t"] for m in self.members.values() for e in m.events), default=0)
        if time.time() - last < settle_s:
            return None
        placement: dict[str, list[str]] = {w: [] for w in workers}
        for stream, (worker,) in owners.items():
            placement[worker].append(stream)
        return placement

    def kill(self, name: str) -> float:
        member = self.members[name]
        member.process.send_signal(signal.SIGKILL)
        member.process.wait()
        died = time.time()
        member.died_at = died  # type: ignore[attr-defined]
        return died

    def stop_all(self) -> None:
        for member in self.members.values():
            if member.process.poll() is None:
                member.process.send_signal(signal.SIGTERM)
        for member in self.members.values():
            try:
                member.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                member.process.kill()
                member.process.wait()

    def decisions(self) -> list[str]:
        """The assignors' and workers' decisions, in time order (for failure messages)."""
        keys = ("assignment epoch", "owns partitions", "lost its group", "uneven")
        found = [
            line for m in self.members.values() for line in m.log if any(k in line for k in keys)
        ]
        return sorted(found)

    def logs(self) -> str:
        return "\n".join(line for m in self.members.values() for line in m.log[-40:])


def write_streams(bootstrap: str, ids: list[str]) -> None:
    """Add streams the way the REST API does: through :class:`DesiredStreams`."""

    async def put() -> None:
        desired = DesiredStreams(KafkaSettings(bootstrap_servers=bootstrap), "vigil-streams")
        try:
            for stream_id in ids:
                await desired.put(StreamSpec(id=stream_id, url="test://pattern?fps=1"))
        finally:
            await desired.close()

    asyncio.run(put())


def test_group_when_workers_die_and_join_then_streams_move_little_and_never_run_twice():
    with TansuBroker() as broker:
        group = Group(broker.bootstrap)
        try:
            for name in ("w1", "w2", "w3"):
                group.spawn(name)
            assert wait_for(lambda: all(m.events for m in group.members.values()), 30)
            write_streams(broker.bootstrap, STREAMS)

            # 3 workers, 12 streams: 4/4/4 (±1)
            assert wait_for(lambda: group.stable({"w1", "w2", "w3"}), 60, 0.5), (
                group.owners(),
                group.logs(),
            )
            three = group.stable({"w1", "w2", "w3"}, settle_s=0)
            assert three is not None
            counts = sorted(len(s) for s in three.values())
            assert 3 <= counts[0] <= counts[-1] <= 5, three  # 4 each (±1)

            # a 4th worker joins: at most ⌈12/4⌉ = 3 streams move, all of them to it
            group.spawn("w4")
            four_workers = {"w1", "w2", "w3", "w4"}
            assert wait_for(
                lambda: (p := group.stable(four_workers)) is not None and p["w4"], 60, 0.5
            ), (group.owners(), group.logs())
            four = group.stable(four_workers, settle_s=0)
            assert four is not None
            moved = {s for w, streams in four.items() for s in streams if s not in three.get(w, [])}
            assert moved == set(four["w4"])
            assert len(moved) <= math.ceil(len(STREAMS) / 4), four

            # kill -9: the victim's streams run on survivors within session timeout + 5 s,
            # and the others never stop
            victim = four["w1"]
            died = group.kill("w1")
            survivors = {"w2", "w3", "w4"}
            assert wait_for(lambda: group.stable(survivors), SESSION_S + 30, 0.5), (
                group.owners(),
                group.logs(),
            )
            spans = group.intervals()
            gaps = {s: spans[s][-1][1] - died for s in victim}
            assert max(gaps.values()) <= SESSION_S + 5, gaps
            after_kill = group.stable(survivors, settle_s=0)
            assert after_kill is not None
            for worker, streams in after_kill.items():
                for stream in streams:
                    if stream not in victim:
                        assert stream in four[worker], (stream, spans[stream])
                        assert spans[stream][-1][2] is None

            assert group.overlaps() == [], group.overlaps()
            print(
                "\ncluster figures: "
                + json.dumps(
                    {
                        "three_workers": {w: len(s) for w, s in sorted(three.items())},
                        "kill_gap_s": {
                            "median": round(statistics.median(gaps.values()), 2),
                            "min": round(min(gaps.values()), 2),
                            "max": round(max(gaps.values()), 2),
                            "streams": len(gaps),
                        },
                        "join_moved": len(moved),
                        "after_join": {w: len(s) for w, s in sorted(four.items())},
                        "after_kill": {w: len(s) for w, s in sorted(after_kill.items())},
                    }
                )
            )
        finally:
            group.stop_all()


def settled_group(group: Group, bootstrap: str, workers: set[str]) -> dict:
    """Start ``workers``, write the streams, and return the placement once it is stable."""
    for name in sorted(workers):
        group.spawn(name)
    assert wait_for(lambda: all(m.events for m in group.members.values()), 30)
    write_streams(bootstrap, STREAMS)
    assert wait_for(lambda: group.stable(workers), 60, 0.5), (group.owners(), group.logs())
    before = group.stable(workers, settle_s=0)
    assert before is not None
    return before


@campaign_only
def test_group_when_a_worker_is_paused_past_its_session_then_it_stops_its_streams_on_resume():
    with TansuBroker() as broker:
        group = Group(broker.bootstrap)
        try:
            workers = {"w1", "w2", "w3"}
            before = settled_group(group, broker.bootstrap, workers)
            victim = before["w1"]

            # SIGSTOP past the session timeout: the others take its streams over
            w1 = group.members["w1"].process
            w1.send_signal(signal.SIGSTOP)
            paused = time.time()

            def taken_over() -> bool:
                owners = group.owners()
                return all(set(owners[s]) - {"w1"} for s in victim)

            assert wait_for(taken_over, SESSION_S + 30, 0.5), (group.owners(), group.logs())
            spans = group.intervals()
            takeover = {s: spans[s][-1][1] - paused for s in victim}

            # SIGCONT: it finds out it lost its membership and stops them within 2 s
            time.sleep(1.0)
            w1.send_signal(signal.SIGCONT)
            resumed = time.time()

            def stopped_on_w1() -> bool:
                return all("w1" not in group.owners()[s] for s in victim)

            assert wait_for(stopped_on_w1, 10, 0.1), (group.owners(), group.logs())
            spans = group.intervals()
            stop_delay = {
                s: max(stop for w, _, stop in spans[s] if w == "w1" and stop) - resumed
                for s in victim
            }
            assert max(stop_delay.values()) <= 2.0, stop_delay
            # every overlap is the frozen worker's, and ends within 2 s of its resume
            for stream, a, b, _ in group.overlaps():
                assert "w1" in (a, b), (stream, a, b)

            # it rejoins and the group evens out again, with every stream once: 4 (±1) each.
            # A rejoin can leave it uneven for one generation; the leader's balance check
            # then asks for a rebalance (rebalance_delay_s after the last change).
            def even() -> bool:
                placement = group.stable(workers)
                counts = sorted(len(s) for s in (placement or {}).values())
                return bool(placement and placement["w1"]) and 3 <= counts[0] <= counts[-1] <= 5

            if not wait_for(even, 60, 0.5):
                decisions = "\n".join(group.decisions())
                pytest.fail(f"uneven: {group.stable(workers, settle_s=0)}\n{decisions}")
            after = group.stable(workers, settle_s=0)
            assert after is not None
            print(
                "\npause figures: "
                + json.dumps(
                    {
                        "takeover_s": {
                            "median": round(statistics.median(takeover.values()), 2),
                            "max": round(max(takeover.values()), 2),
                        },
                        "stop_after_resume_s": {
                            "median": round(statistics.median(stop_delay.values()), 2),
                            "max": round(max(stop_delay.values()), 2),
                        },
                        "overlap_s": round(max(o for *_, o in group.overlaps()), 2),
                        "after": {w: len(s) for w, s in sorted(after.items())},
                    }
                )
            )
        finally:
            for member in group.members.values():
                if member.process.poll() is None:
                    member.process.send_signal(signal.SIGCONT)
            group.stop_all()


@campaign_only
def test_group_when_the_broker_is_down_30s_then_nothing_moves_or_restarts():
    with TansuBroker() as broker:
        group = Group(broker.bootstrap)
        try:
            workers = {"w1", "w2", "w3"}
            before = settled_group(group, broker.bootstrap, workers)
            epochs_before = sum(
                "assignment epoch" in line for m in group.members.values() for line in m.log
            )
            down = time.time()
            broker.pause()  # connections stay open, nothing answers: a hung broker
            time.sleep(30)
            broker.resume()
            # the group re-forms (Tansu expires the sessions it did not hear from)
            time.sleep(4 * SESSION_S)
            changes = [e for m in group.members.values() for e in m.events if e["t"] > down]
            assert changes == [], changes  # no stream stopped or restarted
            after = group.stable(workers, settle_s=0)
            assert after is not None
            assert {w: set(s) for w, s in after.items()} == {w: set(s) for w, s in before.items()}
            rebalances = (
                sum("assignment epoch" in line for m in group.members.values() for line in m.log)
                - epochs_before
            )
            print(f"\nbroker outage figures: {json.dumps({'rebalances_after': rebalances})}")
            assert rebalances <= 3  # no storm: the group re-forms once or twice
        finally:
            group.stop_all()
