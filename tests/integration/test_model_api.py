"""The model registry over REST and the OTA override file, against a real `vigil serve`."""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.integration.helpers import ServiceProcess, assert_clean, wait_for
from tests.support.swap_models import VERSION_1, tiny_detector, tiny_repository

pytestmark = pytest.mark.integration


def _configmap(root: Path, generation: str, content: str) -> Path:
    """Write ``content`` as Kubernetes does a ConfigMap update: a new timestamped directory,
    then an atomic swap of the ``..data`` symlink. Returns the mounted file's path."""
    root.mkdir(exist_ok=True)
    (root / generation).mkdir()
    (root / generation / "override.yaml").write_text(content)
    tmp_link = root / "..data_tmp"
    tmp_link.symlink_to(generation)
    os.replace(tmp_link, root / "..data")
    mounted = root / "override.yaml"
    if not mounted.is_symlink():
        mounted.symlink_to("..data/override.yaml")
    return mounted


def _serving(client: httpx.Client) -> tuple[str, int]:
    body = client.get("/api/v1/models").json()
    return body["serving"]["model"], body["serving"]["version"]


def test_models_over_rest_and_ota(tmp_path: Path) -> None:
    repo = tiny_repository(tmp_path / "repo")
    ota = _configmap(tmp_path / "ota", "..2026_11_21_a", "version: 2\n")
    config = {
        "triton": {"model_repository": str(repo)},
        "model": {"name": "tiny", "ota_override_file": str(ota), "ota_poll_s": 0.2},
        "data_dir": str(tmp_path / "data"),
        "streams": [{"id": "cam-1", "url": "test://pattern?width=320&height=240&fps=10"}],
    }
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    svc = ServiceProcess(run_dir, config)
    with svc, httpx.Client(base_url=svc.url, timeout=120) as api:
        listing = api.get("/api/v1/models").json()
        assert listing["serving"] == {"model": "tiny", "version": 2}
        (tiny,) = listing["models"]
        assert [v["version"] for v in tiny["versions"]] == [1, 2]
        v2 = tiny["versions"][1]
        assert v2["state"] == "READY"
        assert v2["serving"] is True
        assert v2["sha256"] == hashlib.sha256((repo / "tiny/2/model.onnx").read_bytes()).hexdigest()
        assert v2["signature"]["inputs"] == [
            {"name": "image_tensor", "dtype": "uint8", "shape": [64, 64, 3]}
        ]
        assert v2["input_format"]["width"] == 64
        assert v2["parser"] == "ssd"
        assert api.get("/api/v1/models/tiny").json()["versions"][0]["labels"][1] == "alpha"
        missing = api.get("/api/v1/models/nope")
        assert missing.status_code == 404
        assert "available models: tiny" in missing.json()["detail"]

        good = tiny_detector(tmp_path / "v3.onnx", VERSION_1).read_bytes()
        digest = hashlib.sha256(good).hexdigest()

        def upload(data: bytes, name: str = "model.onnx", **form: str) -> httpx.Response:
            return api.post("/api/v1/models/tiny/versions", files={"file": (name, data)}, data=form)

        wrong = upload(good, sha256="0" * 64)
        assert wrong.status_code == 422
        assert "sha256 mismatch" in wrong.json()["detail"]
        corrupt = upload(os.urandom(2048))
        assert corrupt.status_code == 422
        assert "not a valid ONNX model" in corrupt.json()["detail"]
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as zf:
            zf.writestr("../../evil.onnx", good)
        traversal = upload(archive.getvalue(), name="v.zip")
        assert traversal.status_code == 422
        assert "escapes" in traversal.json()["detail"]
        assert not (repo / "evil.onnx").exists()
        assert not (tmp_path / "evil.onnx").exists()
        added = upload(good, sha256=digest)
        assert added.status_code == 201, added.text
        assert added.json()["version"] == 3
        assert added.json()["origin"] == "upload:model.onnx"

        # a directory on the server: same tensors, but one more class than the serving one
        version_dir = tmp_path / "v4"
        tiny_detector(version_dir / "model.onnx", VERSION_1)
        (version_dir / "labels.txt").write_text("background\nalpha\nbeta\ngamma\ndelta\n")
        imported = api.post(
            "/api/v1/models/tiny/versions/from-path", json={"path": str(version_dir)}
        )
        assert imported.status_code == 201, imported.text
        assert imported.json()["classes"] == 5

        incompatible = api.post("/api/v1/models/tiny/swap", json={"version": 4})
        assert incompatible.status_code == 409
        assert "classes: 4 → 5 labels" in incompatible.json()["detail"]
        assert api.post("/api/v1/models/tiny/swap", json={"version": 99}).status_code == 404
        assert api.post("/api/v1/models/tiny/swap", json={"version": "x"}).status_code == 422

        swapped = api.post("/api/v1/models/tiny/swap", json={"version": 3})
        assert swapped.status_code == 200, swapped.text
        assert swapped.json()["state"] == "ok"
        assert swapped.json()["from_version"] == 2
        assert _serving(api) == ("tiny", 3)
        ready = api.get("/api/v1/ready").json()  # reports the version serving now
        assert (ready["ready"], ready["model_version"]) == (True, "3")
        again = api.post("/api/v1/models/tiny/swap", json={"version": 3})
        assert again.status_code == 409
        assert "already serving" in again.json()["detail"]
        rolled = api.post("/api/v1/models/tiny/rollback")
        assert rolled.status_code == 200
        assert _serving(api) == ("tiny", 2)

        # OTA: a ConfigMap update naming version 1 swaps to it
        _configmap(tmp_path / "ota", "..2026_11_21_b", "version: 1\n")
        assert wait_for(lambda: _serving(api) == ("tiny", 1), 60, 0.2), svc.log()[-2000:]
        swaps = api.get("/api/v1/models").json()["swaps"]
        assert swaps[-1]["trigger"] == "ota"
        # a malformed override is logged and changes nothing
        _configmap(tmp_path / "ota", "..2026_11_21_c", "version: [1\n")
        assert wait_for(lambda: "malformed" in svc.log(), 10, 0.2)
        assert _serving(api) == ("tiny", 1)
        # frames keep flowing on the version OTA chose: events written after the swap come
        # from version 1 (the JSONL is compact JSON: parse it rather than match spacing)
        events_path = run_dir / "events.jsonl"
        swapped_at = events_path.stat().st_size

        def versions_since_swap() -> list[str]:
            with events_path.open("rb") as f:
                f.seek(swapped_at)
                lines = f.read().decode().splitlines()
            # the first line may be the end of one written while the swap happened
            return [json.loads(line)["analyticsModule"]["version"] for line in lines[1:-1]]

        assert wait_for(lambda: len(versions_since_swap()) >= 5, 20, 0.2), svc.log()[-2000:]
        assert set(versions_since_swap()) == {"1"}, versions_since_swap()
        assert api.get("/api/v1/streams/cam-1").json()["state"] == "running"
    assert svc.proc is not None
    assert svc.proc.returncode == 143, svc.output[-3000:]
    assert_clean(run_dir, svc.pid)
    # the swap is remembered: a restart serves version 1
    assert '"version": 1' in (tmp_path / "data" / "model-state.json").read_text()
