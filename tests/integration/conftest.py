"""Fixtures shared by integration tests: an external Triton, a camera looping the sample."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.support.rtsp import RtspCamera, rtsp_server_available
from tests.support.scenes import CROSSING, render
from vigil.config import Settings
from vigil.shm_segments import new_prefix
from vigil.triton.materializer import materialize
from vigil.triton.server import EmbeddedTriton
from vigil.triton_connection import TritonConnection, connect


@pytest.fixture
def external_triton(
    tmp_path_factory: pytest.TempPathFactory, settings: Settings
) -> Iterator[EmbeddedTriton]:
    """A Triton server Vigil did not start (reach it with ``triton.url``)."""
    base = tmp_path_factory.mktemp("external")
    materialize(
        settings.triton.model_repository, base / "repo", [str(settings.triton_python_env())]
    )
    server = EmbeddedTriton(
        settings.triton_server_dir(),
        base / "repo",
        base / "triton.log",
        shm_prefix=new_prefix("ext") + "_",
    )
    with server:
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def triton(module_settings: Settings) -> AsyncIterator[TritonConnection]:
    """One embedded Triton for a test module, started with the ``module_settings`` fixture
    that module defines (its tests run on the module's event loop)."""
    async with connect(module_settings) as connection:
        yield connection


@pytest.fixture
def vtest_camera(sample_video: Path) -> Iterator[RtspCamera]:
    """An RTSP camera looping the sample video (people walking) at 10 fps."""
    reason = rtsp_server_available()
    if reason:
        pytest.fail(f"GStreamer RTSP server unavailable (run `make test`): {reason}")
    with RtspCamera(source=sample_video, fps=10) as camera:
        yield camera


@pytest.fixture
def crossing_clip(tmp_path: Path) -> Path:
    """:data:`~tests.support.scenes.CROSSING` rendered as H.264 MP4."""
    path = tmp_path / "crossing.mp4"
    render(CROSSING, path)
    return path
