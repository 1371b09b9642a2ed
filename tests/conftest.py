"""Fixtures shared by all tests: paths of the produced artifacts, sample clips."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vigil.config import Settings

# Test helpers start servers with a Python preexec_fn; gRPC's fork handlers (the Triton
# client is gRPC) abort such children once gRPC is in use in this process.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

ROOT = Path(__file__).resolve().parents[1]
REPOSITORY = ROOT / "model_repository"
SAMPLE_VIDEO = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
REFERENCE_MODEL = "ssd_mobilenet_v2_coco"


@pytest.fixture(scope="session")
def sample_video() -> Path:
    """vtest.avi from Debian's opencv-doc (installed by `make test`)."""
    if not SAMPLE_VIDEO.is_file():
        pytest.fail(f"{SAMPLE_VIDEO} is missing: run `make test` (it installs opencv-doc)")
    return SAMPLE_VIDEO


@pytest.fixture(scope="session")
def short_clip(sample_video: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 40 frames of vtest.avi re-encoded as H.264 MP4 (made with PyAV)."""
    from tests.support.clips import make_clip  # PyAV: not needed (nor there) on GPU hosts

    return make_clip(sample_video, 40, tmp_path_factory.mktemp("clips") / "short.mp4")


@pytest.fixture
def corrupt_video(tmp_path: Path) -> Path:
    """A file with a video name and garbage inside."""
    path = tmp_path / "corrupt.mp4"
    path.write_bytes(os.urandom(64 * 1024))
    return path


@pytest.fixture(scope="session")
def reference_model() -> str:
    """The SSD model produced by `make models`."""
    weights = REPOSITORY / REFERENCE_MODEL / "1" / "model.onnx"
    if not weights.is_file():
        pytest.fail(f"{weights} is missing: run `make models` (or `make test`)")
    return REFERENCE_MODEL


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings for one test: run dir and events file under tmp_path."""
    base = Settings()
    return base.model_copy(
        update={
            "run_dir": tmp_path,
            "triton": base.triton.model_copy(update={"model_repository": REPOSITORY}),
            "events": base.events.model_copy(update={"jsonl_path": tmp_path / "events.jsonl"}),
        }
    )


def gpu_missing_reason() -> str | None:
    """None when an NVIDIA GPU is usable from this process (torch sees one), else why not."""
    try:
        import torch
    except ImportError:
        return "no GPU: PyTorch is not installed (GPU tests run on a GPU host)"
    if not torch.cuda.is_available():
        return "no GPU: PyTorch sees no CUDA device"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``@pytest.mark.gpu`` tests with the reason (``-ra`` prints it) without a GPU."""
    gpu_items = [item for item in items if item.get_closest_marker("gpu") is not None]
    reason = gpu_missing_reason() if gpu_items else None
    if reason:
        for item in gpu_items:
            item.add_marker(pytest.mark.skip(reason=reason))
