"""The model registry: models and versions in the Triton repository, and adding versions.

The repository on disk is the source of truth (Triton reads it too): a model is a directory
with a ``config.pbtxt``, a version a numbered sub-directory. Vigil adds a sidecar
``vigil-version.json`` to the versions it adds (origin, checksum, time), and reads each
version's I/O signature from the model file itself.

A version is added in three steps, so that a bad upload never leaves a half-written version
behind: the files are *staged* in a hidden directory of the model, *validated* (format,
checksum, signature against ``config.pbtxt``), then *renamed* into place in one step.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tritonclient.grpc import model_config_pb2

from vigil.infer.archives import extract_tar, extract_zip
from vigil.infer.errors import RegistryError, UnsupportedModelError
from vigil.infer.model_formats import (
    FORMAT_RULES,
    ModelFormat,
    check_format,
    declared_signature,
    format_of,
    model_filename,
)
from vigil.infer.signature import Signature, SignatureError, read_onnx_signature
from vigil.infer.tensors import InputFormat
from vigil.triton.errors import RepositoryError
from vigil.triton.materializer import read_model_config, repository_models

log = logging.getLogger(__name__)

#: Sidecar file Vigil writes into each version it adds.
METADATA_FILE = "vigil-version.json"
_STAGING_PREFIX = ".incoming-"


@dataclass
class VersionRecord:
    """One version of a model, as the REST API shows it."""

    version: int
    format: ModelFormat
    path: Path
    sha256: str
    origin: str
    added_at: str
    signature: Signature
    input_format: dict[str, Any] | None
    parser: str
    labels: list[str]
    state: str = "UNLOADED"
    serving: bool = False

    def to_json(self, with_labels: bool = True) -> dict[str, Any]:
        """JSON form for the API."""
        out: dict[str, Any] = {
            "version": self.version,
            "state": self.state,
            "serving": self.serving,
            "format": str(self.format),
            "sha256": self.sha256,
            "origin": self.origin,
            "added_at": self.added_at,
            "signature": self.signature.to_json(),
            "input_format": self.input_format,
            "parser": self.parser,
            "classes": len(self.labels),
        }
        if with_labels:
            out["labels"] = self.labels
        return out


@dataclass
class ModelRecord:
    """A model and its versions."""

    name: str
    format: ModelFormat
    max_batch_size: int
    parameters: dict[str, str]
    versions: list[VersionRecord] = field(default_factory=list)
    loadable_here: bool = True

    def version(self, number: int) -> VersionRecord:
        """The record of version ``number``.

        Raises:
            RegistryError: (404) no such version.
        """
        for v in self.versions:
            if v.version == number:
                return v
        have = ", ".join(str(v.version) for v in self.versions) or "none"
        raise RegistryError(f"model {self.name!r} has no version {number} (has: {have})", 404)

    @property
    def latest(self) -> int:
        """The highest version number.

        Raises:
            RegistryError: (404) the model has no version.
        """
        if not self.versions:
            raise RegistryError(f"model {self.name!r} has no version yet", 404)
        return max(v.version for v in self.versions)


class ModelRegistry:
    """Models and versions of a Triton repository on local disk.

    Args:
        repository: The repository directory (Vigil's ``model_repository``).
        publish: Called with ``(model, version)`` after a version is added, to make it
            visible to the server (the embedded server's materialized repository); None
            when Triton reads ``repository`` directly.
        loadable: Formats the connected Triton can load (None: all).
        max_upload_bytes: Largest model file or archive accepted.
        import_roots: Server-side paths must lie under one of these (empty: any path).
    """

    def __init__(
        self,
        repository: Path,
        *,
        publish: Callable[[str, int], None] | None = None,
        loadable: set[ModelFormat] | None = None,
        max_upload_bytes: int = 4 << 30,
        import_roots: list[Path] | None = None,
    ) -> None:
        self.repository = repository
        self.publish = publish
        self.loadable = loadable
        self.max_upload_bytes = max_upload_bytes
        self.import_roots = [p.resolve() for p in import_roots or []]
        self._signatures: dict[tuple[str, int, float], Signature] = {}
        self._checksums: dict[tuple[Path, float, int], str] = {}
        self._add_lock = asyncio.Lock()

    # --- reading ---------------------------------------------------------------------------

    def names(self) -> list[str]:
        """Model names in the repository."""
        return repository_models(self.repository)

    def config(self, name: str) -> model_config_pb2.ModelConfig:
        """A model's parsed ``config.pbtxt``.

        Raises:
            RegistryError: (404) no such model (lists the ones there are); (422) the config
                is not valid.
        """
        path = self.repository / name / "config.pbtxt"
        if not _safe_name(name) or not path.is_file():
            listing = ", ".join(self.names()) or "none"
            raise RegistryError(f"unknown model {name!r}; available models: {listing}", 404)
        try:
            return read_model_config(path)
        except RepositoryError as e:
            raise RegistryError(str(e), 422) from e

    def version_numbers(self, name: str) -> list[int]:
        """Version numbers of ``name`` that hold a model file."""
        config = self.config(name)
        filename = model_filename(config)
        model_dir = self.repository / name
        return sorted(
            int(p.name)
            for p in model_dir.iterdir()
            if p.is_dir() and p.name.isdigit() and int(p.name) > 0 and (p / filename).exists()
        )

    async def model(self, name: str) -> ModelRecord:
        """A model with all its versions (signatures are read in a worker thread)."""
        config = self.config(name)
        fmt = format_of(config)
        parameters = {k: v.string_value for k, v in config.parameters.items()}
        record = ModelRecord(
            name=name,
            format=fmt,
            max_batch_size=config.max_batch_size,
            parameters=parameters,
            loadable_here=self.loadable is None or fmt in self.loadable,
        )
        for number in self.version_numbers(name):
            record.versions.append(await asyncio.to_thread(self._version, name, config, number))
        return record

    async def signature(self, name: str, version: int) -> Signature:
        """A version's signature (its file's tensors, and its labels)."""
        config = self.config(name)
        return (await asyncio.to_thread(self._version, name, config, version)).signature

    def resolve(self, name: str, version: int | str) -> int:
        """A version number from a number or ``"latest"``.

        Raises:
            RegistryError: (404) unknown model or version.
        """
        numbers = self.version_numbers(name)
        if version == "latest":
            if not numbers:
                raise RegistryError(f"model {name!r} has no version yet", 404)
            return numbers[-1]
        number = int(version)
        if number not in numbers:
            have = ", ".join(str(n) for n in numbers) or "none"
            raise RegistryError(f"model {name!r} has no version {number} (has: {have})", 404)
        return number

    def _version(
        self, name: str, config: model_config_pb2.ModelConfig, number: int
    ) -> VersionRecord:
        fmt = format_of(config)
        version_dir = self.repository / name / str(number)
        model_path = version_dir / model_filename(config)
        meta = _read_metadata(version_dir)
        declared = declared_signature(config)
        signature = self._file_signature(name, number, fmt, model_path, config, declared)
        labels = _labels(self.repository / name, number, config)
        signature = Signature(signature.inputs, signature.outputs, tuple(labels))
        parameters = {k: v.string_value for k, v in config.parameters.items()}
        return VersionRecord(
            version=number,
            format=fmt,
            path=model_path,
            sha256=meta.get("sha256") or self._checksum(model_path),
            origin=meta.get("origin", "repository"),
            added_at=meta.get("added_at") or _mtime_iso(model_path),
            signature=signature,
            input_format=_input_format(declared, parameters),
            parser=parameters.get("vigil.parser", ""),
            labels=labels,
        )

    def _file_signature(
        self,
        name: str,
        number: int,
        fmt: ModelFormat,
        path: Path,
        config: model_config_pb2.ModelConfig,
        declared: Signature,
    ) -> Signature:
        if fmt is not ModelFormat.ONNX:
            return declared  # only ONNX files can be inspected here; the config stands
        key = (name, number, path.stat().st_mtime)
        if key not in self._signatures:
            try:
                self._signatures[key] = read_onnx_signature(path, config.max_batch_size > 0)
            except SignatureError as e:
                log.warning("cannot read the signature of %s version %d: %s", name, number, e)
                return declared
        return self._signatures[key]

    def _checksum(self, path: Path) -> str:
        stat = path.stat()
        key = (path, stat.st_mtime, stat.st_size)
        if key not in self._checksums:
            self._checksums[key] = checksum(path)
        return self._checksums[key]

    # --- adding versions -------------------------------------------------------------------

    def staging_dir(self, name: str) -> Path:
        """A new, empty staging directory inside the model (same file system as the
        versions, so the final rename is atomic).

        Raises:
            RegistryError: (404) unknown model.
        """
        self.config(name)
        path = self.repository / name / f"{_STAGING_PREFIX}{uuid.uuid4().hex[:12]}"
        path.mkdir()
        return path

    def stage_path(self, name: str, source: Path) -> Path:
        """Copy a server-side file or directory into a new staging directory.

        A single file becomes the version's model file; a directory is copied as the
        version's content.

        Raises:
            RegistryError: (422) the path is outside ``import_roots``, missing or too large.
        """
        source = Path(source)
        if not source.is_absolute():
            raise RegistryError(f"path must be absolute: {source}", 422)
        resolved = source.resolve()
        if self.import_roots and not any(resolved.is_relative_to(r) for r in self.import_roots):
            roots = ", ".join(str(r) for r in self.import_roots)
            raise RegistryError(f"path {source} is outside the allowed import roots ({roots})", 422)
        if not resolved.exists():
            raise RegistryError(f"path {source} does not exist", 422)
        size = _tree_size(resolved)
        if size > self.max_upload_bytes:
            raise RegistryError(
                f"{source} is {size} bytes; the limit (model.max_upload_bytes) is "
                f"{self.max_upload_bytes}",
                413,
            )
        with self._filled_staging_dir(name) as staged:
            if resolved.is_dir():
                shutil.copytree(resolved, staged, dirs_exist_ok=True, symlinks=False)
            else:
                self._place_file(name, resolved, staged)
        return staged

    def stage_upload(self, name: str, upload: Path, filename: str) -> Path:
        """Move an uploaded file into a new staging directory.

        An archive (``.zip``, ``.tar``, ``.tar.gz``, ``.tgz``) is unpacked as the version's
        content, refusing absolute paths, ``..``, links and oversize content; any other file
        becomes the version's model file.

        Raises:
            RegistryError: (422) a bad archive; (413) too large.
        """
        with self._filled_staging_dir(name) as staged:
            lower = filename.lower()
            if lower.endswith(".zip"):
                extract_zip(upload, staged, self.max_upload_bytes)
            elif lower.endswith((".tar", ".tar.gz", ".tgz")):
                extract_tar(upload, staged, self.max_upload_bytes)
            else:
                self._place_file(name, upload, staged)
        return staged

    @contextmanager
    def _filled_staging_dir(self, name: str) -> Iterator[Path]:
        """A new staging directory for the block to fill; removed if the block raises."""
        staged = self.staging_dir(name)
        try:
            yield staged
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise

    def _place_file(self, name: str, source: Path, staged: Path) -> None:
        config = self.config(name)
        rule = FORMAT_RULES[format_of(config)]
        if rule.directory:
            raise RegistryError(
                f"model {name!r} is a {format_of(config)} model: a version is a directory "
                f"({rule.filename}/...); upload it as a .zip or .tar.gz archive",
                422,
            )
        shutil.copyfile(source, staged / model_filename(config))

    async def add_version(
        self,
        name: str,
        staged: Path,
        *,
        origin: str,
        sha256: str | None = None,
        version: int | None = None,
    ) -> VersionRecord:
        """Validate a staging directory and make it the next version (or ``version``).

        The staging directory is consumed: renamed into place, or removed on failure.

        Raises:
            RegistryError: (404) unknown model; (409) the version exists; (422) wrong format,
                checksum mismatch, corrupt file, or tensors that contradict ``config.pbtxt``.
        """
        async with self._add_lock:
            return await asyncio.to_thread(self._commit, name, staged, origin, sha256, version)

    def _commit(
        self, name: str, staged: Path, origin: str, sha256: str | None, version: int | None
    ) -> VersionRecord:
        try:
            config = self.config(name)
            digest = self._validate(name, config, staged, sha256)
            numbers = self.version_numbers(name)
            number = version if version is not None else (max(numbers, default=0) + 1)
            if number < 1:
                raise RegistryError("version must be >= 1", 422)
            target = self.repository / name / str(number)
            if target.exists():
                raise RegistryError(f"model {name!r} already has version {number}", 409)
            _write_metadata(
                staged,
                {
                    "format": str(format_of(config)),
                    "sha256": digest,
                    "origin": origin,
                    "added_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                },
            )
            staged.rename(target)
        finally:
            if staged.exists():
                shutil.rmtree(staged, ignore_errors=True)
        if self.publish is not None:
            self.publish(name, number)
        log.info(
            "model %s: added version %d from %s (sha256 %s)", name, number, origin, digest[:12]
        )
        return self._version(name, config, number)

    def find_by_checksum(self, name: str, sha256: str) -> int | None:
        """The version of ``name`` whose model file has this checksum, if any."""
        config = self.config(name)
        filename = model_filename(config)
        for number in self.version_numbers(name):
            version_dir = self.repository / name / str(number)
            digest = _read_metadata(version_dir).get("sha256") or self._checksum(
                version_dir / filename
            )
            if digest == sha256:
                return number
        return None

    def _validate(
        self, name: str, config: model_config_pb2.ModelConfig, staged: Path, sha256: str | None
    ) -> str:
        fmt = format_of(config)
        filename = model_filename(config)
        model_path = staged / filename
        if not model_path.exists():
            found = sorted(p.name for p in staged.iterdir()) or ["nothing"]
            raise RegistryError(
                f"model {name!r} ({fmt}) needs {filename} in the version; got {', '.join(found)}",
                422,
            )
        digest = checksum(model_path)
        if sha256 is not None and sha256.lower() != digest:
            raise RegistryError(f"sha256 mismatch: expected {sha256.lower()}, got {digest}", 422)
        check_format(fmt, model_path)
        if fmt is ModelFormat.ONNX:
            try:
                found_sig = read_onnx_signature(model_path, config.max_batch_size > 0)
            except SignatureError as e:
                raise RegistryError(str(e), 422) from e
            conflicts = found_sig.conflicts_with_config(declared_signature(config))
            if conflicts:
                raise RegistryError(
                    f"{filename} does not match {name}/config.pbtxt: " + "; ".join(conflicts),
                    422,
                )
        return digest

    def sweep_staging(self) -> None:
        """Remove staging directories left by a crash (called at start-up)."""
        for name in self.names():
            for leftover in (self.repository / name).glob(f"{_STAGING_PREFIX}*"):
                shutil.rmtree(leftover, ignore_errors=True)


# --- helpers -------------------------------------------------------------------------------


def checksum(path: Path) -> str:
    """SHA-256 of a file, or of a directory's files (relative names and contents, sorted)."""
    digest = hashlib.sha256()
    if path.is_dir():
        for item in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(str(item.relative_to(path)).encode() + b"\0")
            digest.update(bytes.fromhex(checksum(item)))
        return digest.hexdigest()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _input_format(declared: Signature, parameters: dict[str, str]) -> dict[str, Any] | None:
    if len(declared.inputs) != 1:
        return None
    try:
        fmt = InputFormat.from_tensor(declared.inputs[0], parameters)
    except UnsupportedModelError:
        return None
    return {
        "width": fmt.width,
        "height": fmt.height,
        "layout": str(fmt.layout),
        "color": "rgb",
        "dtype": np.dtype(fmt.dtype).name,
        "scale": fmt.scale,
        "resize": str(fmt.resize),
    }


def _labels(model_dir: Path, version: int, config: model_config_pb2.ModelConfig) -> list[str]:
    label_file = (
        config.parameters["vigil.labels"].string_value
        if "vigil.labels" in config.parameters
        else ""
    )
    if not label_file:
        return []
    for path in (model_dir / str(version) / label_file, model_dir / label_file):
        if path.is_file():
            return [line.strip() for line in path.read_text().splitlines()]
    return []


def _read_metadata(version_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((version_dir / METADATA_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_metadata(version_dir: Path, data: dict[str, Any]) -> None:
    (version_dir / METADATA_FILE).write_text(json.dumps(data, indent=2) + "\n")


def _mtime_iso(path: Path) -> str:
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(path.stat().st_mtime))
    except OSError:
        return ""


def _safe_name(name: str) -> bool:
    return bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name


def _tree_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
