"""`--triton-url`: an external Triton works the same way (shared memory included)."""

from __future__ import annotations

import pytest
import tritonclient.grpc as grpcclient

from tests.integration.helpers import assert_clean, run_vigil

pytestmark = pytest.mark.integration


def test_cli_with_triton_url_uses_the_external_server(
    tmp_path, short_clip, external_triton, reference_model
):
    events = tmp_path / "events.jsonl"
    code, out, pid = run_vigil(
        [
            "run",
            "--source",
            str(short_clip),
            "--triton-url",
            external_triton.grpc_url,
            "--out",
            str(events),
            "--no-progress",
        ],
        tmp_path,
    )
    assert code == 0, out
    assert events.read_text().count("\n") > 0
    client = grpcclient.InferenceServerClient(external_triton.grpc_url)
    stats = client.get_inference_statistics(reference_model, as_json=True)
    count = int(stats["model_stats"][0]["inference_stats"]["success"]["count"])
    assert count >= 40 / 4, "the external server did the inference"
    status = client.get_system_shared_memory_status(as_json=True)
    assert status.get("regions", {}) == {}, "vigil unregisters its regions"
    assert_clean(tmp_path, pid)
