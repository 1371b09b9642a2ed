"""Can the test broker (Tansu) run one consumer group with several members? A probe.

Starts a real :class:`~tests.support.kafka.TansuBroker`, creates a topic with ``--partitions``
partitions, and runs aiokafka consumers (the client Vigil uses) of one group, each in its own
process. Every member prints a JSON line per rebalance callback (revoked / assigned, with a
wall-clock time); this script collects them and runs a scenario:

1. ``--members`` members join (initial assignment);
2. one more member joins;
3. one member is SIGKILLed (the group must notice by the session timeout);
4. one member stops cleanly (LeaveGroup: the group should notice at once).

After each step it waits until the group is stable (every live member's last callback is
"assigned", the assignments are disjoint and cover every partition) and prints the
assignment per member, how long the step took, and how many partitions moved.

Usage: ``python bench/group_probe.py [--members 3] [--partitions 12] [--assignor sticky]``
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.json_lines import JsonLinesProcess
from tests.support.kafka import TansuBroker, create_topic, kafka_available

MEMBER = r"""
import asyncio, json, sys, time, logging
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor

bootstrap, topic, group, name, assignor, session_ms = sys.argv[1:7]
assignors = {"roundrobin": RoundRobinPartitionAssignor, "range": RangePartitionAssignor,
             "sticky": StickyPartitionAssignor}
logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                    format="%(asctime)s " + name + " %(name)s %(levelname)s %(message)s")

def say(event, **fields):
    print(json.dumps({"t": time.time(), "member": name, "event": event, **fields}), flush=True)

class Listener(ConsumerRebalanceListener):
    def on_partitions_revoked(self, revoked):
        say("revoked", partitions=sorted(tp.partition for tp in revoked))
    def on_partitions_assigned(self, assigned):
        say("assigned", partitions=sorted(tp.partition for tp in assigned))

async def main():
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, client_id=name,
        session_timeout_ms=int(session_ms), heartbeat_interval_ms=int(session_ms) // 5,
        partition_assignment_strategy=(assignors[assignor],),
        enable_auto_commit=False, auto_offset_reset="earliest")
    consumer.subscribe([topic], listener=Listener())
    await consumer.start()
    say("started")
    try:
        while True:
            await consumer.getmany(timeout_ms=500)
    finally:
        await consumer.stop()
        say("stopped")

try:
    asyncio.run(main())
except KeyboardInterrupt:
    pass
"""


class Member(JsonLinesProcess):
    """One consumer process and what it reported."""

    def last(self, kind: str) -> dict[str, object] | None:
        found = [e for e in self.events if e["event"] == kind]
        return found[-1] if found else None


class Probe:
    """Runs member processes and reads their reports."""

    def __init__(self, bootstrap: str, topic: str, assignor: str, session_ms: int) -> None:
        self.args = [bootstrap, topic, "probe-group", "", assignor, str(session_ms)]
        self.members: dict[str, Member] = {}
        self.lock = threading.Lock()

    def spawn(self, name: str) -> Member:
        args = list(self.args)
        args[3] = name
        member = Member.spawn(name, [sys.executable, "-c", MEMBER, *args], lock=self.lock)
        self.members[name] = member
        return member

    def assignment(self) -> dict[str, list[int]] | None:
        """The assignment once stable (None while a rebalance is going on)."""
        with self.lock:
            result: dict[str, list[int]] = {}
            for member in self.members.values():
                if not member.alive:
                    continue
                callbacks = [e for e in member.events if e["event"] in ("assigned", "revoked")]
                if not callbacks or callbacks[-1]["event"] != "assigned":
                    return None
                result[member.name] = list(callbacks[-1]["partitions"])  # type: ignore[call-overload]
        return result

    def wait_stable(
        self, partitions: int, since: float, timeout_s: float, expect_members: int
    ) -> tuple[dict[str, list[int]] | None, float]:
        """Wait for a complete, disjoint assignment over ``expect_members`` members whose last
        callback came after ``since``; returns it and the time of the last callback."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            current = self.assignment()
            if current is not None and len(current) == expect_members:
                owned = [p for ps in current.values() for p in ps]
                with self.lock:
                    last = max(
                        (
                            float(e["t"])  # type: ignore[arg-type]
                            for m in self.members.values()
                            if m.alive
                            for e in m.events
                            if e["event"] == "assigned"
                        ),
                        default=0.0,
                    )
                if sorted(owned) == list(range(partitions)) and last > since:
                    # settle: no further callback for a moment
                    time.sleep(1.0)
                    if self.assignment() == current:
                        return current, last
            time.sleep(0.2)
        return None, 0.0

    def stop_all(self) -> None:
        for member in self.members.values():
            if member.alive:
                member.process.kill()
            member.process.wait()


