"""Fixtures of the GPU tests (they run on a GPU host; elsewhere they are skipped)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from vigil.config import Settings

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
