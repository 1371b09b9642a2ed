"""``/api/v1/models``: the model registry, adding versions, hot swap and rollback."""

from __future__ import annotations

import asyncio
import re
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

from aiokafka.errors import KafkaError
from fastapi import APIRouter, Depends, File, Form, HTTPException, Response, UploadFile
from fastapi import Path as PathParam
from fastapi import status as http
from pydantic import BaseModel, ConfigDict, Field

from vigil.api.bodies import InvalidRequest, Problem
from vigil.api.deps import RuntimeDep, require_read_key, require_write_key
from vigil.cluster.models import ClusterSwap
from vigil.events.kafka_client import describe_error
from vigil.infer.errors import RegistryError
from vigil.infer.registry import ModelRecord, VersionRecord
from vigil.lifecycle import SwapError, SwapRecord
from vigil.runtime import Runtime

router = APIRouter(prefix="/api/v1/models", tags=["models"])

ModelName = Annotated[
    str,
    PathParam(
        min_length=1,
        max_length=256,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="Model name in the repository",
    ),
]

_UPLOAD_CHUNK = 1 << 20
_UPLOAD_PATH = re.compile(r"^/api/v1/models/[^/]+/versions$")


def has_own_body_limit(method: str, path: str) -> bool:
    """Whether a request is a model upload (:func:`upload_version`), whose body is bounded
    by ``model.max_upload_bytes`` rather than ``api.max_body_bytes``."""
    return method == "POST" and _UPLOAD_PATH.match(path) is not None


class TensorInfo(BaseModel):
    """One tensor of a batch item."""

    name: str
    dtype: str
    shape: list[int] = Field(description="Without the batch dimension; -1 is dynamic")


class SignatureInfo(BaseModel):
    """Inputs and outputs of a version, read from its file."""

    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    classes: int


class VersionInfo(BaseModel):
    """One version of a model."""

    version: int
    state: str = Field(description="Triton's state: READY, LOADING, UNAVAILABLE, UNLOADED")
    serving: bool = Field(description="Whether the pipeline's batches go to this version")
    format: str
    sha256: str
    origin: str = Field(description="Where it came from: repository, rest:<file>, ota:<path>...")
    added_at: str
    signature: SignatureInfo
    input_format: dict[str, Any] | None = Field(
        description="Size, layout, color, dtype and normalization the preprocessing produces"
    )
    parser: str
    classes: int
    labels: list[str] | None = None


class ModelDetail(BaseModel):
    """A model and its versions."""

    name: str
    format: str
    max_batch_size: int
    parameters: dict[str, str]
    loadable_here: bool = Field(
        description="Whether the connected Triton can load this format (the embedded server "
        "runs ONNX and Python models only)"
    )
    versions: list[VersionInfo]


class Serving(BaseModel):
    """The model version new batches go to."""

    model: str
    version: int


class SwapInfo(BaseModel):
    """A swap: what, from what, how it went and how long it took."""

    id: int
    model: str
    version: int
    from_model: str
    from_version: int
    trigger: str
    requested_at: str
    state: Literal["running", "ok", "failed"]
    error: str
    duration_s: float | None = Field(description="Request → first frame on the new version")
    switch_s: float | None = Field(description="Request → routing switched (load + warm-up)")
    drained_frames: int = Field(description="Frames finished on the old version after the switch")


class ModelList(BaseModel):
    """Every model, what is serving, and recent swaps (newest last)."""

    serving: Serving
    previous: list[Serving] = Field(description="Rollback targets, newest last")
    swap_in_progress: bool
    models: list[ModelDetail]
    swaps: list[SwapInfo]


class SwapRequest(BaseModel):
    """Which version to swap to."""

    model_config = ConfigDict(extra="forbid")

    version: int | Literal["latest"] = Field(
        description="Version number (>= 1) or 'latest'", examples=[2]
    )
    allow_replan: bool = Field(
        False,
        description="Allow a version whose inputs, outputs, classes or parser differ: "
        "preprocessing and parsing are re-planned at the switch",
    )


