"""``vigil serve``: the long-running service — pipeline plus REST control plane."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import ssl
from collections.abc import Callable
from typing import Any

import uvicorn

from vigil.api.app import create_app
from vigil.api.security import audit_log
from vigil.config import ApiSettings, Settings
from vigil.ota import OtaWatcher
from vigil.runtime import open_runtime

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED = 0, 2


def tls_options(api: ApiSettings) -> dict[str, Any]:
    """uvicorn's TLS arguments for ``api.tls`` (none for plain HTTP)."""
    tls = api.tls
    if not tls.enabled:
        return {}
    options: dict[str, Any] = {"ssl_certfile": str(tls.cert_file), "ssl_keyfile": str(tls.key_file)}
    if tls.client_ca_file is not None:
        options |= {"ssl_ca_certs": str(tls.client_ca_file), "ssl_cert_reqs": ssl.CERT_REQUIRED}
    return options


def check_api(api: ApiSettings) -> str | None:
    """Why the API cannot start as configured, or None: a public address without keys, or
    TLS files that do not load. Checked before anything starts (no Triton for nothing)."""
    problem = api.insecure_bind()
    if problem is not None:
        return problem
    tls = api.tls
    if tls.enabled:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            # A password callback keeps an encrypted key from prompting on the terminal.
            context.load_cert_chain(str(tls.cert_file), str(tls.key_file), password=lambda: b"")
        except (ssl.SSLError, OSError) as e:
            return (
                f"api.tls.cert_file / api.tls.key_file: cannot load {tls.cert_file} with "
                f"{tls.key_file} (PEM certificate and its unencrypted key expected): {e}"
            )
        if tls.client_ca_file is not None:
            try:
                context.load_verify_locations(cafile=str(tls.client_ca_file))
            except (ssl.SSLError, OSError) as e:
                return f"api.tls.client_ca_file: cannot load {tls.client_ca_file}: {e}"
    return None


class _Server(uvicorn.Server):
    """uvicorn's server, ending endless responses (the live event feed) when it shuts down:
    uvicorn waits for every open response to finish before it returns."""

    def __init__(self, config: uvicorn.Config, on_shutdown: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_shutdown = on_shutdown

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._on_shutdown()
        await super().shutdown(sockets)


async def serve(settings: Settings) -> int:
    """Run the service until SIGINT/SIGTERM, or until the pipeline fails (Triton died).

    Returns the process exit code: 0 after a signal-initiated clean stop is reported as
    ``128 + signal``, 2 if the pipeline failed or the API settings are unsafe or unusable
    (then nothing starts).
    """
    problem = check_api(settings.api)
    if problem is not None:
        log.error("%s", problem)
        return EXIT_FAILED
    if settings.api.api_keys:
        audit_log.info("API keys: %s", ", ".join(kid for kid, _ in settings.api.key_ids()))
    received: list[int] = []
    main, loop = asyncio.current_task(), asyncio.get_running_loop()
    starting = True  # until uvicorn serves (and handles the signals itself)

    def remember(signum: int, _frame: object) -> None:
        received.append(signum)
        if starting and main is not None:
            # Nothing else listens while Triton starts and loads the model (minutes, for a
            # large one): stop the start-up, which cleans up as it unwinds.
            loop.call_soon_threadsafe(main.cancel)

    # uvicorn handles SIGINT/SIGTERM while it serves, then re-raises them with the handlers
    # it found; ours then only record the signal, so shutdown continues below and cleans up.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, remember)
    try:
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
                **tls_options(settings.api),
            )
            server = _Server(config, runtime.live_events.end_subscriptions)
            failed = asyncio.Event()

            async def watch_pipeline() -> None:
                if await runtime.pipeline.wait_stopped() is None:
                    return
                log.error("pipeline failed, stopping the service: %s", runtime.pipeline.failure)
                failed.set()
                server.should_exit = True

            watcher = asyncio.create_task(watch_pipeline())
            starting = False
            try:
                await server.serve()
            finally:
                watcher.cancel()
                if ota is not None:
                    await ota.close()
            if not server.started and not failed.is_set() and not received:
                log.error("the API server could not start on %s:%s", config.host, config.port)
                return EXIT_FAILED
    except asyncio.CancelledError:
        if not received:  # not our start-up's cancel: someone else's
            raise
        log.warning("stopped by %s while starting", signal.Signals(received[0]).name)
        return 128 + received[0]
    if failed.is_set():
        return EXIT_FAILED
    return 128 + received[0] if received else EXIT_OK
