"""`docker compose` files, checked offline with the real Compose CLI, and the Grafana
dashboard checked against the metrics a real `vigil serve` exposes.

`docker compose config` needs only the CLI and its compose plugin (`make test` installs both;
no Docker daemon). The full stack is started by `make compose-smoke` (docs/deploy.md).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.helpers import ROOT, ServiceProcess, wait_for
from tests.support.kafka import TansuBroker, require_kafka

PROFILES = {"gpu": {"triton", "vigil"}, "cpu": {"vigil-cpu"}}
ALWAYS = {"kafka", "camera", "prometheus", "grafana"}
DASHBOARD = ROOT / "docker" / "grafana" / "dashboards" / "vigil.json"


def compose_config(profile: str) -> dict:
    """``docker compose config`` of ``profile``, as JSON (fails the test if compose does)."""
    if shutil.which("docker") is None:
        pytest.fail("the docker CLI is missing: run `make test` (it installs it)")
    done = subprocess.run(
        ["docker", "compose", "--env-file", ".env.example", "--profile", profile,
         "config", "--format", "json"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    if "unknown command" in done.stderr or "is not a docker command" in done.stderr:
        pytest.fail("the compose plugin is missing: run `make test` (it installs it)")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_compose_config_passes_and_runs_what_the_profile_needs(profile: str) -> None:
    services = compose_config(profile)["services"]
    assert set(services) == ALWAYS | PROFILES[profile]
    for name, service in services.items():
        limits = service.get("deploy", {}).get("resources", {}).get("limits", {})
        assert "memory" in limits, f"{name} has no memory limit"
    vigil = services["vigil" if profile == "gpu" else "vigil-cpu"]
    assert vigil["user"] == "10001:10001"
    assert vigil["read_only"] is True
    assert vigil["cap_drop"] == ["ALL"]
    mounts = {m["target"]: m for m in vigil["volumes"]}
    # The settings directory, not a file: edits (and an OTA override file) reach the container.
    assert mounts["/etc/vigil"]["source"].endswith("docker/compose")
    assert mounts["/models"]["source"].endswith("model_repository")
    assert vigil["depends_on"]["kafka"]["condition"] == "service_healthy"
    if profile == "gpu":
        triton = services["triton"]
        assert triton["ipc"] == "shareable"
        assert vigil["ipc"] == "service:triton", "shared memory across the two containers"
        assert vigil["environment"]["VIGIL_TRITON__URL"] == "triton:8001"
        (device,) = triton["deploy"]["resources"]["reservations"]["devices"]
        assert device["capabilities"] == ["gpu"]
    else:
        assert "VIGIL_TRITON__URL" not in vigil.get("environment", {}), "embedded Triton"
        assert int(vigil["shm_size"]) >= 1 << 30


def test_compose_settings_file_is_valid_vigil_settings() -> None:
    from vigil.config import Settings

    settings = Settings.load(ROOT / "docker" / "compose" / "vigil.yaml")
    assert settings.api.host == "0.0.0.0"
    assert settings.streams[0].url.startswith("rtsp://camera:")
    image_default = Settings.load(ROOT / "docker" / "vigil" / "vigil.yaml")
    assert image_default.api.host == "0.0.0.0"


def test_grafana_dashboard_is_current() -> None:
    done = subprocess.run(
        [sys.executable, "scripts/grafana_dashboard.py", "--check"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def _exposed_names(exposition: str) -> set[str]:
    """Every series name ``/metrics`` can produce, also for families with no sample yet
    (a labelled histogram before its first observation)."""
    names = set()
    for family in text_string_to_metric_families(exposition):
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names.update(family.name + suffix for suffix in ("_bucket", "_count", "_sum"))
    return names


@pytest.mark.integration
def test_grafana_dashboard_queries_only_metrics_vigil_exposes(
    tmp_path, sample_video, reference_model
) -> None:
    require_kafka()
    queried = set()
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel["targets"]:
            queried.update(re.findall(r"\bvigil_[a-z_]+", target["expr"]))
    assert len(queried) >= 10
    line = {"name": "door", "line": [[0, 288], [768, 288]]}
    stream = {"id": "cam", "url": sample_video.as_uri(), "max_fps": 10,
              "analytics": {"lines": [line]}}  # fmt: skip
    with TansuBroker() as broker:
        config = {"kafka": {"bootstrap_servers": broker.bootstrap,
                            "outbox": {"path": str(tmp_path / "outbox.db")}},
                  "data_dir": str(tmp_path / "data"), "streams": [stream]}  # fmt: skip
        with ServiceProcess(tmp_path, config) as svc, httpx.Client(base_url=svc.url) as api:
            assert wait_for(lambda: "vigil_stream_fps{" in api.get("/metrics").text, 60)
            exposed = _exposed_names(api.get("/metrics").text)
    missing = sorted(queried - exposed)
    assert not missing, f"the dashboard queries metrics /metrics does not expose: {missing}"
