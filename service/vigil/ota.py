"""DeepStream-style OTA: a watched override file says which model version should serve.

``vigil serve --ota-override FILE`` (setting ``model.ota_override_file``) polls ``FILE``. Its
content names a version or a model file::

    # YAML (or JSON)
    model: ssd_mobilenet_v2_coco     # optional: default is the serving model
    version: 3                       # a number or "latest", or instead:
    file: /models/ssd-2026-11.onnx   # a model file or directory, added as a new version
    sha256: 9f2c...                  # optional, checked when `file` is given
    allow_replan: false

or, as DeepStream's ``deepstream-test5 -o`` override file, an INI file whose
``[primary-gie]`` section has ``onnx-file`` or ``model-engine-file``.

When the content changes, the same swap path as ``POST /api/v1/models/{name}/swap`` runs.
A file is compared by its content, read through its path each time, so a Kubernetes
ConfigMap update (an atomic swap of the ``..data`` symlink) is seen like an edit. A file
that is missing or malformed is logged once per change and changes nothing; a failed
swap is not retried until the file changes again. The content present at start-up is
applied too: the file is the desired state.
"""

from __future__ import annotations

import asyncio
import configparser
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from vigil.infer.errors import RegistryError
from vigil.lifecycle import ModelLifecycle, SwapError

log = logging.getLogger(__name__)


class OverrideError(ValueError):
    """The override file cannot be read or says nothing usable."""


class Override(BaseModel):
    """What an override file asks for."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(None, min_length=1, max_length=256)
    version: int | Literal["latest"] | None = None
    file: Path | None = None
    sha256: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$")
    allow_replan: bool = False

    @model_validator(mode="after")
    def _one_target(self) -> Override:
        if (self.version is None) == (self.file is None):
            raise ValueError("give exactly one of 'version' and 'file'")
        if self.file is not None and not self.file.is_absolute():
            raise ValueError("'file' must be an absolute path")
        if isinstance(self.version, int) and self.version < 1:
            raise ValueError("'version' must be >= 1 or 'latest'")
        return self


def parse_override(text: str) -> Override:
    """Parse an override file's content (YAML/JSON, or DeepStream's INI form).

    Raises:
        OverrideError: unreadable or invalid, with the reason.
    """
    if text.lstrip().startswith("["):
        return _parse_deepstream(text)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise OverrideError(f"not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise OverrideError("must be a mapping with 'version' or 'file'")
    try:
        return Override.model_validate(data)
    except ValidationError as e:
        parts = [
            f"{'.'.join(str(p) for p in err['loc']) or 'file'}: {err['msg']}" for err in e.errors()
        ]
        raise OverrideError("; ".join(parts)) from None


def _parse_deepstream(text: str) -> Override:
    parser = configparser.ConfigParser()
    try:
        parser.read_string(text)
    except configparser.Error as e:
        raise OverrideError(f"not a valid DeepStream override file: {e}") from e
    if not parser.has_section("primary-gie"):
        raise OverrideError("DeepStream override file has no [primary-gie] section")
    section = parser["primary-gie"]
    for key in ("onnx-file", "model-engine-file"):
        if section.get(key):
            try:
                return Override(file=Path(section[key]))
            except ValidationError as e:
                raise OverrideError(f"[primary-gie] {key}: {e.errors()[0]['msg']}") from None
    raise OverrideError("[primary-gie] names no onnx-file or model-engine-file")


@dataclass
class OtaStatus:
    """What the watcher last did, for logs and tests."""

    applied: int = 0
    rejected: int = 0
    last_error: str = ""


class OtaWatcher:
    """Polls an override file and swaps the model when its content changes.

    Args:
        path: The override file (may be a symlink, e.g. into a ConfigMap's ``..data``).
        lifecycle: Where swaps go.
        poll_s: Seconds between checks.
    """

    def __init__(self, path: Path, lifecycle: ModelLifecycle, poll_s: float = 1.0) -> None:
        self.path = path
        self.lifecycle = lifecycle
        self.poll_s = poll_s
        self.status = OtaStatus()
        self._seen: str | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start polling in the background."""
        self._task = asyncio.create_task(self._run(), name="ota-watcher")

    async def close(self) -> None:
        """Stop polling (a swap in progress finishes first: it is shielded)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def check(self) -> None:
        """Look at the file once; apply it if its content changed."""
        try:
            content = await asyncio.to_thread(self.path.read_bytes)
        except OSError as e:
            fingerprint = f"missing:{e.strerror}"
            if fingerprint != self._seen:
                log.error("OTA override file %s cannot be read: %s", self.path, e.strerror)
                self._seen = fingerprint
            return
        fingerprint = hashlib.sha256(content).hexdigest()
        if fingerprint == self._seen:
            return
        self._seen = fingerprint
        try:
            override = parse_override(content.decode("utf-8", errors="replace"))
        except OverrideError as e:
            self._reject(f"OTA override file {self.path} is malformed, nothing changes: {e}")
            return
        await asyncio.shield(self._apply(override))

    async def _apply(self, override: Override) -> None:
        model = override.model or self.lifecycle.serving[0]
        try:
            if override.file is not None:
                number, record = await self.lifecycle.add_version(
                    model,
                    override.file,
                    sha256=override.sha256,
                    swap=True,
                    allow_replan=override.allow_replan,
                    trigger="ota",
                    reuse_existing=True,
                )
            else:
                assert override.version is not None
                number = self.lifecycle.registry.resolve(model, override.version)
                record = None
                if self.lifecycle.serving != (model, number):
                    record = await self.lifecycle.swap(
                        model, number, override.allow_replan, trigger="ota"
                    )
        except (SwapError, RegistryError) as e:
            self._reject(f"OTA override {self.path}: {model} not swapped: {e}")
            return
        self.status.applied += 1
        if record is None:
            log.info("OTA override %s: %s:%d already serving", self.path, model, number)

    def _reject(self, message: str) -> None:
        log.error("%s", message)
        self.status.rejected += 1
        self.status.last_error = message

    async def _run(self) -> None:
        while True:
            try:
                await self.check()
            except Exception:  # never let the watcher die: log and keep polling
                log.exception("OTA watcher: unexpected error")
            await asyncio.sleep(self.poll_s)
