"""Fixtures of the GPU tests (they run on a GPU host; elsewhere they are skipped)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.gpu import peoplenet
from vigil.config import Settings
from vigil.shm_segments import new_prefix
from vigil.triton.server import EmbeddedTriton

#: A 1080p H.264 clip for NVDEC tests (the benchmark's, made by bench/gpu/make_clip.py).
CLIP_VARIABLE = "GPU_TEST_CLIP"


@pytest.fixture(scope="session")
def gpu_clip() -> Path:
    """The H.264 clip named by $GPU_TEST_CLIP (skips when unset: PyAV may be absent here)."""
    path = os.environ.get(CLIP_VARIABLE)
    if not path or not Path(path).is_file():
        pytest.skip(f"set {CLIP_VARIABLE} to an H.264 clip (bench/gpu/make_clip.py makes one)")
    return Path(path)


@pytest.fixture(scope="session")
def triton_server_dir() -> Path:
    """The embedded Triton server (skips when it is not installed)."""
    directory = Settings().triton_server_dir()
    if not (directory / "bin" / "tritonserver").exists():
        pytest.skip(f"no Triton server at {directory} (VIGIL_TRITON__SERVER_DIR)")
    return directory


@pytest.fixture
def cuda() -> Iterator[object]:
    """torch, with the device synchronized and its cache emptied after the test."""
    import torch

    yield torch
    torch.cuda.synchronize()
    torch.cuda.empty_cache()


@pytest.fixture(scope="session")
def repository(tmp_path_factory: pytest.TempPathFactory, triton_server_dir: Path) -> Path:
    """A model repository with the PeopleNet-class bench model (random weights, batch 8)."""
    import torch

    from bench.gpu import peoplenet_net

    tmp = tmp_path_factory.mktemp("peoplenet")
    device = torch.device("cuda", 0)
    net = peoplenet_net.build(0).to(device)
    net = peoplenet_net.calibrate(net, torch.rand(4, 3, 544, 960, device=device))
    net = peoplenet_net.for_inference(net, device)
    torch.save(net.state_dict(), tmp / "weights.pt")
    del net
    torch.cuda.empty_cache()
    peoplenet.write_repository(tmp / "repository", tmp / "weights.pt", max_batch=8, instances=1)
    return tmp / "repository"


@pytest.fixture(scope="session")
def triton(repository: Path, triton_server_dir: Path) -> Iterator[EmbeddedTriton]:
    """A Triton that outlives the Vigil runs of the tests ("external" to them), shared by
    every Triton-backed GPU test module."""
    server = EmbeddedTriton(
        triton_server_dir,
        repository,
        repository.parent / "triton.log",
        shm_prefix=new_prefix("pb") + "_",
        cuda_memory_pool_bytes=1 << 30,
    )
    with server:
        yield server


@pytest.fixture
def settings(tmp_path: Path, triton: EmbeddedTriton, repository: Path) -> Settings:
    """GPU-path settings against :func:`triton` (batch 8, 2 requests in flight)."""
    base = Settings()
    return base.model_copy(
        update={
            "run_dir": tmp_path,
            "triton": base.triton.model_copy(
                update={"url": triton.grpc_url, "model_repository": repository}
            ),
            "model": base.model.model_copy(
                update={"name": peoplenet.MODEL_NAME, "confidence_threshold": 0.5}
            ),
            "gpu": base.gpu.model_copy(update={"mode": "gpu"}),
            "pipeline": base.pipeline.model_copy(
                update={"max_batch_size": 8, "inflight_requests": 2}
            ),
            "events": base.events.model_copy(update={"jsonl_path": tmp_path / "events.jsonl"}),
        }
    )
