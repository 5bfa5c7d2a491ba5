"""The native API: ``POST /v1/predict`` and ``/v1/models/{name}/predict`` for any task, and
``POST /v1/detect`` and ``/v1/models/{name}/detect`` for box tasks (detect, segment, pose).

Images come as multipart file fields ``image`` (several fields: one result each, in order) or as a
raw body with an image content type. Options (``conf``, ``iou``, ``classes``, ``max_det``,
``top_k``, ``mask_format``, ``render``, ``format``) come from the query string or form fields. The
answer is JSON (see :mod:`visionserve.api.wire.native`) or, with ``format=image`` or
``Accept: image/jpeg``, the annotated JPEG of a single image. A classifier on a detect route is
refused (422) before the body is read.
"""

from __future__ import annotations

import functools

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from visionserve.api.deps import PixelHoldDep, ServiceDep, read_images
from visionserve.api.metrics import tag_model
from visionserve.api.wire import native
from visionserve.serving.pixel_budget import PixelHold
from visionserve.serving.service import DetectionService

router = APIRouter(tags=["predict"])

_DOC_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {
        "model": native.PredictResponse,
        "content": {native.JPEG_MEDIA_TYPE: {}},
        "description": "The prediction as JSON, or the annotated JPEG with format=image",
    }
}


async def predict(
    request: Request,
    service: DetectionService,
    model: str | None,
    hold: PixelHold,
    boxes_only: bool,
    field: str = native.IMAGE_FIELD,
    route_fields: frozenset[str] = frozenset(),
) -> Response:
    """Parse, predict, render; shared by the four routes and ``/file_upload`` (``boxes_only``: the
        detect routes; ``field``: the multipart field of the images; ``route_fields``: query and form
    names that the route reads itself, not options). The decoded images' pixel
        reservation is held (``hold``) until the answer is built."""
    name = service.resolve_name(model)
    tag_model(request, name)
    spec = service.spec(name)
    if boxes_only:
        native.check_gives_boxes(spec)
    items = request.query_params.multi_items()
    query = native.query_values((key, value) for key, value in items if key not in route_fields)
    native.parse_params(query, {})  # bad query options fail before the upload is read
    upload = await read_images(request, field)
    form = {key: values for key, values in upload.fields.items() if key not in route_fields}
    params = native.parse_params(query, form)
    labels = service.labels(name)
    as_image = native.wants_image(params, request.headers.get("accept"), len(upload.images))
    options = native.predict_options(params, labels)
    results = await service.detect(name, upload.images, options, full_size=as_image, hold=hold)
    if as_image:
        jpeg = await run_in_threadpool(native.render_annotated, results[0], labels, params.render)
        return Response(jpeg, media_type=native.JPEG_MEDIA_TYPE)
    render_json = functools.partial(native.render_predictions, results, labels, spec.task, params.mask_format)
    heavy = native.encodes_masks(results, params)
    return JSONResponse(await run_in_threadpool(render_json) if heavy else render_json())


@router.post("/v1/predict", responses=_DOC_RESPONSES, summary="Predict with the default model (any task)")
async def predict_default(request: Request, service: ServiceDep, hold: PixelHoldDep) -> Response:
    return await predict(request, service, None, hold, boxes_only=False)


@router.post("/v1/models/{name}/predict", responses=_DOC_RESPONSES, summary="Predict with a model (any task)")
async def predict_with(name: str, request: Request, service: ServiceDep, hold: PixelHoldDep) -> Response:
    return await predict(request, service, name, hold, boxes_only=False)


@router.post("/v1/detect", responses=_DOC_RESPONSES, summary="Detect objects with the default model")
async def detect_default(request: Request, service: ServiceDep, hold: PixelHoldDep) -> Response:
    return await predict(request, service, None, hold, boxes_only=True)


@router.post("/v1/models/{name}/detect", responses=_DOC_RESPONSES, summary="Detect objects with a model")
async def detect_with(name: str, request: Request, service: ServiceDep, hold: PixelHoldDep) -> Response:
    return await predict(request, service, name, hold, boxes_only=True)