class PathImport(BaseModel):
    """Add a version from a file or directory on the server."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(
        min_length=1, max_length=4096, description="Absolute path on the server", examples=[""]
    )
    sha256: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$")
    version: int | None = Field(None, ge=1, description="Version number (default: next)")


_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "Unknown model or version"},
    409: {"model": Problem, "description": "Conflict (see detail)"},
    413: {"model": Problem, "description": "Model file too large"},
    422: {"model": InvalidRequest, "description": "Invalid model file or request"},
}
_SWAP_ERRORS: dict[int | str, dict[str, Any]] = {
    404: _ERRORS[404],
    409: {
        "model": Problem,
        "description": "Incompatible version (the mismatch is named), already serving, "
        "another swap running, or nothing to roll back to",
    },
    422: {
        "model": Problem,
        "description": "The version cannot be loaded or run (Triton's message)",
    },
    503: {"model": Problem, "description": "Triton is unavailable"},
    202: {
        "model": ClusterSwap,
        "description": "On a cluster worker: not every worker has reported its outcome yet "
        "(follow it in GET /api/v1/cluster)",
    },
}


def _detail(record: ModelRecord, runtime: Runtime, states: dict[str, str]) -> ModelDetail:
    serving_model, serving_version = runtime.models.serving
    versions = []
    for v in record.versions:
        v.state = states.get(str(v.version), "UNLOADED")
        v.serving = record.name == serving_model and v.version == serving_version
        versions.append(VersionInfo.model_validate(v.to_json()))
    return ModelDetail(
        name=record.name,
        format=str(record.format),
        max_batch_size=record.max_batch_size,
        parameters=record.parameters,
        loadable_here=record.loadable_here,
        versions=versions,
    )


async def _states(runtime: Runtime) -> dict[str, dict[str, str]]:
    try:
        return await runtime.triton.client.loaded_versions()
    except Exception:  # the list still answers while Triton is down; states show unknown
        return {}


def _registry_error(e: RegistryError) -> HTTPException:
    return HTTPException(e.status, str(e))


def _swap_error(e: SwapError) -> HTTPException:
    return HTTPException(e.status, str(e))


@router.get("", dependencies=[Depends(require_read_key)])
async def list_models(runtime: RuntimeDep) -> ModelList:
    """Every model in the repository with its versions, the serving version, recent swaps."""
    states = await _states(runtime)
    models = []
    for name in runtime.registry.names():
        try:
            record = await runtime.registry.model(name)
        except RegistryError:
            continue  # a broken config: GET /models/{name} names the problem
        detail = _detail(record, runtime, states.get(name, {}))
        for v in detail.versions:
            v.labels = None
        models.append(detail)
    model, version = runtime.models.serving
    return ModelList(
        serving=Serving(model=model, version=version),
        previous=[Serving(model=m, version=v) for m, v in runtime.models.previous],
        swap_in_progress=runtime.models.busy,
        models=models,
        swaps=[SwapInfo.model_validate(r.to_json()) for r in runtime.models.history],
    )


@router.get("/{name}", dependencies=[Depends(require_read_key)], responses=_ERRORS)
async def get_model(name: ModelName, runtime: RuntimeDep) -> ModelDetail:
    """One model: every version's signature, parser, labels, input format, checksum, origin."""
    try:
        record = await runtime.registry.model(name)
    except RegistryError as e:
        raise _registry_error(e) from None
    return _detail(record, runtime, (await _states(runtime)).get(name, {}))


@router.post(
    "/{name}/versions",
    status_code=http.HTTP_201_CREATED,
    dependencies=[Depends(require_write_key)],
    responses=_ERRORS,
)
async def upload_version(
    name: ModelName,
    runtime: RuntimeDep,
    file: Annotated[
        UploadFile,
        File(
            description="The model file (model.onnx, model.plan, model.graphdef, model.py) or "
            "an archive (.zip, .tar.gz) of the version directory"
        ),
    ],
    sha256: Annotated[
        str | None, Form(pattern=r"^[0-9a-fA-F]{64}$", description="Expected SHA-256")
    ] = None,
    version: Annotated[int | None, Form(ge=1, description="Version number (default: next)")] = None,
) -> VersionInfo:
    """Upload a new version (multipart). It is validated, then added; nothing is swapped."""
    registry = runtime.registry
    limit = registry.max_upload_bytes
    try:
        registry.config(name)
    except RegistryError as e:
        raise _registry_error(e) from None
    with tempfile.TemporaryDirectory(prefix="vigil-upload-") as tmp:
        upload = Path(tmp) / "upload"
        size = await _save_upload(file, upload, limit)
        if size == 0:
            raise HTTPException(422, "file: the uploaded file is empty")
        filename = Path(file.filename or "model").name
        try:
            staged = await asyncio.to_thread(registry.stage_upload, name, upload, filename)
            record = await registry.add_version(
                name, staged, origin=f"upload:{filename}", sha256=sha256, version=version
            )
        except RegistryError as e:
            raise _registry_error(e) from None
    return _detail_version(record, runtime, name)


