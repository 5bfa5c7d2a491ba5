"""``POST /v1/detect`` and ``POST /v1/models/{name}/detect``: the native detection API.

Images come as multipart file fields ``image`` (several fields: one result each, in order) or as a
raw body with an image content type. Options (``conf``, ``iou``, ``classes``, ``max_det``,
``format``) come from the query string or form fields. The answer is JSON (see
:mod:`visionserve.api.wire.native`) or, with ``format=image`` or ``Accept: image/jpeg``, the
annotated JPEG of a single image.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from visionserve.api.deps import PixelHoldDep, ServiceDep, read_images
from visionserve.api.metrics import tag_model
from visionserve.api.wire import native
from visionserve.errors import InvalidParameterError
from visionserve.serving.pixel_budget import PixelHold
from visionserve.serving.service import DetectionService

router = APIRouter(tags=["detect"])

_DOC_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {
        "model": native.DetectResponse,
        "content": {native.JPEG_MEDIA_TYPE: {}},
        "description": "Detections as JSON, or the annotated JPEG with format=image",
    }
}


async def detect(request: Request, service: DetectionService, model: str | None, hold: PixelHold) -> Response:
    """Parse, detect, render; shared by both routes."""
    name = service.resolve_name(model)
    tag_model(request, name)
    query: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        query.setdefault(key, []).append(value)
    native.parse_params(query, {})  # bad query options fail before the upload is read
    upload = await read_images(request, native.IMAGE_FIELD)
    params = native.parse_params(query, upload.fields)
    labels = service.labels(name)
    options = native.predict_options(params, labels)
    as_image = native.wants_image(params, request.headers.get("accept"))
    if as_image and len(upload.images) != 1:
        raise InvalidParameterError("format=image answers for exactly one image")
    results = await service.detect(name, upload.images, options, full_size=as_image, hold=hold)
    if as_image:
        jpeg = await run_in_threadpool(native.render_annotated, results[0], labels)
        return Response(jpeg, media_type=native.JPEG_MEDIA_TYPE)
    return JSONResponse(native.render_detections(results, labels))


@router.post("/v1/detect", responses=_DOC_RESPONSES, summary="Detect objects with the default model")
async def detect_default(request: Request, service: ServiceDep, hold: PixelHoldDep) -> Response:
    return await detect(request, service, None, hold)


@router.post("/v1/models/{name}/detect", responses=_DOC_RESPONSES, summary="Detect objects with a model")
async def detect_with(name: str, request: Request, service: ServiceDep, hold: PixelHoldDep) -> Response:
    return await detect(request, service, name, hold)
