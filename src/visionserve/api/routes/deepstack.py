"""DeepStack / CodeProject.AI routes: ``/v1/vision/detection``, ``/v1/vision/custom/{model}``,
``/v1/vision/custom/list`` (multipart ``image``, ``min_confidence``, ``api_key``), and
``/v1/vision/scene`` (multipart ``image``, ``api_key``) answered by a classify model: the
``scene_model`` setting, else the first classify model by name. A classify model on a detection
route, or a box model as ``scene_model``, is refused before any image is decoded.

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

from visionserve.api.auth import BodyKeyRealm
from visionserve.api.deps import ServiceDep, SettingsDep
from visionserve.api.metrics import tag_model
from visionserve.api.multipart import is_multipart, read_parts
from visionserve.api.routes.protocol_support import ProtocolError, auth_renderer, protocol_route
from visionserve.api.wire import deepstack
from visionserve.core.prediction import classes_of
from visionserve.errors import InputError, ModelNotFoundError, WrongTaskError
from visionserve.models.spec import ModelSpec, Task
from visionserve.pipeline import PredictOptions
from visionserve.serving.results import ImageResult
from visionserve.serving.service import DetectionService
from visionserve.settings import Settings

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
    if not is_multipart(request):
        return _Form(None, None)  # other bodies carry no image field (Starlette's form had none either)
    parts = await read_parts(request, max_files=_MAX_PARTS, max_fields=_MAX_PARTS)
    last = {part.name: part for part in parts}  # a repeated name gives its last part, as Starlette's form.get
    image, conf = last.get("image"), last.get("min_confidence")
    return _Form(
        image.data if image is not None and image.is_file else None,
        conf.value if conf is not None and not conf.is_file else None,
    )


def _facts(spec: ModelSpec) -> deepstack.ServerFacts:
    return deepstack.ServerFacts(
        module_name=f"visionserve {spec.name}", execution_provider=spec.backend.value, processed_by=_HOST
    )


def _timing(result: ImageResult, started: float) -> deepstack.Timing:
    t = result.timings
    return deepstack.Timing(
        t.decode_ms + t.preprocess_ms + t.inference_ms + t.postprocess_ms,
        t.inference_ms,
        (time.perf_counter() - started) * 1000.0,
        time.time(),
    )


async def _detect(
    request: Request, service: DetectionService, model: str | None, command: deepstack.DeepStackCommand
) -> Response:
    started = time.perf_counter()
    name = service.resolve_name(model)
    tag_model(request, name)
    # Before the form is read (the API-key middleware has already checked the key).
    if service.spec(name).task is Task.CLASSIFY:
        raise WrongTaskError(f"model {name!r} classifies whole images: use /v1/vision/scene")
    form = await _read_form(request)
    if form.image is None:
        raise InputError("No valid image file found")
    min_confidence = deepstack.parse_min_confidence(form.min_confidence)
    (result,) = await service.detect(name, [form.image], PredictOptions(conf=min_confidence))
    predictions = deepstack.to_predictions(
        result.detections, service.labels(name), result.width, result.height, min_confidence
    )
    answer = deepstack.render_detection(predictions, command, _timing(result, started), _facts(service.spec(name)))
    return JSONResponse(answer.model_dump(mode="json"))


def _scene_model(service: DetectionService, settings: Settings) -> str:
    """The ``scene_model`` setting, else the first classify model by name; :class:`ModelNotFoundError`
    when there is none, :class:`WrongTaskError` when the setting names a model of another task."""
    if settings.scene_model is not None:
        name = service.resolve_name(settings.scene_model)
        if service.spec(name).task is not Task.CLASSIFY:
            raise WrongTaskError(f"scene model {name!r} does not classify images (setting scene_model)")
        return name
    names = sorted(s.name for s in service.models() if s.spec is not None and s.spec.task is Task.CLASSIFY)
    if not names:
        raise ModelNotFoundError("no classify model serves /v1/vision/scene (add one, or set scene_model)")
    return names[0]


@router.post("/v1/vision/scene", summary="DeepStack: classify the scene with a classify model")
async def scene(request: Request, service: ServiceDep, settings: SettingsDep) -> Response:
    started = time.perf_counter()
    name = _scene_model(service, settings)
    tag_model(request, name)
    form = await _read_form(request)
    if form.image is None:
        raise InputError("No valid image file found")
    (result,) = await service.detect(name, [form.image])
    classes = classes_of(result.prediction, name)
    facts = _facts(service.spec(name))
    answer = deepstack.render_scene(classes, service.labels(name), _timing(result, started), facts)
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
