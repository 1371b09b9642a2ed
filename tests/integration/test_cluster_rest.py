"""The REST API on any worker of a cluster (issue 15, delivers 2 and 4), with a real broker
(Tansu) and real `vigil serve` workers, each with its embedded Triton, sharing one model
repository.

* Calls about one stream (its info, analytics, snapshot, live view) asked of a worker that
  does not run it are answered by its owner, through the worker asked.
* A model swap asked of one worker is applied by every worker and answered with each one's
  outcome; the streams keep running through it on every worker; a worker that joins later
  serves the cluster's version, not the one its settings name.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.integration.helpers import ServiceProcess, wait_for
from tests.integration.test_cluster import (
    cluster_log,
    cluster_view,
    events_of,
    owners,
    worker_config,
)
from tests.support.kafka import TansuBroker, consume_all, kafka_available, produce
from tests.support.rtsp import RtspCamera, rtsp_server_available
from tests.support.swap_models import tiny_repository

pytestmark = pytest.mark.integration

# `make cluster-campaign` runs the case, 3 workers at the swap (and 6 streams);
# `make test` a lighter one with 2. A 4th (3rd) worker joins afterwards either way.
CAMPAIGN = os.environ.get("TEST_CLUSTER_CAMPAIGN") == "1"
AT_SWAP = ["w1", "w2", "w3"] if CAMPAIGN else ["w1", "w2"]
CONTROL = "vigil-streams"
STREAMS = [f"cam-{i}" for i in range(2 * len(AT_SWAP))]
FPS = 5


@pytest.fixture(scope="module", autouse=True)
def _needs_kafka_tools():
    reason = kafka_available()
    if reason:
        pytest.fail(f"Kafka test tools missing (run `make test`): {reason}")


@pytest.fixture(scope="module")
def camera():
    reason = rtsp_server_available()
    if reason:
        pytest.fail(f"GStreamer RTSP server unavailable (run `make test`): {reason}")
    with RtspCamera(fps=10, width=320, height=240) as cam:
        yield cam


def start_worker(bootstrap: str, base: Path, repo: Path, name: str) -> ServiceProcess:
    run_dir = base / name
    run_dir.mkdir()
    config = worker_config(bootstrap, base, name)
    config["triton"] = {"model_repository": str(repo)}
    config["model"] = {"name": "tiny", "version": 1}
    # untracked: every inferred frame gives an event, so a gap would show
    config["tracking"] = {"enabled": False}
    return ServiceProcess(run_dir, config).start(ready_timeout_s=240)


def check_calls_about_another_workers_stream(api: httpx.Client, bootstrap: str) -> None:
    """w1 passes calls about a stream w2 runs to w2, and streams its answers back."""
    theirs = next(sid for sid, (owner, _) in sorted(owners(api).items()) if owner == "w2")
    info = api.get(f"/api/v1/streams/{theirs}")
    assert info.status_code == 200, info.text
    assert info.headers["x-vigil-worker"] == "w2"
    assert info.json()["id"] == theirs
    assert info.json()["state"] == "running"
    analytics = api.get(f"/api/v1/streams/{theirs}/analytics")
    assert analytics.status_code == 200, analytics.text
    assert analytics.headers["x-vigil-worker"] == "w2"
    bad = api.put(f"/api/v1/streams/{theirs}/analytics", json={"lines": "not a list"})
    assert bad.status_code == 422, bad.text  # the owner's answer, naming the field
    assert "lines" in bad.text
    # analytics set through any worker are part of the spec in the control topic (they move
    # with the stream) and are applied by the owner hot: the stream is not restarted
    before = api.get(f"/api/v1/streams/{theirs}").json()
    door = {"lines": [{"name": "door", "line": [[0, 120], [320, 120]]}]}
    put = api.put(f"/api/v1/streams/{theirs}/analytics", json=door)
    assert put.status_code == 200, put.text
    assert put.headers["x-vigil-worker"] == "w2"
    assert [r["name"] for r in put.json()["config"]["lines"]] == ["door"]
    specs = {r.key: r.value for r in consume_all(bootstrap, CONTROL, timeout_s=10)}
    assert json.loads(specs[theirs.encode()])["analytics"]["lines"][0]["name"] == "door"
    after = api.get(f"/api/v1/streams/{theirs}").json()
    assert after["state"] == "running"
    assert after["frames_processed"] >= before["frames_processed"]  # the same run, going on
    snapshot = api.get(f"/api/v1/streams/{theirs}/snapshot.jpg")
    assert snapshot.status_code == 200, snapshot.text
    assert snapshot.headers["content-type"] == "image/jpeg"
    assert snapshot.content[:2] == b"\xff\xd8"
    with api.stream("GET", f"/api/v1/streams/{theirs}/live.mjpeg?fps=5") as live:
        assert live.status_code == 200
        assert live.headers["x-vigil-worker"] == "w2"
        seen = b""
        for chunk in live.iter_raw():
            seen += chunk
            if seen.count(b"\xff\xd9") >= 2:  # two whole JPEG parts
                break
    mine = next(sid for sid, (owner, _) in sorted(owners(api).items()) if owner == "w1")
    here = api.get(f"/api/v1/streams/{mine}")
    assert here.status_code == 200
    assert "x-vigil-worker" not in here.headers  # answered by w1 itself
    assert api.get("/api/v1/streams/nope/analytics").status_code == 404


def check_recording_commands_reach_the_owner(
    api: httpx.Client, bootstrap: str, workers: dict[str, ServiceProcess], camera_url: str
) -> None:
    """DeepStream test5 ``start-recording`` commands make a clip on the stream's owner,
    whichever worker the command topic's group hands them to (a worker that does not run the
    stream passes the command to its owner's REST API)."""
    added = api.post("/api/v1/streams", json={"id": "door", "url": camera_url})
    assert added.status_code in (201, 202), added.text
    assert wait_for(lambda: owners(api).get("door", (None, ""))[1] == "running", 60, 0.5), owners(
        api
    )
    owner = str(owners(api)["door"][0])
    time.sleep(2.0)  # a pre-event cache to reach into
    past = datetime.now(UTC) - timedelta(seconds=1)
    stamp = past.strftime("%Y-%m-%dT%H:%M:%S.") + f"{past.microsecond // 1000:03d}Z"
    body = json.dumps({"command": "start-recording", "start": stamp, "sensor": {"id": "door"}})
    for key in range(8):  # keys spread them over the command topic's partitions (and workers)
        produce(bootstrap, "vigil-commands", [body.encode()], key=f"k{key}".encode())

    def clips(worker: str) -> list[dict]:
        with httpx.Client(base_url=workers[worker].url, timeout=10) as worker_api:
            return worker_api.get("/api/v1/recordings", params={"stream_id": "door"}).json()[
                "recordings"
            ]

    def applied() -> float:
        total = 0.0
        for svc in workers.values():
            with httpx.Client(base_url=svc.url, timeout=10) as worker_api:
                total += counted(worker_api, "vigil_commands_applied_total").get("applied", 0.0)
        return total

    assert wait_for(lambda: applied() >= 8, 30, 0.5), applied()
    made = clips(owner)
    assert len(made) == 1, made  # the 8 commands started one clip and extended it
    assert all(clips(w) == [] for w in workers if w != owner)


