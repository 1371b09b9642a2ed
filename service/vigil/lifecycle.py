"""Model lifecycle: hot swap, rollback and the serving version, for REST, Kafka and OTA.

A swap, whoever asks for it:

1. resolve the target (``latest`` → a number) and check its signature against the serving
   version (same inputs, outputs and classes) unless the request allows re-planning;
2. load it *beside* the serving version (Triton keeps serving the old one meanwhile);
3. build its route (preprocessing, parser, events; a new shared-memory ring only if the
   tensors differ) and warm it up with real frames, parsing the outputs;
4. switch routing between two batches;
5. wait for the old version's requests to drain, then unload it.

Any failure before step 4 leaves the old version serving and Triton as it was; the swap is
reported ``failed`` with the reason. One swap runs at a time. The serving version is kept
in ``<data_dir>/model-state.json`` so a restart serves what was last swapped in.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from vigil.infer.client import TritonClient
from vigil.infer.errors import InferError, ModelLoadError, RegistryError, UnsupportedModelError
from vigil.infer.model import ModelInfo
from vigil.infer.registry import ModelRegistry, checksum
from vigil.metrics import PipelineMetrics
from vigil.parsers.base import Parser
from vigil.pipeline.pipeline import Pipeline
from vigil.pipeline.route import Route
from vigil.triton.errors import RepositoryError

log = logging.getLogger(__name__)

Trigger = Literal["rest", "kafka", "ota", "startup", "cluster"]


class SwapError(InferError):
    """A swap was refused or failed; the old version keeps serving.

    Attributes:
        status: HTTP status it maps to: 404 unknown model/version, 409 conflict
            (incompatible, already serving, another swap running, nothing to roll back to),
            422 the new version cannot be loaded or run, 503 Triton unavailable.
        record: The swap's record (None when refused before it started).
    """

    def __init__(self, message: str, status: int, record: SwapRecord | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.record = record


@dataclass
class SwapRecord:
    """One swap as the API reports it."""

    id: int
    model: str
    version: int
    from_model: str
    from_version: int
    trigger: str
    requested_at: str
    state: Literal["running", "ok", "failed"] = "running"
    error: str = ""
    #: Request → first batch emitted on the new version.
    duration_s: float | None = None
    #: Request → routing switched (load + warm-up).
    switch_s: float | None = None
    #: Frames emitted on the old version after the switch (its drain).
    drained_frames: int = 0

    def to_json(self) -> dict[str, Any]:
        """JSON form for the API and logs."""
        return asdict(self)


@dataclass
class _State:
    """What is persisted: the configured model (so a config change wins), the serving
    ``(model, version)`` and the versions served before it (for rollback)."""

    configured: str
    serving: tuple[str, int]
    previous: list[tuple[str, int]] = field(default_factory=list)


class ModelLifecycle:
    """Swaps the pipeline's model version without stopping any stream.

    Args:
        registry: The model repository.
        client: Triton.
        pipeline: The running pipeline.
        make_parser: Builds the parser for a model version.
        metrics: Swap counters and durations.
        state_file: Where the serving version is persisted (None: not persisted).
        configured_model: The model the settings name (a persisted state for another model
            is ignored).
        warmup_rounds: Requests run on a new version before it takes traffic.
        keep_previous: Leave the replaced version of the same model loaded, so a rollback
            (or a swap back) needs no load at all. Triton reloads every loaded version of a
            model whenever its version set changes, so without this each swap loads the
            serving version a second time to drop the old one.
    """

    def __init__(
        self,
        *,
        registry: ModelRegistry,
        client: TritonClient,
        pipeline: Pipeline,
        make_parser: Callable[[ModelInfo], Parser],
        metrics: PipelineMetrics,
        state_file: Path | None,
        configured_model: str,
        warmup_rounds: int = 2,
        keep_previous: bool = True,
    ) -> None:
        self.registry = registry
        self.client = client
        self.pipeline = pipeline
        self.make_parser = make_parser
        self.metrics = metrics
        self.state_file = state_file
        self.warmup_rounds = warmup_rounds
        self.keep_previous = keep_previous
        serving = pipeline.model
        self._state = _State(configured_model, (serving.name, int(serving.version or 0)))
        persisted = read_state(state_file, configured_model)
        if persisted is not None and persisted.serving == self._state.serving:
            self._state.previous = persisted.previous
        self._lock = asyncio.Lock()
        self._next_id = 1
        self.history: deque[SwapRecord] = deque(maxlen=50)
        #: On a cluster worker sharing its Triton with others: the versions of a model the
        #: *other* workers serve now, which a swap here must leave loaded (None: nobody else).
        self.others_serve: Callable[[str], set[int]] | None = None
        self._save()

    @property
    def serving(self) -> tuple[str, int]:
        """``(model, version)`` new batches go to."""
        return self._state.serving

    @property
    def previous(self) -> list[tuple[str, int]]:
        """Versions served before, newest last (rollback targets)."""
        return list(self._state.previous)

    @property
    def lock(self) -> asyncio.Lock:
        """Held while a swap or rollback runs (Triton recovery waits for it)."""
        return self._lock

    @property
    def busy(self) -> bool:
        """Whether a swap is running."""
        return self._lock.locked()

    # --- requests: REST, OTA, and Kafka commands (through ModelCommands) --------------------

    async def swap(
        self,
        model: str,
        version: int | Literal["latest"],
        allow_replan: bool = False,
        trigger: Trigger = "rest",
    ) -> SwapRecord:
        """Swap the serving model for ``model`` at ``version``; returns the finished record.

        Raises:
            SwapError: refused or failed (the old version keeps serving).
        """
        if self._lock.locked():
            raise SwapError("another model swap is in progress; try again when it is done", 409)
        async with self._lock:
            return await self._swap(model, version, allow_replan, trigger, rollback=False)

    async def rollback(self, trigger: Trigger = "rest") -> SwapRecord:
        """Swap back to the version served before the current one.

        Raises:
            SwapError: (409) nothing to roll back to, or the swap failed.
        """
        if self._lock.locked():
            raise SwapError("another model swap is in progress; try again when it is done", 409)
        async with self._lock:
            if not self._state.previous:
                raise SwapError("no earlier version to roll back to", 409)
            model, version = self._state.previous[-1]
            # It served before with its own preprocessing and parser: re-planning is allowed.
            return await self._swap(model, version, True, trigger, rollback=True)

    async def add_version(
        self,
        model: str,
        path: Path,
        *,
        sha256: str | None = None,
        swap: bool = False,
        allow_replan: bool = False,
        trigger: Trigger = "rest",
        reuse_existing: bool = False,
    ) -> tuple[int, SwapRecord | None]:
        """Add a version from a server-side file or directory, and swap to it if asked.

        Args:
            reuse_existing: If a version with the same checksum exists, use it instead of
                adding a copy (what OTA wants: re-applying the same file is no change).

        Returns:
            The version number, and the swap's record if one was asked for.

        Raises:
            RegistryError: the file was refused (see :meth:`ModelRegistry.add_version`).
            SwapError: the swap was refused or failed (the version stays added).
        """
        number: int | None = None
        if reuse_existing:
            digest = await asyncio.to_thread(checksum, path)
            number = await asyncio.to_thread(self.registry.find_by_checksum, model, digest)
        if number is None:
            staged = await asyncio.to_thread(self.registry.stage_path, model, path)
            origin = f"{trigger}:{path}"
            record = await self.registry.add_version(model, staged, origin=origin, sha256=sha256)
            number = record.version
        if not swap or self.serving == (model, number):
            return number, None
        return number, await self.swap(model, number, allow_replan, trigger)

    async def check(
        self, model: str, version: int | Literal["latest"], allow_replan: bool = False
    ) -> int:
        """What a swap to ``model`` at ``version`` would be checked for, without swapping:
        returns the version number it resolves to.

        Raises:
            SwapError: 404 unknown model or version, 409 not compatible (see :meth:`swap`).
        """
        try:
            target = self.registry.resolve(model, version)
        except RegistryError as e:
            self.metrics.swaps.labels("rejected").inc()
            raise SwapError(str(e), e.status) from e
        if (model, target) != self.serving:
            await self._check_compatible(model, target, allow_replan)
        return target

    # --- the swap --------------------------------------------------------------------------

    async def _swap(
        self,
        model: str,
        version: int | Literal["latest"],
        allow_replan: bool,
        trigger: Trigger,
        rollback: bool,
    ) -> SwapRecord:
        t0 = time.monotonic()
        target = await self.check(model, version, allow_replan)
        old_model, old_version = self.serving
        if (model, target) == (old_model, old_version):
            self.metrics.swaps.labels("rejected").inc()
            raise SwapError(f"{model} version {target} is already serving", 409)
        record = SwapRecord(
            id=self._next_id,
            model=model,
            version=target,
            from_model=old_model,
            from_version=old_version,
            trigger=trigger,
            requested_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
        )
        self._next_id += 1
        self.history.append(record)
        log.info(
            "model swap %d (%s): %s:%d → %s:%d",
            record.id,
            trigger,
            old_model,
            old_version,
            model,
            target,
        )
        try:
            route = await self._prepare(record)
        except SwapError as e:
            record.state, record.error = "failed", str(e)
            self.metrics.swaps.labels("failed").inc()
            log.error("model swap %d failed, %s:%d keeps serving: %s", record.id, *self.serving, e)
            e.record = record
            raise
        old_route = self.pipeline.switch(route)
        switched = time.monotonic()
        record.switch_s = round(switched - t0, 3)
        self._commit(model, target, old_model, old_version, rollback)
        await self._finish(record, route, old_route, t0)
        return record

    async def _check_compatible(self, model: str, target: int, allow_replan: bool) -> None:
        old_model, old_version = self.serving
        try:
            new_sig = await self.registry.signature(model, target)
            old_sig = await self.registry.signature(old_model, old_version)
            new_parser = self.registry.config(model).parameters["vigil.parser"].string_value
            old_parser = self.registry.config(old_model).parameters["vigil.parser"].string_value
        except RegistryError as e:
            self.metrics.swaps.labels("rejected").inc()
            raise SwapError(str(e), e.status) from e
        differences = old_sig.differences(new_sig)
        if new_parser != old_parser:
            differences.append(f"parser: {old_parser!r} → {new_parser!r}")
        if differences and not allow_replan:
            self.metrics.swaps.labels("rejected").inc()
            raise SwapError(
                f"{model} version {target} is not compatible with the serving "
                f"{old_model} version {old_version}: {'; '.join(differences)} "
                '(send "allow_replan": true to re-plan preprocessing and parsing at the switch)',
                409,
            )

    async def _prepare(self, record: SwapRecord) -> Route:
        """Load, describe, route and warm up the new version; undo all of it on failure."""
        model, target = record.model, record.version
        same_model = model == record.from_model
        loaded: list[int] = [record.from_version, target] if same_model else [target]
        route: Route | None = None
        try:
            states = (await self.client.loaded_versions()).get(model, {})
            if states.get(str(target)) != "READY":  # kept loaded by an earlier swap: no load
                if self.registry.publish is not None:
                    # A version another worker added to a shared repository is not yet in
                    # this worker's embedded server's copy of it.
                    try:
                        await asyncio.to_thread(self.registry.publish, model, target)
                    except (RepositoryError, OSError) as e:
                        raise SwapError(f"cannot publish {model}:{target}: {e}", 422) from e
                try:
                    await self.client.load_versions(model, loaded)
                except ModelLoadError as e:
                    raise SwapError(str(e), 422) from e
            info = await self.client.model_info(model, target)
            parser = self.make_parser(info)
            route = await self.pipeline.prepare_route(info, parser)
            await self.pipeline.warm_up(route, self.warmup_rounds)
            return route
        except BaseException as e:
            if route is not None:
                await self.pipeline.discard(route)
            await self._restore(model, same_model, record.from_version)
            if isinstance(e, SwapError):
                raise
            if isinstance(e, UnsupportedModelError):
                raise SwapError(str(e), 422) from e
            if isinstance(e, InferError):
                ready, why = await self.client.model_ready(record.from_model)
                status = 422 if ready else 503
                detail = str(e) if ready else f"{e} ({why})"
                raise SwapError(f"warm-up of {model}:{target} failed: {detail}", status) from e
            raise

    async def _restore(self, model: str, same_model: bool, old_version: int) -> None:
        """Put Triton back as it was before a failed swap (best effort: logged, not raised)."""
        try:
            if same_model:
                await self.client.load_versions(model, [old_version])
            else:
                await self.client.unload_model(model)
        except InferError as e:
            log.warning("could not unload the failed version of %s: %s", model, e)

    async def _finish(self, record: SwapRecord, route: Route, old: Route, t0: float) -> None:
        """Wait for the first frame on the new route, drain the old one, unload it."""
        before = old.emitted
        first = asyncio.ensure_future(route.first_emit)
        await old.drained()
        record.drained_frames = old.emitted - before
        await self.pipeline.retire(old)
        # Versions other workers of a shared Triton still serve stay loaded.
        others = self.others_serve(old.model.name) if self.others_serve else set()
        try:
            if old.model.name != route.model.name:
                if others:
                    log.info(
                        "swap %d: %s stays loaded, other workers serve it", record.id, old.label
                    )
                else:
                    await self.client.unload_model(old.model.name)
            elif not self.keep_previous:
                keep = {int(route.model.version), *others}
                await self.client.load_versions(route.model.name, sorted(keep))
        except InferError as e:  # the new version serves; an old one left loaded is harmless
            log.warning("swap %d: could not unload %s: %s", record.id, old.label, e)
        # With no stream attached no frame comes; the swap is done without one.
        done, _ = await asyncio.wait([first], timeout=30)
        end = first.result() if done else time.monotonic()
        if not done:
            first.cancel()
        record.duration_s = round(end - t0, 3)
        record.state = "ok"
        self.metrics.swaps.labels("ok").inc()
        self.metrics.swap_seconds.observe(record.duration_s)
        log.info(
            "model swap %d done in %.2f s: %s serving (%d frames drained from %s)",
            record.id,
            record.duration_s,
            route.label,
            record.drained_frames,
            old.label,
        )

    def _commit(
        self, model: str, version: int, old_model: str, old_version: int, rollback: bool
    ) -> None:
        if rollback:
            self._state.previous.pop()
        else:
            self._state.previous.append((old_model, old_version))
            del self._state.previous[:-10]
        self._state.serving = (model, version)
        self._save()

    def _save(self) -> None:
        if self.state_file is None:
            return
        data = {
            "configured": self._state.configured,
            "serving": {"model": self.serving[0], "version": self.serving[1]},
            "previous": [{"model": m, "version": v} for m, v in self._state.previous],
        }
        try:
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.state_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(data, indent=2) + "\n")
            os.replace(tmp, self.state_file)
        except OSError as e:
            log.warning("cannot save the serving model version to %s: %s", self.state_file, e)


class ModelCommands:
    """The Kafka command processor's view of the lifecycle (its ``ModelControl``)."""

    rejections: tuple[type[Exception], ...] = (SwapError, RegistryError)

    def __init__(self, lifecycle: ModelLifecycle) -> None:
        self.lifecycle = lifecycle

    async def swap(self, model: str, version: int | Literal["latest"], allow_replan: bool) -> None:
        """Swap, as a Kafka command."""
        await self.lifecycle.swap(model, version, allow_replan, trigger="kafka")

    async def add_version(
        self, model: str, path: str, sha256: str | None, swap: bool, allow_replan: bool
    ) -> None:
        """Add a version from a server-side path (and swap to it), as a Kafka command."""
        await self.lifecycle.add_version(
            model, Path(path), sha256=sha256, swap=swap, allow_replan=allow_replan, trigger="kafka"
        )


def read_state(path: Path | None, configured_model: str) -> _State | None:
    """The persisted serving state, if it is for ``configured_model`` and readable."""
    if path is None:
        return None
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        data = json.loads(path.read_text())
        if data["configured"] != configured_model:
            return None
        serving = (str(data["serving"]["model"]), int(data["serving"]["version"]))
        previous = [(str(p["model"]), int(p["version"])) for p in data.get("previous", [])]
        return _State(configured_model, serving, previous)
    return None
