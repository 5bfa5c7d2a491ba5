"""KServe v2 / Open Inference Protocol routes, as Triton serves them over HTTP (``/v2/...``).

Health, server and model metadata, readiness, inference (JSON or binary tensors, gzip/deflate
bodies), the model-repository extension (index, load, unload), and Triton's model configuration and
statistics extensions (``config``, ``stats``). Errors are ``{"error": ...}`` (those raised before a
route runs too: see :class:`~visionserve.api.errors.KServeErrorShape`).
Readiness routes answer 200 or 400 with no body, as the protocol's boolean answers do.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from visionserve import __version__
from visionserve.api import kserve_infer
from visionserve.api.deps import ServiceDep, SettingsDep
from visionserve.api.metrics import tag_model
from visionserve.api.routes.protocol_support import ProtocolError, protocol_route
from visionserve.api.wire import kserve_v2 as v2
from visionserve.api.wire import triton_config, triton_stats
from visionserve.serving.results import ModelState
from visionserve.serving.service import DetectionService


def _error(error: ProtocolError) -> Response:
    return JSONResponse(v2.render_error(error.message).model_dump(), status_code=error.status, headers=error.headers)


router = APIRouter(prefix="/v2", tags=["kserve-v2"], route_class=protocol_route(_error))


def _json(document: object) -> Response:
    return JSONResponse(document)


def _model(service: DetectionService, name: str, version: str | None, request: Request) -> str:
    """``name`` checked to exist (and to have ``version`` when one is given)."""
    tag_model(request, service.resolve_name(name))
    return kserve_infer.checked_model(service, name, version)


@router.get("", summary="Server metadata")
async def server_metadata() -> Response:
    return _json(v2.render_server_metadata(__version__).model_dump())


@router.get("/health/live", summary="Server liveness")
async def live() -> Response:
    return Response(status_code=200)


@router.get("/health/ready", summary="Server readiness")
async def ready(service: ServiceDep) -> Response:
    return Response(status_code=200 if service.readiness().ready else 400)


@router.get("/models/stats", summary="Statistics of every model")
async def all_model_stats(service: ServiceDep) -> Response:
    entries = [
        (status.name, status.spec.version, service.stats.snapshot(status.name))
        for status in service.models()
        if status.spec is not None
    ]
    return _json(triton_stats.statistics_response(entries))


@router.get("/models/{name}", summary="Model metadata")
@router.get("/models/{name}/versions/{version}", summary="Model metadata of a version")
async def model_metadata(name: str, service: ServiceDep, request: Request, version: str | None = None) -> Response:
    spec = service.spec(_model(service, name, version, request))
    return _json(v2.render_model_metadata(spec.name, spec.version, spec.backend.value, spec.task).model_dump())


@router.get("/models/{name}/ready", summary="Model readiness")
@router.get("/models/{name}/versions/{version}/ready", summary="Model readiness of a version")
async def model_ready(name: str, service: ServiceDep, request: Request, version: str | None = None) -> Response:
    state = service.model(_model(service, name, version, request)).state
    return Response(status_code=200 if state is ModelState.LOADED else 400)


@router.get("/models/{name}/config", summary="Model configuration (Triton's shape)")
@router.get("/models/{name}/versions/{version}/config", summary="Model configuration of a version")
async def model_config(name: str, service: ServiceDep, request: Request, version: str | None = None) -> Response:
    status = service.model(_model(service, name, version, request))
    return _json(triton_config.model_config(service.spec(name), status.instances))


@router.get("/models/{name}/stats", summary="Model statistics")
@router.get("/models/{name}/versions/{version}/stats", summary="Model statistics of a version")
async def model_stats(name: str, service: ServiceDep, request: Request, version: str | None = None) -> Response:
    spec = service.spec(_model(service, name, version, request))
    return _json(triton_stats.statistics_response([(spec.name, spec.version, service.stats.snapshot(spec.name))]))


@router.post("/models/{name}/infer", summary="Inference")
@router.post("/models/{name}/versions/{version}/infer", summary="Inference on a version")
async def infer(
    name: str, request: Request, service: ServiceDep, settings: SettingsDep, version: str | None = None
) -> Response:
    name = _model(service, name, version, request)
    body = v2.decode_body(await request.body(), request.headers.get("content-encoding"), settings.max_body_bytes)
    parsed = v2.parse_infer_request(body, v2.parse_header_length(request.headers.get(v2.HEADER_LENGTH_HEADER)))
    outcome = await kserve_infer.infer(service, name, parsed)
    content, header_length = v2.render_infer_response(
        name, outcome.version, parsed.request, outcome.wanted, outcome.tensors
    )
    if header_length is None:
        return Response(content, media_type="application/json")
    headers = {v2.HEADER_LENGTH_HEADER: str(header_length)}
    return Response(content, media_type="application/octet-stream", headers=headers)


@router.post("/repository/index", summary="Models of the repository and their states")
async def repository_index(request: Request, service: ServiceDep) -> Response:
    only_ready = v2.parse_index_request(await request.body()).ready
    entries = v2.repository_index(service.models(), only_ready)
    return _json([entry.model_dump(exclude_none=True) for entry in entries])


@router.post("/repository/models/{name}/load", summary="Load a model")
async def load(name: str, request: Request, service: ServiceDep) -> Response:
    tag_model(request, service.resolve_name(name))
    await service.load(name)
    return _json({})


@router.post("/repository/models/{name}/unload", summary="Unload a model")
async def unload(name: str, request: Request, service: ServiceDep) -> Response:
    tag_model(request, service.resolve_name(name))
    await service.unload(name)
    return _json({})