def counted(api: httpx.Client, counter: str) -> dict[str, float]:
    """A counter of a worker's metrics (``vigil_..._total``) by its ``result`` label."""
    found = re.findall(rf'{counter}\{{result="(\w+)"\}} ([0-9.e+]+)', api.get("/metrics").text)
    return {result: float(n) for result, n in found}


def swaps_counted(api: httpx.Client) -> dict[str, float]:
    """``vigil_model_swaps_total`` by result, from a worker's metrics."""
    return counted(api, "vigil_model_swaps_total")


def test_cluster_swap_when_asked_of_one_worker_then_every_worker_serves_it_without_a_gap(
    tmp_path, camera
):
    repo = tiny_repository(tmp_path / "repo")
    with contextlib.ExitStack() as stack:
        broker = stack.enter_context(TansuBroker())
        workers = {
            name: stack.push(start_worker(broker.bootstrap, tmp_path, repo, name))
            for name in AT_SWAP
        }
        api = stack.enter_context(httpx.Client(base_url=workers["w1"].url, timeout=60))
        for sid in STREAMS:
            url = f"test://pattern?width=320&height=240&fps={FPS}"
            added = api.post("/api/v1/streams", json={"id": sid, "url": url})
            assert added.status_code in (201, 202), added.text

        def spread() -> dict[str, int]:
            counts: dict[str, int] = defaultdict(int)
            for owner, state in owners(api).values():
                if state == "running":
                    counts[str(owner)] += 1
            return dict(counts)

        def even() -> bool:  # every stream running, each worker within one of the mean (2)
            counts = spread()
            return sum(counts.values()) == len(STREAMS) and all(
                1 <= counts.get(w, 0) <= 3 for w in AT_SWAP
            )

        assert wait_for(even, 120, 0.5), owners(api)

        check_calls_about_another_workers_stream(api, broker.bootstrap)

        # bad requests change nothing: an unknown version is a 404 naming it
        missing = api.post("/api/v1/models/tiny/swap", json={"version": 9})
        assert missing.status_code == 404, missing.text
        assert "9" in missing.json()["detail"]

        asked_at = datetime.now().astimezone()
        swap = api.post("/api/v1/models/tiny/swap", json={"version": 2})
        swapped_at = datetime.now().astimezone()
        print(f"cluster swap answered in {(swapped_at - asked_at).total_seconds():.2f} s")
        assert swap.status_code == 200, swap.text
        body = swap.json()
        assert body["complete"] is True
        assert body["version"] == 2
        outcome = {w["worker"]: (w["state"], w["serving"]) for w in body["workers"]}
        assert outcome == dict.fromkeys(AT_SWAP, ("ok", "tiny:2")), body
        for svc in workers.values():
            with httpx.Client(base_url=svc.url, timeout=10) as worker_api:
                serving = worker_api.get("/api/v1/models").json()["serving"]
                assert (serving["model"], serving["version"]) == ("tiny", 2)
                assert swaps_counted(worker_api).get("failed", 0) == 0
        assert cluster_view(api)["model"]["version"] == 2
        again = api.post("/api/v1/models/tiny/swap", json={"version": 2})
        assert again.status_code == 409, again.text

        # Every stream went on through the swap on its worker: events on both versions, and
        # no gap between consecutive events longer than a few frames.
        def by_sensor() -> dict[str, list[dict]]:
            seen: dict[str, list[dict]] = defaultdict(list)
            for svc in workers.values():
                for event in events_of(svc.run_dir / "events.jsonl"):
                    seen[event["sensor"]["id"]].append(event)
            return seen

        def after_swap(events: list[dict]) -> int:
            return sum(1 for e in events if datetime.fromisoformat(e["@timestamp"]) > swapped_at)

        assert wait_for(
            lambda: all(after_swap(by_sensor()[sid]) >= 2 * FPS for sid in STREAMS), 30, 0.5
        )
        for sid, events in by_sensor().items():
            events.sort(key=lambda e: e["@timestamp"])
            stamps = [datetime.fromisoformat(e["@timestamp"]) for e in events]
            # from 2 s before the request on (earlier, the streams were still being placed)
            around = [t for t in stamps if (asked_at - t).total_seconds() < 2.0]
            gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(around)]
            print(f"{sid}: longest gap between events through the swap {max(gaps):.2f} s")
            assert max(gaps) < 1.0, f"{sid}: {max(gaps):.2f} s without an event"
            versions = [e["analyticsModule"]["version"] for e in events]
            assert versions[0] == "1", sid
            assert versions[-1] == "2", sid
            assert sum(1 for a, b in itertools.pairwise(versions) if a != b) == 1, sid  # once

        # A worker that joins later serves the cluster's version, not its configured one,
        # before it takes any stream.
        late_name = f"w{len(AT_SWAP) + 1}"
        late = stack.push(start_worker(broker.bootstrap, tmp_path, repo, late_name))
        late_api = stack.enter_context(httpx.Client(base_url=late.url, timeout=10))

        def late_serving() -> tuple[str, int]:
            serving = late_api.get("/api/v1/models").json()["serving"]
            return serving["model"], serving["version"]

        assert wait_for(lambda: late_serving() == ("tiny", 2), 30, 0.5), late_serving()
        assert wait_for(lambda: late_name in spread(), 60, 0.5), (
            f"{owners(api)}\n{cluster_log(tmp_path)}"
        )
        assert wait_for(lambda: events_of(late.run_dir / "events.jsonl"), 30, 0.5)
        late_versions = {
            e["analyticsModule"]["version"] for e in events_of(late.run_dir / "events.jsonl")
        }
        assert late_versions == {"2"}

        check_recording_commands_reach_the_owner(
            api, broker.bootstrap, {**workers, late_name: late}, camera.url
        )
