"""DeepStack / CodeProject.AI routes: ``/v1/vision/detection``, ``/v1/vision/custom/{model}``,
``/v1/vision/custom/list`` (multipart ``image``, ``min_confidence``, ``api_key``).

The path is kept lean for NVR software that gives up after ~100 ms: one form read, one detection,
one render. Every error answers ``{"success": false, "error": ...}``; DeepStack has no 422, so bad
parameters are 400 as DeepStack sends them.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from visionserve.api.auth import BodyKeyRealm
from visionserve.api.deps import ServiceDep
from visionserve.api.metrics import tag_model
from visionserve.api.routes.protocol_support import ProtocolError, auth_renderer, protocol_route
from visionserve.api.wire import deepstack
from visionserve.errors import InputError
from visionserve.models.spec import ModelSpec
from visionserve.pipeline import PredictOptions
from visionserve.serving.service import DetectionService

_MAX_PARTS = 16
_HOST = socket.gethostname()


def _error(error: ProtocolError) -> Response:
    status = 400 if error.status == 422 else error.status
    body = deepstack.render_error(error.message, status).model_dump()
    return JSONResponse(body, status_code=status, headers=error.headers)


router = APIRouter(tags=["deepstack"], route_class=protocol_route(_error))
#: DeepStack clients send the key as the form field ``api_key`` (checked by the API-key middleware).
AUTH_REALMS = (BodyKeyRealm("/v1/vision/", auth_renderer(_error)),)


@dataclass(frozen=True)
class _Form:
    image: bytes | None
    min_confidence: str | None


async def _read_form(request: Request) -> _Form:
    async with request.form(max_files=_MAX_PARTS, max_fields=_MAX_PARTS) as form:
        image, conf = form.get("image"), form.get("min_confidence")
        data = await image.read() if isinstance(image, UploadFile) else None
    return _Form(data, conf if isinstance(conf, str) else None)


def _facts(spec: ModelSpec) -> deepstack.ServerFacts:
    return deepstack.ServerFacts(
        module_name=f"visionserve {spec.name}", execution_provider=spec.backend.value, processed_by=_HOST
    )


async def _detect(
    request: Request, service: DetectionService, model: str | None, command: deepstack.DeepStackCommand
) -> Response:
    started = time.perf_counter()
    form = await _read_form(request)
    if form.image is None:
        raise InputError("No valid image file found")
    min_confidence = deepstack.parse_min_confidence(form.min_confidence)
    name = service.resolve_name(model)
    tag_model(request, name)
    (result,) = await service.detect(name, [form.image], PredictOptions(conf=min_confidence))
    predictions = deepstack.to_predictions(
        result.detections, service.labels(name), result.width, result.height, min_confidence
    )
    t = result.timings
    timing = deepstack.Timing(
        t.decode_ms + t.preprocess_ms + t.inference_ms + t.postprocess_ms,
        t.inference_ms,
        (time.perf_counter() - started) * 1000.0,
        time.time(),
    )
    answer = deepstack.render_detection(predictions, command, timing, _facts(service.spec(name)))
    return JSONResponse(answer.model_dump(mode="json"))


@router.post("/v1/vision/detection", summary="DeepStack: detect with the default model")
async def detection(request: Request, service: ServiceDep) -> Response:
    return await _detect(request, service, None, deepstack.DeepStackCommand.DETECT)


@router.post("/v1/vision/custom/list", summary="CodeProject.AI: the models usable as custom/{model}")
async def custom_list(request: Request, service: ServiceDep) -> Response:
    names = [status.name for status in service.models() if status.spec is not None]
    return JSONResponse(deepstack.render_model_list(names, deepstack.ServerFacts()).model_dump(mode="json"))


@router.post("/v1/vision/custom/{model}", summary="DeepStack: detect with a named model")
async def custom(model: str, request: Request, service: ServiceDep) -> Response:
    return await _detect(request, service, model, deepstack.DeepStackCommand.CUSTOM)