@router.post(
    "/{name}/versions/from-path",
    status_code=http.HTTP_201_CREATED,
    dependencies=[Depends(require_write_key)],
    responses=_ERRORS,
)
async def import_version(name: ModelName, body: PathImport, runtime: RuntimeDep) -> VersionInfo:
    """Add a new version from a file or directory on the server (see ``model.import_roots``)."""
    registry = runtime.registry
    try:
        staged = await asyncio.to_thread(registry.stage_path, name, Path(body.path))
        record = await registry.add_version(
            name, staged, origin=f"path:{body.path}", sha256=body.sha256, version=body.version
        )
    except RegistryError as e:
        raise _registry_error(e) from None
    return _detail_version(record, runtime, name)


@router.post(
    "/{name}/swap",
    dependencies=[Depends(require_write_key)],
    responses=_SWAP_ERRORS,
    response_model=SwapInfo | ClusterSwap,
)
async def swap_model(
    name: ModelName, body: SwapRequest, runtime: RuntimeDep, response: Response
) -> SwapInfo | ClusterSwap:
    """Hot-swap the pipeline to this model version without stopping any stream.

    The new version is checked against the serving one, loaded beside it, warmed up with
    real frames, and takes over between two batches; the old one drains and is unloaded.
    Returns when the first frame has been processed on the new version.

    On a cluster worker the swap is checked here, then applied by every worker (each on the
    Triton it uses); the answer (a ``ClusterSwap``) gives each worker's outcome: ``200`` once
    every live worker has one, else ``202`` (follow it in ``GET /api/v1/cluster``).
    """
    if runtime.cluster is not None and runtime.cluster.models is not None:
        return await _cluster_swap(runtime, response, name, body.version, body.allow_replan)
    try:
        record = await runtime.models.swap(name, body.version, body.allow_replan, trigger="rest")
    except SwapError as e:
        raise _swap_error(e) from None
    return _swap_info(record)


@router.post(
    "/{name}/rollback",
    dependencies=[Depends(require_write_key)],
    responses=_SWAP_ERRORS,
    response_model=SwapInfo | ClusterSwap,
)
async def rollback_model(
    name: ModelName, runtime: RuntimeDep, response: Response
) -> SwapInfo | ClusterSwap:
    """Swap back to the version that served before the current one (on a cluster worker:
    every worker, to the version this one served before)."""
    serving_model, _ = runtime.models.serving
    if name != serving_model:
        raise HTTPException(409, f"model {name!r} is not serving (serving: {serving_model!r})")
    if runtime.cluster is not None and runtime.cluster.models is not None:
        if not runtime.models.previous:
            raise HTTPException(409, "no earlier version to roll back to")
        model, version = runtime.models.previous[-1]
        return await _cluster_swap(runtime, response, model, version, allow_replan=True)
    try:
        record = await runtime.models.rollback(trigger="rest")
    except SwapError as e:
        raise _swap_error(e) from None
    return _swap_info(record)


async def _cluster_swap(
    runtime: Runtime,
    response: Response,
    model: str,
    version: int | Literal["latest"],
    allow_replan: bool,
) -> ClusterSwap:
    models = runtime.cluster.models if runtime.cluster else None
    assert models is not None
    try:
        desired = await models.request(model, version, allow_replan)
    except SwapError as e:
        raise _swap_error(e) from None
    except KafkaError as e:
        raise HTTPException(
            http.HTTP_503_SERVICE_UNAVAILABLE,
            f"the model topic {models.topic} did not take the swap: {describe_error(e)}",
        ) from None
    outcome = await models.outcome(desired, runtime.settings.cluster.request_timeout_s)
    if not outcome.complete:
        response.status_code = http.HTTP_202_ACCEPTED
        response.headers["Location"] = "/api/v1/cluster"
    return outcome


def _swap_info(record: SwapRecord) -> SwapInfo:
    return SwapInfo.model_validate(record.to_json())


def _detail_version(record: VersionRecord, runtime: Runtime, name: str) -> VersionInfo:
    serving_model, serving_version = runtime.models.serving
    record.serving = name == serving_model and record.version == serving_version
    return VersionInfo.model_validate(record.to_json())


async def _save_upload(file: UploadFile, dest: Path, limit: int) -> int:
    """Copy an upload to ``dest``, refusing it (413) past ``limit`` bytes."""
    size = 0
    with dest.open("wb") as out:
        while chunk := await file.read(_UPLOAD_CHUNK):
            size += len(chunk)
            if size > limit:
                raise HTTPException(
                    413, f"file: larger than model.max_upload_bytes ({limit} bytes)"
                )
            out.write(chunk)
    return size
