"""Probes and metrics: ``/healthz`` (the process answers), ``/readyz`` (models loaded and warm, the
jobs database answering, not shutting down; 503 otherwise) and ``/metrics`` (Prometheus text format)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from visionserve.api.deps import MetricsDep, ServiceDep
from visionserve.api.jobs_wiring import JobsCollector, fetch_job_stats, storage_problem

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the server process answers")
async def healthz() -> dict[str, Any]:
    return {"status": "alive"}


@router.get("/readyz", summary="Readiness: models loaded and warm, jobs database up, not shutting down")
async def readyz(request: Request, service: ServiceDep) -> JSONResponse:
    readiness = service.readiness()
    storage = await storage_problem(getattr(request.app.state, "jobs", None))
    ready = readiness.ready and storage is None
    body = {
        "status": "ready" if ready else "not ready",
        "reason": readiness.reason if storage is None or not readiness.ready else f"jobs database: {storage}",
        "models": {name: state.value for name, state in readiness.models.items()},
        "jobs_database": "unavailable" if storage else "ok",
    }
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request, metrics: MetricsDep) -> Response:
    # Job stats query the database and the broker: read them in a thread, render on the loop.
    stats = await fetch_job_stats(getattr(request.app.state, "jobs", None))
    body, content_type = metrics.render(JobsCollector(stats))
    return Response(body, media_type=content_type)
