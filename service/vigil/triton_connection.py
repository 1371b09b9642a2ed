"""Get a working Triton connection, embedded or external, and clean it up afterwards.

This is where the server side (:mod:`vigil.triton`: the embedded server and its repository)
meets the client side (:mod:`vigil.infer`); it sits above both so that neither package imports
the other's user.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from vigil.accel import Acceleration
from vigil.config import Settings
from vigil.infer.client import TritonClient
from vigil.shm_segments import new_prefix, remove_stale_segments
from vigil.triton.materializer import materialize, materialize_version
from vigil.triton.server import EmbeddedTriton, TritonPorts, reap_orphaned_backend_stubs

log = logging.getLogger(__name__)


@dataclass
class TritonConnection:
    """A client plus, in embedded mode, the server behind it.

    Attributes:
        client: The gRPC client.
        server: The embedded server, or None for an external one.
        publish: Makes a version added to the repository visible to the embedded server
            (its materialized repository); None for an external server, which reads the
            repository itself.
        check_alive: Raises :class:`~vigil.triton.errors.TritonDiedError` if the embedded
            server has died (a no-op for external servers).
    """

    client: TritonClient
    server: EmbeddedTriton | None
    publish: Callable[[str, int], None] | None = None

    @property
    def embedded(self) -> bool:
        """Whether Vigil runs this server itself (Python backend only)."""
        return self.server is not None

    @property
    def check_alive(self) -> Callable[[], None]:
        """The watchdog callable for the pipeline."""
        return self.server.check_alive if self.server else (lambda: None)


@asynccontextmanager
async def connect(
    settings: Settings, acceleration: Acceleration | None = None
) -> AsyncIterator[TritonConnection]:
    """Yield a ready Triton connection.

    With ``settings.triton.url`` set, connect to that server. Otherwise materialize the
    repository, start the embedded server on free ports, and stop it (and remove every
    shared-memory segment it or we made) when the block exits, however it exits. On the GPU
    path (``acceleration``) the embedded server gets a CUDA memory pool for GPU tensors.
    """
    remove_stale_segments()
    triton = settings.triton
    repository = triton.model_repository
    if triton.url:
        client = TritonClient(triton.url, repository, triton.request_timeout_s)
        try:
            await client.wait_ready(triton.startup_timeout_s)
            await client.unregister_stale_regions()
            yield TritonConnection(client, None)
        finally:
            await client.close()
        return

    reap_orphaned_backend_stubs()
    if settings.run_dir is not None:  # a fresh volume or a new path: make it, as data_dir is
        settings.run_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vigil-run-", dir=settings.run_dir) as tmp:
        run_dir = Path(tmp)
        python_paths = [str(settings.triton_python_env())]
        materialize(repository, run_dir / "repository", python_paths)

        def publish(name: str, version: int) -> None:
            materialize_version(
                repository / name, run_dir / "repository" / name, version, python_paths
            )

        ports = None
        if triton.http_port or triton.grpc_port or triton.metrics_port:
            ports = TritonPorts(triton.http_port, triton.grpc_port, triton.metrics_port)
        server = EmbeddedTriton(
            settings.triton_server_dir(),
            run_dir / "repository",
            _log_path(settings),
            ports=ports,
            shm_prefix=new_prefix("pb") + "_",
            startup_timeout_s=triton.startup_timeout_s,
            cuda_memory_pool_bytes=acceleration.triton_cuda_pool_bytes if acceleration else 0,
            device_id=acceleration.device_id if acceleration else 0,
        )
        sweeper = asyncio.create_task(sweep_orphaned_stubs(ORPHAN_SWEEP_S), name="stub-sweeper")
        try:
            server.start()
            client = TritonClient(server.grpc_url, repository, triton.request_timeout_s)
            try:
                yield TritonConnection(client, server, publish)
            finally:
                await client.close()
        finally:
            sweeper.cancel()
            await asyncio.gather(sweeper, return_exceptions=True)
            server.stop()


#: How often a running Vigil with an embedded Triton looks for orphaned backend stubs.
ORPHAN_SWEEP_S = 5.0


async def sweep_orphaned_stubs(interval_s: float) -> None:
    """Kill, every ``interval_s``, the Python-backend stubs of embedded Tritons whose Vigil
    is gone (:func:`~vigil.triton.server.reap_orphaned_backend_stubs`).

    A Vigil killed with SIGKILL takes its Triton with it, but a stub of that Triton can
    outlive both (2 of 5 `kill -9` runs of the cluster campaign). The sweep at start-up
    catches it when that Vigil comes back; this one lets any other Vigil on the host (the
    surviving workers of a cluster) remove it within seconds."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await asyncio.to_thread(reap_orphaned_backend_stubs)
        except OSError as e:  # /proc unreadable: try again next time
            log.debug("sweeping orphaned backend stubs failed: %s", e)


KEEP_LOGS = 20


def _log_path(settings: Settings) -> Path:
    """Where the embedded server logs: ``<run_dir>/triton.log`` if a run directory is set,
    else a time-stamped file in ``<cache>/logs`` (the newest 20 are kept)."""
    if settings.run_dir is not None:
        return settings.run_dir / "triton.log"
    logs = settings.cache_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    for old in sorted(logs.glob("triton-*.log"))[:-KEEP_LOGS]:
        old.unlink(missing_ok=True)
    return logs / f"triton-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
