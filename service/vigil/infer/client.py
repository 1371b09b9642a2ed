"""Asynchronous Triton client: model control, shared memory, inference.

A thin layer over ``tritonclient.grpc.aio`` that speaks Vigil's types and turns every
tritonclient exception into an :mod:`vigil.infer.errors` exception (``raise ... from e``).
It works the same against the embedded server and an external one.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as aioclient
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from vigil.infer.errors import InferError, ModelLoadError, ModelNotFoundError
from vigil.infer.model import ModelInfo
from vigil.infer.shm import Slot
from vigil.shm_segments import owner_pid, pid_alive

log = logging.getLogger(__name__)

#: How long a replaced channel stays open, at most, for the calls still in flight on it.
RETIRE_GRACE_S = 30.0


def cancelled_under_us() -> bool:
    """Whether a ``CancelledError`` just caught came from the awaited call, not from
    cancelling the current task: grpc.aio cancels the calls in flight on a channel that
    closes, and their awaiters see a bare ``CancelledError``."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() == 0


class TritonClient:
    """One gRPC connection to a Triton server.

    Args:
        url: ``host:port`` of Triton's gRPC endpoint.
        repository: Vigil's local model repository, for labels (None: no labels).
        request_timeout_s: Deadline of one inference request.
    """

    def __init__(
        self, url: str, repository: Path | None = None, request_timeout_s: float = 30.0
    ) -> None:
        self.url = url
        self.repository = repository
        self.request_timeout_s = request_timeout_s
        self._client = aioclient.InferenceServerClient(url)
        # What this client made the server load: name → versions. A restarted server is
        # given the same again.
        self.loaded: dict[str, frozenset[int]] = {}
        self._slots: dict[str, Slot] = {}  # registered shared-memory regions, by name
        # Channels that retarget() replaced, each closing after a grace.
        self._retired: dict[aioclient.InferenceServerClient, asyncio.Task[None]] = {}

    async def close(self) -> None:
        """Close the connection (and the channels that :meth:`retarget` replaced)."""
        retired, self._retired = self._retired, {}
        for task in retired.values():
            task.cancel()
        await asyncio.gather(*retired.values(), return_exceptions=True)
        for old in retired:
            await old.close()
        await self._client.close()

    async def retarget(self, url: str) -> None:
        """Talk to the server at ``url`` from now on (a restarted server on new ports).

        The old channel closes once its calls in flight end (within :data:`RETIRE_GRACE_S`),
        not at once: closing it would cancel them (an inference request, a readiness check of
        the REST API), and a cancelled call is not a failed one to its caller.
        """
        old, self._client, self.url = self._client, aioclient.InferenceServerClient(url), url
        self._retired[old] = asyncio.create_task(
            self._close_later(old), name="triton-channel-retire"
        )

    async def _close_later(self, old: aioclient.InferenceServerClient) -> None:
        """Close ``old`` once its calls in flight end (at most :data:`RETIRE_GRACE_S`)."""
        # tritonclient's close() takes no grace; its grpc.aio channel's does, and returns at
        # once when no call is in flight (the usual case: an outage retargets every 0.25 s,
        # and channels kept for the full grace would pile up by the hundred).
        channel = getattr(old, "_channel", None)
        try:
            if channel is not None:
                await channel.close(grace=RETIRE_GRACE_S)
            else:
                await asyncio.sleep(RETIRE_GRACE_S)
                await old.close()
        finally:
            self._retired.pop(old, None)

    async def is_live(self, timeout_s: float = 2.0) -> bool:
        """Whether the server answers its liveness check within ``timeout_s``."""
        try:
            return bool(await self._client.is_server_live(client_timeout=timeout_s))
        except (TimeoutError, InferenceServerException):
            return False

    async def is_ready(self, timeout_s: float = 2.0) -> bool:
        """Whether the server says it is ready within ``timeout_s``."""
        try:
            return bool(await self._client.is_server_ready(client_timeout=timeout_s))
        except (TimeoutError, InferenceServerException):
            return False

    async def restore(self) -> None:
        """Give a restarted (or returning) server what this client had set up: register the
        shared-memory regions again and load the same model versions.

        Raises:
            InferError: a region could not be mapped or a model not loaded.
        """
        for slot in list(self._slots.values()):
            # A server that only blipped may still hold the region: register it afresh.
            await self._unregister(slot, in_use_wait_s=0.0)
            await self.register_slot(slot)
        for name, versions in list(self.loaded.items()):
            if versions:
                await self.load_versions(name, sorted(versions))

    async def wait_ready(self, timeout_s: float) -> None:
        """Wait until the server reports ready.

        Raises:
            InferError: not ready within ``timeout_s``.
        """
        deadline = time.monotonic() + timeout_s
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                if await self._client.is_server_ready(client_timeout=2):
                    return
            except InferenceServerException as e:
                last = e
            await asyncio.sleep(0.2)
        raise InferError(f"Triton at {self.url} not ready after {timeout_s:.0f} s: {last}")

    async def available_models(self) -> list[str]:
        """Names of all models in the server's repository."""
        try:
            index = await self._client.get_model_repository_index(as_json=True)
        except InferenceServerException as e:
            raise InferError(f"cannot list models at {self.url}: {e.message()}") from e
        return sorted({m["name"] for m in index.get("models", [])})

    async def model_ready(self, name: str) -> tuple[bool, str]:
        """Whether the server and the model are ready, and why not."""
        try:
            if not await self._client.is_server_ready(client_timeout=2):
                return False, f"Triton at {self.url} is not ready"
            if not await self._client.is_model_ready(name, client_timeout=2):
                return False, f"model {name!r} is not loaded"
        except (TimeoutError, InferenceServerException) as e:
            return False, f"Triton at {self.url} does not answer: {e}"
        return True, ""

    async def load_model(self, name: str, version: int | None = None) -> ModelInfo:
        """Load ``name`` (explicit model control) and describe it.

        Args:
            name: Model name.
            version: Load exactly this version (None: Triton's version policy, by default
                the newest).

        Raises:
            ModelNotFoundError: the repository has no such model (lists the ones it has).
            ModelLoadError: Triton failed to load it (Triton's message).
        """
        available = await self.available_models()
        if name not in available:
            raise ModelNotFoundError(name, available)
        if version is None:
            await self._load_default(name)
            return await self.model_info(name)
        await self.load_versions(name, [version])
        return await self.model_info(name, version)

    async def load_versions(self, name: str, versions: list[int]) -> None:
        """Make exactly ``versions`` of ``name`` loaded.

        Triton reloads the model with a version policy naming those versions; versions that
        stay loaded keep serving while the others load, and versions left out are unloaded
        once their requests finish. This is how a new version is loaded *beside* the serving
        one, and how the old one is unloaded afterwards.

        Raises:
            ModelLoadError: Triton failed to load one of them (Triton's message).
        """
        wanted = {str(int(v)) for v in versions}
        try:
            config = (await self._client.get_model_config(name, as_json=True))["config"]
        except InferenceServerException:
            # Not loaded yet: a plain load reads config.pbtxt (whatever backend the repository
            # holds, materialized or not), and is all that is needed if it gives `wanted`.
            config = await self._load_default(name)
        states = (await self.loaded_versions()).get(name, {})
        ready = {v for v, state in states.items() if state == "READY"}
        if ready == wanted:
            self.loaded[name] = frozenset(int(v) for v in wanted)
            return
        config["version_policy"] = {"specific": {"versions": sorted(int(v) for v in wanted)}}
        try:
            await self._client.load_model(name, config=json.dumps(config), client_timeout=600)
        except InferenceServerException as e:
            shown = ", ".join(sorted(wanted))
            raise ModelLoadError(
                f"Triton could not load {name!r} version {shown}: {e.message()}"
            ) from e
        self.loaded[name] = frozenset(int(v) for v in wanted)

    async def _load_default(self, name: str) -> dict[str, Any]:
        """Load with the repository's own config and version policy; returns that config."""
        try:
            await self._client.load_model(name, client_timeout=600)
            config = (await self._client.get_model_config(name, as_json=True))["config"]
        except InferenceServerException as e:
            raise ModelLoadError(f"Triton could not load model {name!r}: {e.message()}") from e
        ready = {v for v, state in (await self.loaded_versions()).get(name, {}).items()
                 if state == "READY" and v.isdigit()}  # fmt: skip
        self.loaded[name] = frozenset(int(v) for v in ready)
        return config

    async def unload_model(self, name: str) -> None:
        """Unload every version of ``name``; errors are logged, not raised (cleanup)."""
        self.loaded.pop(name, None)
        try:
            await self._client.unload_model(name, client_timeout=60)
        except (TimeoutError, InferenceServerException) as e:
            log.warning("unloading %s failed: %s", name, e)

    async def loaded_versions(self) -> dict[str, dict[str, str]]:
        """Model name → version → Triton's state (READY, LOADING, UNAVAILABLE, ...)."""
        try:
            index = await self._client.get_model_repository_index(as_json=True)
        except InferenceServerException as e:
            raise InferError(f"cannot list models at {self.url}: {e.message()}") from e
        states: dict[str, dict[str, str]] = {}
        for entry in index.get("models", []):
            if entry.get("version"):
                states.setdefault(entry["name"], {})[entry["version"]] = entry.get("state", "")
        return states

    async def model_info(self, name: str, version: int | None = None) -> ModelInfo:
        """Describe a loaded model from its Triton config.

        Args:
            name: Model name.
            version: The version requests will go to (None: the newest loaded one). Its
                own ``labels.txt``, if the version directory has one, replaces the model's.
        """
        try:
            config = await self._client.get_model_config(name, as_json=True)
            metadata = await self._client.get_model_metadata(name, as_json=True)
        except InferenceServerException as e:
            raise InferError(f"cannot describe model {name!r}: {e.message()}") from e
        info = ModelInfo.from_config(config["config"], self.repository, version)
        if version is not None:
            return dataclasses.replace(info, version=str(version))
        versions = sorted(metadata.get("versions", []), key=lambda v: int(v) if v.isdigit() else 0)
        return dataclasses.replace(info, version=versions[-1] if versions else "")

    async def register_slot(self, slot: Slot) -> None:
        """Register a ring slot's shared-memory region (system or CUDA) with the server."""
        region: Any = slot.region
        try:
            if region.kind == "cuda":
                await self._client.register_cuda_shared_memory(
                    region.name, region.raw_handle, region.device_id, region.byte_size
                )
            else:
                await self._client.register_system_shared_memory(
                    region.name, region.key, region.byte_size
                )
            self._slots[region.name] = slot
        except InferenceServerException as e:
            where = (
                "CUDA shared memory needs Triton on the same host with the same GPU"
                if region.kind == "cuda"
                else "system shared memory needs Triton on the same host, sharing /dev/shm"
            )
            raise InferError(
                f"Triton at {self.url} cannot map {region.kind} shared memory {region.name}: "
                f"{e.message()} ({where})"
            ) from e

    async def unregister_slot(self, slot: Slot, in_use_wait_s: float = 10.0) -> None:
        """Unregister a slot's region; errors are logged, not raised (used on cleanup).

        Triton refuses to unregister a region a request is still using ("it is currently in
        use"), which happens when Vigil stops while a request it gave up on still runs on the
        server (a cancelled gRPC call does not stop the model). That refusal is retried for
        up to ``in_use_wait_s``; left registered, the region would keep our memory mapped in
        the server.
        """
        self._slots.pop(slot.region.name, None)
        await self._unregister(slot, in_use_wait_s)

    async def _unregister(self, slot: Slot, in_use_wait_s: float) -> None:
        name = slot.region.name
        unregister = (
            self._client.unregister_cuda_shared_memory
            if slot.region.kind == "cuda"
            else self._client.unregister_system_shared_memory
        )
        deadline = time.monotonic() + in_use_wait_s
        while True:
            try:
                await unregister(name, client_timeout=5)
                return
            except (TimeoutError, InferenceServerException) as e:
                in_use = "currently in use" in str(e)
                if not in_use or time.monotonic() >= deadline:
                    log.log(logging.WARNING if in_use else logging.DEBUG,
                            "unregistering %s failed: %s", name, e)  # fmt: skip
                    return
            await asyncio.sleep(0.05)

    async def unregister_stale_regions(self) -> list[str]:
        """Unregister regions that a Vigil process now gone left registered; returns them.

        A Vigil killed with SIGKILL cannot unregister its ring from an external Triton, which
        would keep the dead process's CUDA allocations mapped. Region names start with
        ``vigil_<pid>_``; those whose process no longer exists are unregistered.
        """
        stale = []
        for name in await self.registered_regions():
            owner = owner_pid(name)
            if owner is not None and not pid_alive(owner):
                for unregister in (
                    self._client.unregister_cuda_shared_memory,
                    self._client.unregister_system_shared_memory,
                ):
                    with contextlib.suppress(InferenceServerException):
                        await unregister(name, client_timeout=5)
                stale.append(name)
        if stale:
            log.warning("unregistered %d stale shared-memory regions: %s", len(stale), stale[:5])
        return stale

    async def registered_regions(self) -> list[str]:
        """Names of the shared-memory regions (system and CUDA) registered with the server."""
        try:
            system = await self._client.get_system_shared_memory_status(as_json=True)
            cuda = await self._client.get_cuda_shared_memory_status(as_json=True)
        except InferenceServerException as e:
            raise InferError(f"cannot read shared-memory status: {e.message()}") from e
        # gRPC status messages map region name → status
        return sorted([*system.get("regions", {}), *cuda.get("regions", {})])

    async def infer(self, model: ModelInfo, slot: Slot, batch: int) -> None:
        """Run ``model`` on the first ``batch`` items of ``slot``; outputs land in the slot.

        Raises:
            InferError: the request failed (Triton's message).
        """
        inputs = []
        for spec in model.inputs:
            ref = slot.ref(spec.name, batch)
            item = grpcclient.InferInput(
                spec.name, [batch, *spec.shape], np_to_triton_dtype(spec.dtype)
            )
            item.set_shared_memory(ref.region, ref.byte_size, ref.offset)
            inputs.append(item)
        outputs = []
        for spec in model.outputs:
            ref = slot.ref(spec.name, batch)
            out = grpcclient.InferRequestedOutput(spec.name)
            out.set_shared_memory(ref.region, ref.byte_size, ref.offset)
            outputs.append(out)
        try:
            return await self._client.infer(
                model.name,
                inputs,
                model_version=model.version,
                outputs=outputs,
                client_timeout=self.request_timeout_s,
            )
        except InferenceServerException as e:
            raise InferError(f"inference on {model.name!r} failed: {e.message()}") from e
        except asyncio.CancelledError:
            if not cancelled_under_us():
                raise
            raise InferError(
                f"inference on {model.name!r} failed: its connection to Triton was closed"
            ) from None

    async def statistics(self, name: str) -> dict[str, Any]:
        """Triton's inference statistics for a model (JSON form)."""
        try:
            return await self._client.get_inference_statistics(name, as_json=True)
        except InferenceServerException as e:
            raise InferError(f"cannot read statistics of {name!r}: {e.message()}") from e
