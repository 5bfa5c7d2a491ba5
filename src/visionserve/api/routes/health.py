"""Probes and metrics: ``/healthz`` (the process answers), ``/readyz`` (models loaded and warm,
not shutting down; 503 otherwise) and ``/metrics`` (Prometheus text format)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from visionserve.api.deps import MetricsDep, ServiceDep

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the server process answers")
async def healthz() -> dict[str, Any]:
    return {"status": "alive"}


@router.get("/readyz", summary="Readiness: models loaded and warm, not shutting down")
async def readyz(service: ServiceDep) -> JSONResponse:
    readiness = service.readiness()
    body = {
        "status": "ready" if readiness.ready else "not ready",
        "reason": readiness.reason,
        "models": {name: state.value for name, state in readiness.models.items()},
    }
    return JSONResponse(body, status_code=200 if readiness.ready else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(metrics: MetricsDep) -> Response:
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)