def moved(before: dict[str, list[int]], after: dict[str, list[int]]) -> int:
    """Partitions whose owner changed (those of a member that left count as moved)."""
    owner = {p: m for m, ps in before.items() for p in ps}
    return sum(1 for m, ps in after.items() for p in ps if owner.get(p) != m)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=12)
    parser.add_argument("--assignor", choices=("roundrobin", "range", "sticky"), default="sticky")
    parser.add_argument("--session-ms", type=int, default=6000)
    parser.add_argument("--step-timeout", type=float, default=60.0)
    args = parser.parse_args()
    reason = kafka_available()
    if reason:
        print(reason)
        return 2
    report: list[dict[str, object]] = []
    with TansuBroker() as broker:
        create_topic(broker.bootstrap, "probe", partitions=args.partitions)
        probe = Probe(broker.bootstrap, "probe", args.assignor, args.session_ms)
        previous: dict[str, list[int]] = {}
        try:

            def step(label: str, started: float, expect: int) -> bool:
                nonlocal previous
                current, last = probe.wait_stable(
                    args.partitions, started, args.step_timeout, expect
                )
                row: dict[str, object] = {"step": label}
                if current is None:
                    row["result"] = f"no stable assignment within {args.step_timeout:g} s"
                    row["seen"] = probe.assignment()
                    report.append(row)
                    print(json.dumps(row), flush=True)
                    return False
                row |= {
                    "settled_s": round(last - started, 2),
                    "assignment": {m: current[m] for m in sorted(current)},
                    "moved": moved(previous, current) if previous else None,
                }
                report.append(row)
                print(json.dumps(row), flush=True)
                previous = current
                return True

            started = time.time()
            for i in range(args.members):
                probe.spawn(f"m{i + 1}")
            ok = step(f"{args.members} members join", started, args.members)
            n = args.members
            if ok:
                started = time.time()
                probe.spawn(f"m{n + 1}")
                n += 1
                ok = step("one member joins", started, n)
            if ok:
                victim = probe.members["m1"]
                started = time.time()
                os.kill(victim.process.pid, signal.SIGKILL)
                victim.process.wait()
                n -= 1
                ok = step("m1 SIGKILLed", started, n)
            if ok:
                leaver = probe.members["m2"]
                started = time.time()
                leaver.process.send_signal(signal.SIGINT)
                leaver.process.wait(timeout=30)
                n -= 1
                step("m2 leaves (SIGINT: LeaveGroup)", started, n)
        finally:
            probe.stop_all()
            errors = {m.name: m.log[-5:] for m in probe.members.values() if m.log}
            if errors:
                print(json.dumps({"member_stderr_tail": errors}, indent=1))
            broker_log = broker.stderr_text() if hasattr(broker, "stderr_text") else ""
            interesting = [
                line for line in broker_log.splitlines() if "ERROR" in line or "WARN" in line
            ]
            print(json.dumps({"broker_warnings": interesting[-20:]}, indent=1))
    print(json.dumps({"assignor": args.assignor, "session_ms": args.session_ms, "steps": report}))
    return 0 if all("settled_s" in r for r in report) else 1


if __name__ == "__main__":
    sys.exit(main())
