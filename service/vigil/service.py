"""``vigil serve``: the long-running service — pipeline plus REST control plane."""

from __future__ import annotations

import asyncio
import logging
import signal

import uvicorn

from vigil.api.app import create_app
from vigil.config import Settings
from vigil.ota import OtaWatcher
from vigil.runtime import open_runtime

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED = 0, 2


async def serve(settings: Settings) -> int:
    """Run the service until SIGINT/SIGTERM, or until the pipeline fails (Triton died).

    Returns the process exit code: 0 after a signal-initiated clean stop is reported as
    ``128 + signal``, 2 if the pipeline failed.
    """
    received: list[int] = []

    def remember(signum: int, _frame: object) -> None:
        received.append(signum)

    # uvicorn handles SIGINT/SIGTERM while it serves, then re-raises them with the handlers
    # it found; ours only record the signal, so shutdown continues below and cleans up.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, remember)

    async with open_runtime(settings) as runtime:
        for spec in settings.streams:
            await runtime.streams.add(spec, trusted=True)
        ota = None
        if settings.model.ota_override_file is not None:
            ota = OtaWatcher(
                settings.model.ota_override_file, runtime.models, settings.model.ota_poll_s
            )
            ota.start()
        app = create_app(runtime)
        config = uvicorn.Config(
            app,
            host=settings.api.host,
            port=settings.api.port,
            log_level=settings.log_level.lower(),
            lifespan="off",
            access_log=False,
        )
        server = uvicorn.Server(config)
        failed = asyncio.Event()

        async def watch_pipeline() -> None:
            if await runtime.pipeline.wait_stopped() is None:
                return
            log.error("pipeline failed, stopping the service: %s", runtime.pipeline.failure)
            failed.set()
            server.should_exit = True

        watcher = asyncio.create_task(watch_pipeline())
        try:
            await server.serve()
        finally:
            watcher.cancel()
            if ota is not None:
                await ota.close()
        if not server.started and not failed.is_set() and not received:
            log.error("the API server could not start on %s:%s", config.host, config.port)
            return EXIT_FAILED
    if failed.is_set():
        return EXIT_FAILED
    return 128 + received[0] if received else EXIT_OK
