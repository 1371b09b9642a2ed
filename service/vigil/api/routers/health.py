"""Liveness, readiness, health and Prometheus metrics."""

from __future__ import annotations

from collections import Counter

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from vigil.api.bodies import Health, Live, OutageInfo, Ready
from vigil.api.deps import RuntimeDep, require_read_key
from vigil.runtime import Runtime

router = APIRouter(tags=["health"])


@router.get("/api/v1/live")
async def live() -> Live:
    """The process is up and answering."""
    return Live()


async def readiness(runtime: Runtime) -> tuple[bool, str]:
    """Whether Vigil can serve (pipeline running, Triton up, model loaded) and why not."""
    if runtime.pipeline.failure is not None:
        return False, f"pipeline stopped: {runtime.pipeline.failure}"
    if runtime.pipeline.paused_reason is not None:
        return False, runtime.pipeline.paused_reason
    return await runtime.triton.client.model_ready(runtime.model.name)


@router.get(
    "/api/v1/ready", responses={503: {"model": Ready, "description": "Not ready, with reason"}}
)
async def ready(runtime: RuntimeDep) -> Ready:
    """Triton is ready, the model is loaded and the pipeline runs."""
    ok, reason = await readiness(runtime)
    body = Ready(
        ready=ok, model=runtime.model.name, model_version=runtime.model.version, reason=reason
    )
    if not ok:
        return JSONResponse(body.model_dump(), status_code=503)  # type: ignore[return-value]
    return body


@router.get("/api/v1/health", dependencies=[Depends(require_read_key)])
async def health(runtime: RuntimeDep) -> Health:
    """Triton, model and streams at a glance; ``degraded`` if not ready or a stream failed."""
    ok, reason = await readiness(runtime)
    states = Counter(s.state.value for s in runtime.streams.statuses())
    triton: dict[str, str | bool] = {
        "ready": ok,
        "mode": "embedded" if runtime.triton.server else "external",
        "url": runtime.triton.client.url,
    }
    if reason:
        triton["reason"] = reason
    recovery = runtime.recovery
    outages = (
        [*recovery.history, *([recovery.outage] if recovery.outage else [])] if recovery else []
    )
    return Health(
        status="ok" if ok and not states.get("error") else "degraded",
        triton=triton,
        model=runtime.model.name,
        streams=dict(states),
        outages=[
            OutageInfo(
                reason=o.reason,
                started_s=o.started_s,
                ended_s=o.ended_s,
                duration_s=round(o.duration_s, 3),
                attempts=o.attempts,
                lost_frames=o.lost_frames,
            )
            for o in outages[-10:]
        ],
        plugins=runtime.plugin_list(),  # type: ignore[arg-type]
    )


@router.get("/metrics", dependencies=[Depends(require_read_key)], response_class=Response)
async def metrics(runtime: RuntimeDep) -> Response:
    """Prometheus metrics (text exposition format)."""
    return Response(generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)
