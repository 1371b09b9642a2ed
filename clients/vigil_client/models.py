"""The model registry as the server reports it (``/api/v1/models``): models, their versions,
what is serving, and swaps.

The class names are the server's schema names (see its OpenAPI document), so one concept
has one name on both sides.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Literal

from vigil_client._http import HttpBase, path_segment
from vigil_client._json import (
    extra_keys,
    optional_float,
    parse_time,
    require,
    to_json,
)
from vigil_client.errors import LocalFileError

LONG_CALL_TIMEOUT_S: Final = 300.0
"""Least time an upload, swap or rollback is given to answer: the server validates an upload
(loads it in ONNX Runtime) and a swap answers only after the first frame on the new version."""

SwapState = Literal["running", "ok", "failed"]
"""States of a swap; other strings are passed through as they come."""


@dataclass(frozen=True, slots=True)
class TensorInfo:
    """One tensor of a batch item.

    Attributes:
        name: Tensor name in the model.
        dtype: Element type, e.g. ``"uint8"``.
        shape: Without the batch dimension; ``-1`` is dynamic.
    """

    name: str
    dtype: str
    shape: tuple[int, ...]

    @classmethod
    def from_dict(cls, data: Any) -> TensorInfo:
        """Build from a TensorInfo JSON object (``ValueError`` when malformed)."""
        data = require(data, ("name", "dtype", "shape"), "tensor")
        return cls(str(data["name"]), str(data["dtype"]), tuple(int(d) for d in data["shape"]))


@dataclass(frozen=True, slots=True)
class SignatureInfo:
    """Inputs and outputs of a version, read from its file, and its number of classes."""

    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    classes: int

    @classmethod
    def from_dict(cls, data: Any) -> SignatureInfo:
        """Build from a SignatureInfo JSON object (``ValueError`` when malformed)."""
        data = require(data, ("inputs", "outputs"), "signature")
        return cls(
            inputs=tuple(TensorInfo.from_dict(t) for t in data["inputs"]),
            outputs=tuple(TensorInfo.from_dict(t) for t in data["outputs"]),
            classes=int(data.get("classes") or 0),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class VersionInfo:
    """One version of a model.

    Attributes:
        version: Version number (the directory name in the model repository).
        state: Triton's state: ``READY``, ``LOADING``, ``UNAVAILABLE``, ``UNLOADED``.
        serving: Whether the pipeline's batches go to this version.
        format: Model format, e.g. ``"onnx"``.
        sha256: Checksum of the model file.
        origin: Where it came from: ``repository``, ``upload:<file>``, ``path:<path>``, ...
        added_at: When it was added.
        signature: Its inputs and outputs.
        input_format: Size, layout, color, dtype and normalization the preprocessing produces.
        parser: The output parser, e.g. ``"ssd"``.
        classes: Number of labels.
        labels: The labels (only from :meth:`VigilClient.get_model`; ``None`` in a listing).
        extra: Response keys unknown to this client version.
    """

    version: int
    state: str
    serving: bool
    format: str
    sha256: str
    origin: str
    added_at: datetime
    signature: SignatureInfo
    input_format: Mapping[str, Any] | None
    parser: str
    classes: int
    labels: tuple[str, ...] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, data: Any) -> VersionInfo:
        """Build from a VersionInfo JSON object (``ValueError`` when malformed)."""
        data = require(data, ("version", "state", "signature"), "model version")
        labels = data.get("labels")
        return cls(
            version=int(data["version"]),
            state=str(data["state"]),
            serving=bool(data.get("serving")),
            format=str(data.get("format") or ""),
            sha256=str(data.get("sha256") or ""),
            origin=str(data.get("origin") or ""),
            added_at=parse_time(data.get("added_at")),
            signature=SignatureInfo.from_dict(data["signature"]),
            input_format=data.get("input_format"),
            parser=str(data.get("parser") or ""),
            classes=int(data.get("classes") or 0),
            labels=None if labels is None else tuple(str(label) for label in labels),
            extra=extra_keys(data, cls),
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON object the server sent (unknown keys included; times in UTC as ``Z``)."""
        return to_json(self)


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelDetail:
    """A model and its versions.

    Attributes:
        name: Model name in the repository.
        format: Model format.
        max_batch_size: Triton's ``max_batch_size``.
        parameters: The model config's parameters.
        loadable_here: Whether the connected Triton can load this format.
        versions: Its versions, oldest first.
        extra: Response keys unknown to this client version.
    """

    name: str
    format: str
    max_batch_size: int
    parameters: Mapping[str, str]
    loadable_here: bool
    versions: tuple[VersionInfo, ...]
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def serving_version(self) -> VersionInfo | None:
        """The version the pipeline serves, if it is one of this model's."""
        return next((v for v in self.versions if v.serving), None)

    @classmethod
    def from_dict(cls, data: Any) -> ModelDetail:
        """Build from a ModelDetail JSON object (``ValueError`` when malformed)."""
        data = require(data, ("name", "versions"), "model")
        return cls(
            name=str(data["name"]),
            format=str(data.get("format") or ""),
            max_batch_size=int(data.get("max_batch_size") or 0),
            parameters={str(k): str(v) for k, v in (data.get("parameters") or {}).items()},
            loadable_here=bool(data.get("loadable_here", True)),
            versions=tuple(VersionInfo.from_dict(v) for v in data["versions"]),
            extra=extra_keys(data, cls),
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON object the server sent (unknown keys included; times in UTC as ``Z``)."""
        return to_json(self)


@dataclass(frozen=True, slots=True)
class Serving:
    """A model version: the one new batches go to, or a rollback target."""

    model: str
    version: int

    @classmethod
    def from_dict(cls, data: Any) -> Serving:
        """Build from a Serving JSON object (``ValueError`` when malformed)."""
        data = require(data, ("model", "version"), "serving")
        return cls(str(data["model"]), int(data["version"]))


@dataclass(frozen=True, slots=True, kw_only=True)
class SwapInfo:
    """A swap: what, from what, how it went and how long it took.

    Attributes:
        id: Swap number.
        model: The model swapped to.
        version: The version swapped to.
        from_model: The model that served before.
        from_version: The version that served before.
        trigger: What asked for it: ``rest``, ``ota``, ``kafka``, ...
        requested_at: When it was asked for.
        state: One of :data:`SwapState`.
        error: Why it failed (empty otherwise).
        duration_s: Request → first frame on the new version.
        switch_s: Request → routing switched (load and warm-up).
        drained_frames: Frames finished on the old version after the switch.
        extra: Response keys unknown to this client version.
    """

    id: int
    model: str
    version: int
    from_model: str
    from_version: int
    trigger: str
    requested_at: datetime
    state: str
    error: str = ""
    duration_s: float | None = None
    switch_s: float | None = None
    drained_frames: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, data: Any) -> SwapInfo:
        """Build from a SwapInfo JSON object (``ValueError`` when malformed)."""
        data = require(data, ("id", "model", "version", "state"), "swap")
        return cls(
            id=int(data["id"]),
            model=str(data["model"]),
            version=int(data["version"]),
            from_model=str(data.get("from_model") or ""),
            from_version=int(data.get("from_version") or 0),
            trigger=str(data.get("trigger") or ""),
            requested_at=parse_time(data.get("requested_at")),
            state=str(data["state"]),
            error=str(data.get("error") or ""),
            duration_s=optional_float(data.get("duration_s")),
            switch_s=optional_float(data.get("switch_s")),
            drained_frames=int(data.get("drained_frames") or 0),
            extra=extra_keys(data, cls),
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON object the server sent (unknown keys included; times in UTC as ``Z``)."""
        return to_json(self)


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerSwap:
    """One worker's outcome of a cluster-wide swap.

    Attributes:
        worker: The worker id.
        state: ``pending`` (not started there yet), ``running``, ``ok`` or ``failed``.
        error: Why it failed there (empty otherwise).
        serving: The version it serves afterwards, ``name:version``.
    """

    worker: str
    state: str
    error: str = ""
    serving: str = ""

    @classmethod
    def from_dict(cls, data: Any) -> WorkerSwap:
        """Build from a SwapReport JSON object (``ValueError`` when malformed)."""
        data = require(data, ("worker", "state"), "worker swap")
        return cls(
            worker=str(data["worker"]),
            state=str(data["state"]),
            error=str(data.get("error") or ""),
            serving=str(data.get("serving") or ""),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterSwapInfo:
    """A swap on a cluster worker: applied by every worker (docs/scale-out.md).

    Attributes:
        request: The request's id.
        model: The model swapped to.
        version: The version swapped to.
        complete: Every live worker reported its outcome (else the server answered 202).
        workers: Each live worker's outcome.
    """

    request: str
    model: str
    version: int
    complete: bool
    workers: list[WorkerSwap]

    @property
    def state(self) -> str:
        """``ok`` when every worker serves it, ``failed`` when one failed, else ``running``."""
        states = {w.state for w in self.workers}
        if "failed" in states:
            return "failed"
        return "ok" if self.complete and states <= {"ok"} else "running"

    @classmethod
    def from_dict(cls, data: Any) -> ClusterSwapInfo:
        """Build from a ClusterSwap JSON object (``ValueError`` when malformed)."""
        data = require(data, ("request", "model", "version", "workers"), "cluster swap")
        return cls(
            request=str(data["request"]),
            model=str(data["model"]),
            version=int(data["version"]),
            complete=bool(data.get("complete")),
            workers=[WorkerSwap.from_dict(w) for w in data["workers"]],
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON object the server sent."""
        return to_json(self)


def parse_swap(data: Any) -> SwapInfo | ClusterSwapInfo:
    """A swap answer: one process's swap, or (on a cluster worker) every worker's."""
    if isinstance(data, dict) and "workers" in data:
        return ClusterSwapInfo.from_dict(data)
    return SwapInfo.from_dict(data)


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelList:
    """Every model, what is serving, rollback targets and recent swaps.

    Attributes:
        serving: The version new batches go to.
        previous: Rollback targets, newest last.
        swap_in_progress: Whether a swap is running now.
        models: Every model in the repository (``labels`` left out of their versions).
        swaps: Recent swaps, newest last.
        extra: Response keys unknown to this client version.
    """

    serving: Serving
    previous: tuple[Serving, ...]
    swap_in_progress: bool
    models: tuple[ModelDetail, ...]
    swaps: tuple[SwapInfo, ...]
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, data: Any) -> ModelList:
        """Build from a ModelList JSON object (``ValueError`` when malformed)."""
        data = require(data, ("serving", "models"), "model list")
        return cls(
            serving=Serving.from_dict(data["serving"]),
            previous=tuple(Serving.from_dict(s) for s in data.get("previous") or ()),
            swap_in_progress=bool(data.get("swap_in_progress")),
            models=tuple(ModelDetail.from_dict(m) for m in data["models"]),
            swaps=tuple(SwapInfo.from_dict(s) for s in data.get("swaps") or ()),
            extra=extra_keys(data, cls),
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON object the server sent (unknown keys included; times in UTC as ``Z``)."""
        return to_json(self)


class ModelsMixin(HttpBase):
    """The ``/api/v1/models`` calls of :class:`~vigil_client.VigilClient`."""

    def list_models(self) -> ModelList:
        """Every model and version with Triton's state, what is serving, recent swaps."""
        return self._parse(self._request("GET", "models"), ModelList.from_dict)

    def get_model(self, name: str) -> ModelDetail:
        """One model, with every version's labels.

        Raises:
            NotFoundError: No model has this name (the message lists those there are).
        """
        return self._parse(self._request("GET", _model_path(name)), ModelDetail.from_dict)

    def upload_model_version(
        self,
        name: str,
        path: str | Path,
        *,
        sha256: str | None = None,
        version: int | None = None,
        timeout_s: float | None = None,
    ) -> VersionInfo:
        """Upload a file as a new version of a model. It is validated and added; nothing is
        swapped (see :meth:`swap_model`).

        Args:
            name: The model.
            path: A model file (``model.onnx``, ``model.plan``, ``model.graphdef``,
                ``model.py``) or an archive (``.zip``, ``.tar.gz``) of a version directory.
                The server takes the format from the file name.
            sha256: The checksum the file must have. Without it, the client computes the
                file's checksum and sends that, so the server still refuses an upload that
                was changed on the way.
            version: Version number; default: the next one.
            timeout_s: How long to wait for the answer; default: the client's timeout, but
                at least :data:`LONG_CALL_TIMEOUT_S`.

        Returns:
            The new version.

        Raises:
            LocalFileError: ``path`` cannot be read.
            NotFoundError: No model has this name.
            ValidationError: The file is not a valid model, its checksum does not match, or
                the version exists (the message says which).
            VigilError: 413 when the file is larger than the server's
                ``model.max_upload_bytes``.
        """
        path = Path(path)
        form: dict[str, str] = {"sha256": sha256 or _file_sha256(path)}
        if version is not None:
            form["version"] = str(version)
        try:
            upload = path.open("rb")
        except OSError as e:
            raise LocalFileError(f"cannot read model file {path}: {e}", path=path) from e
        with upload:
            response = self._request(
                "POST",
                f"{_model_path(name)}/versions",
                files={"file": (path.name, upload, "application/octet-stream")},
                data=form,
                timeout_s=self._long_timeout(timeout_s),
                expect=(201, 200),
            )
        return self._parse(response, VersionInfo.from_dict)

    def swap_model(
        self,
        name: str,
        version: int | Literal["latest"] = "latest",
        *,
        allow_replan: bool = False,
        timeout_s: float | None = None,
    ) -> SwapInfo | ClusterSwapInfo:
        """Hot-swap the pipeline to a version of a model without stopping any stream.

        Returns when the first frame has been processed on the new version; on a cluster
        worker, a :class:`ClusterSwapInfo` with every worker's outcome.

        Args:
            name: The model.
            version: Version number, or ``"latest"``.
            allow_replan: Allow a version whose inputs, outputs, classes or parser differ
                (preprocessing and parsing are re-planned at the switch).
            timeout_s: How long to wait; default: the client's timeout, but at least
                :data:`LONG_CALL_TIMEOUT_S`.

        Raises:
            NotFoundError: Unknown model or version.
            ConflictError: The version is incompatible (the mismatch is named), already
                serving, or another swap is running.
            ValidationError: The version cannot be loaded or run (Triton's message).
            ServerError: 503 when Triton is unavailable.
        """
        body = {"version": version, "allow_replan": allow_replan}
        response = self._request(
            "POST", f"{_model_path(name)}/swap", json=body, timeout_s=self._long_timeout(timeout_s)
        )
        return self._parse(response, parse_swap)

    def rollback_model(
        self, name: str, *, timeout_s: float | None = None
    ) -> SwapInfo | ClusterSwapInfo:
        """Swap back to the version that served before the current one.

        Args:
            name: The serving model (a safeguard: the server refuses another name).
            timeout_s: As for :meth:`swap_model`.

        Raises:
            ConflictError: ``name`` is not serving, or there is nothing to roll back to.
        """
        response = self._request(
            "POST", f"{_model_path(name)}/rollback", timeout_s=self._long_timeout(timeout_s)
        )
        return self._parse(response, parse_swap)

    def _long_timeout(self, timeout_s: float | None) -> float:
        return max(self.timeout_s, LONG_CALL_TIMEOUT_S) if timeout_s is None else timeout_s


def _model_path(name: str) -> str:
    return f"models/{path_segment(name, 'model name')}"


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    except OSError as e:
        raise LocalFileError(f"cannot read model file {path}: {e}", path=path) from e
    return digest.hexdigest()
