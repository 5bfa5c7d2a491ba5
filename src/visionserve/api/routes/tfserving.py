"""TensorFlow Serving REST routes: model status of a version, metadata, and ``:predict``.

``GET /v1/models/{name}`` itself is the native model route, whose document carries TF Serving's
``model_version_status`` beside visionserve's fields (see
:func:`visionserve.api.wire.native.model_document`). Versions are integers here (a model's version
when it is a number, else 1). Errors are ``{"error": "..."}``; bad requests are 400 as in TF Serving.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from visionserve.api.deps import ServiceDep
from visionserve.api.metrics import tag_model
from visionserve.api.routes.protocol_support import ProtocolError, protocol_route
from visionserve.api.wire import tfserving as tf
from visionserve.core.prediction import classes_of
from visionserve.errors import ModelNotFoundError
from visionserve.models.spec import Task
from visionserve.serving.service import DetectionService


def _error(error: ProtocolError) -> Response:
    status = 400 if error.status == 422 else error.status
    return JSONResponse(tf.render_error(error.message), status_code=status, headers=error.headers)


router = APIRouter(prefix="/v1/models", tags=["tensorflow-serving"], route_class=protocol_route(_error))


def _version(service: DetectionService, name: str, version: int | None, request: Request) -> int:
    """The TF version of model ``name``; :class:`ModelNotFoundError` when ``version`` differs."""
    current = tf.tf_version(service.spec(name).version)
    tag_model(request, name)
    if version is not None and version != current:
        raise ModelNotFoundError(f"Servable not found for request: Specific({name}, {version})")
    return current


@router.get("/{name}/versions/{version}", summary="TF Serving: status of a model version")
async def version_status(name: str, version: int, request: Request, service: ServiceDep) -> Response:
    _version(service, name, version, request)
    status = service.model(name)
    spec_version = status.spec.version if status.spec else None
    return JSONResponse(
        {"model_version_status": tf.model_version_status(status.state.value, spec_version, status.error)}
    )


@router.get("/{name}/metadata", summary="TF Serving: signature of a model")
@router.get("/{name}/versions/{version}/metadata", summary="TF Serving: signature of a model version")
async def metadata(name: str, request: Request, service: ServiceDep, version: int | None = None) -> Response:
    tf_version = _version(service, name, version, request)
    return JSONResponse(tf.render_metadata(name, tf_version, service.spec(name).task))


@router.post("/{name}:predict", summary="TF Serving: predict (row or columnar format)")
@router.post("/{name}/versions/{version}:predict", summary="TF Serving: predict with a model version")
async def predict(name: str, request: Request, service: ServiceDep, version: int | None = None) -> Response:
    _version(service, name, version, request)
    body = await request.body()
    # Nested-list pixels expand about 40-fold as Python objects: bounded before parsing, and their
    # cost held from the pixel budget while parsing (seconds: off the event loop).
    list_cost = tf.list_pixel_bound(body) * tf.LIST_PIXEL_COST
    async with await service.budget.reserve(list_cost, "the nested-list pixels of this request"):
        parsed = await run_in_threadpool(tf.parse_predict_request, body)
    results = await service.detect(name, parsed.images)
    labels = service.labels(name)
    if service.spec(name).task is Task.CLASSIFY:
        classes = [classes_of(result.prediction, name) for result in results]
        return JSONResponse(tf.render_classify_response(classes, labels, parsed.format))
    found = [(result.detections, result.width, result.height) for result in results]
    return JSONResponse(tf.render_predict_response(found, labels, parsed.format, service.spec(name).task))
