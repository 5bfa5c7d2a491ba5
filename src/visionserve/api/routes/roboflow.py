"""Roboflow Inference routes: ``/infer/object_detection``, ``/infer/instance_segmentation``,
``/infer/keypoints_detection``, ``/infer/classification`` and the model registry that
``inference-sdk``'s ``InferenceHTTPClient`` consults before it infers (its ``task_type`` tells the SDK
which ``/infer/<task>`` route to call). A route given a model of another task answers 422.

The registry lists loaded models; ``/model/add`` loads one, ``/model/remove`` unloads it,
``/model/clear`` unloads all. API keys may come as ``api_key`` in the JSON body or the query (the
SDK's legacy transport) or as ``Authorization: Bearer``. ``{"type": "url"}`` images are fetched
only from the hosts of the ``url_image_hosts`` setting, under :mod:`visionserve.outbound`'s address
rules. Errors are ``{"message": "..."}``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Generic

import httpx
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from visionserve.api.auth import BodyKeyRealm
from visionserve.api.deps import ServiceDep, SettingsDep
from visionserve.api.metrics import tag_model
from visionserve.api.routes.protocol_support import ProtocolError, auth_renderer, protocol_route
from visionserve.api.wire import roboflow as rf
from visionserve.api.wire import roboflow_tasks as rft
from visionserve.api.wire.common import ImageInput
from visionserve.api.wire.roboflow import R
from visionserve.core.detections import Detections
from visionserve.core.prediction import Prediction, classes_of
from visionserve.errors import ImageTooLargeError, InputError
from visionserve.models.labels import Labels
from visionserve.models.spec import BEST
from visionserve.outbound import OutboundPolicy, Target
from visionserve.serving.pixel_budget import PixelHold
from visionserve.serving.results import ImageResult, ModelState, ModelStatus
from visionserve.serving.service import DetectionService
from visionserve.settings import Settings

_URL_TIMEOUT_S = 10.0


def _error(error: ProtocolError) -> Response:
    return JSONResponse(rf.render_error(error.message), status_code=error.status, headers=error.headers)


router = APIRouter(tags=["roboflow"], route_class=protocol_route(_error))
#: The SDK sends the key as ``api_key`` in the JSON body or the query (checked by the API-key middleware).
AUTH_REALMS = (BodyKeyRealm("/infer/", auth_renderer(_error)), BodyKeyRealm("/model/", auth_renderer(_error)))


async def _download(client: httpx.AsyncClient, target: Target, max_bytes: int) -> bytes:
    url = str(target.url)
    chunks, size = [], 0
    try:
        response = await client.send(target.request(client, "GET"), stream=True)
        try:
            if response.status_code != 200:
                raise InputError(f"Could not load input image. Cause: {url} answered HTTP {response.status_code}")
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise ImageTooLargeError(f"image at {url} is larger than {max_bytes} bytes")
                chunks.append(chunk)
        finally:
            await response.aclose()
    except httpx.HTTPError as exc:
        raise InputError(f"Could not load input image. Cause: {url}: {exc}") from exc
    return b"".join(chunks)


async def _images(parsed: rf.ParsedRequest[R], policy: OutboundPolicy, max_bytes: int) -> list[ImageInput]:
    """The request's images with ``url`` ones downloaded, when ``policy`` (setting
    ``url_image_hosts``) allows them; every URL is checked before any is fetched."""
    urls = [item.url for item in parsed.images if isinstance(item, rf.UrlImage)]
    for url in urls:
        policy.check(url)
    if not urls:
        return [item for item in parsed.images if not isinstance(item, rf.UrlImage)]
    targets = {url: await run_in_threadpool(policy.resolve, url) for url in urls}
    async with httpx.AsyncClient(timeout=_URL_TIMEOUT_S, follow_redirects=False) as client:
        return [
            await _download(client, targets[item.url], max_bytes) if isinstance(item, rf.UrlImage) else item
            for item in parsed.images
        ]


@dataclass(frozen=True)
class _Answered(Generic[R]):
    """A request run on its model: what the renderers need."""

    parsed: rf.ParsedRequest[R]
    labels: Labels
    results: list[ImageResult]
    iou: float


async def _run(
    request: Request, service: DetectionService, settings: Settings, hold: PixelHold, schema: type[R], route: str
) -> _Answered[R]:
    """Parse (the API-key middleware has checked the key), check the model's task against ``route``
    (before any image is decoded), and predict at full size when a visualization is asked for."""
    parsed = rf.parse_infer_request(await request.body(), schema)
    name = service.resolve_name(parsed.request.model_id)
    tag_model(request, name)
    spec = service.spec(name)
    rf.check_task(route, spec.task, name)
    labels = service.labels(name)
    options = parsed.options.to_predict_options(labels)
    if options.conf == BEST and not spec.class_conf:
        # Roboflow's "best" falls back to the model's default when no per-class thresholds exist.
        options = dataclasses.replace(options, conf=None)
    visualize = bool(parsed.request.visualize_predictions)
    images = await _images(parsed, request.app.state.url_images, settings.max_body_bytes)
    results = await service.detect(name, images, options, full_size=visualize, hold=hold)
    iou = options.iou if options.iou is not None else spec.thresholds.iou
    return _Answered(parsed, labels, results, iou)


async def _picture(answered: _Answered[R], result: ImageResult, prediction: Prediction) -> bytes | None:
    if not answered.parsed.request.visualize_predictions:
        return None
    return await run_in_threadpool(rft.visualize, result.image, prediction, answered.labels)


def _boxes(answered: _Answered[R], result: ImageResult) -> Detections:
    """The boxes of ``result``, after NMS across classes when the request asks for it."""
    request = answered.parsed.request
    found = result.detections
    if isinstance(request, rf.ObjectDetectionRequest) and request.class_agnostic_nms:
        return rf.class_agnostic(found, answered.iou)
    return found


def _respond(answered: _Answered[R], documents: list[dict[str, Any]]) -> Response:
    return JSONResponse(documents if answered.parsed.batched else documents[0])


def _timing(result: ImageResult) -> tuple[tuple[int, int], float]:
    return (result.width, result.height), result.timings.total_ms / 1000.0


@router.post("/infer/object_detection", summary="Roboflow: object detection")
async def infer(request: Request, service: ServiceDep, settings: SettingsDep) -> Response:
    with PixelHold() as hold:
        answered = await _run(request, service, settings, hold, rf.ObjectDetectionRequest, "object_detection")
        documents = []
        for result in answered.results:
            found = _boxes(answered, result)
            picture = await _picture(answered, result, found)
            answer = rf.render_object_detection(found, answered.labels, *_timing(result), picture)
            documents.append(answer.model_dump(mode="json"))
        return _respond(answered, documents)


@router.post("/infer/instance_segmentation", summary="Roboflow: instance segmentation")
async def infer_segmentation(request: Request, service: ServiceDep, settings: SettingsDep) -> Response:
    with PixelHold() as hold:
        answered = await _run(request, service, settings, hold, rf.InstanceSegmentationRequest, "instance_segmentation")
        mask_format = answered.parsed.request.response_mask_format
        documents = []
        for result in answered.results:
            found = _boxes(answered, result)
            picture = await _picture(answered, result, found)
            answer = rft.render_instance_segmentation(found, answered.labels, *_timing(result), mask_format, picture)
            documents.append(answer.model_dump(mode="json"))
        return _respond(answered, documents)


@router.post("/infer/keypoints_detection", summary="Roboflow: keypoint detection")
async def infer_keypoints(request: Request, service: ServiceDep, settings: SettingsDep) -> Response:
    with PixelHold() as hold:
        answered = await _run(request, service, settings, hold, rf.KeypointsDetectionRequest, "keypoints_detection")
        threshold = answered.parsed.request.keypoint_confidence
        documents = []
        for result in answered.results:
            found = _boxes(answered, result)
            picture = await _picture(answered, result, found)
            answer = rft.render_keypoints_detection(found, answered.labels, *_timing(result), threshold, picture)
            documents.append(answer.model_dump(mode="json"))
        return _respond(answered, documents)


@router.post("/infer/classification", summary="Roboflow: classification")
async def infer_classification(request: Request, service: ServiceDep, settings: SettingsDep) -> Response:
    with PixelHold() as hold:
        answered = await _run(request, service, settings, hold, rf.ClassificationRequest, "classification")
        documents = []
        for result in answered.results:
            classes = classes_of(result.prediction, result.model)
            picture = await _picture(answered, result, classes)
            answer = rft.render_classification(classes, answered.labels, *_timing(result), picture)
            documents.append(answer.model_dump(mode="json"))
        return _respond(answered, documents)


def _description(status: ModelStatus) -> rf.ModelDescription:
    spec = status.spec
    size = spec.input if spec is not None else None
    return rf.ModelDescription(
        model_id=status.name,
        task_type=rf.TASK_TYPES[spec.task] if spec is not None else rf.TASK_TYPE,
        batch_size=spec.batching.max_batch_size if spec is not None else None,
        input_height=size.height if size is not None else None,
        input_width=size.width if size is not None else None,
    )


def _registry(service: DetectionService) -> Response:
    loaded = [_description(status) for status in service.models() if status.state is ModelState.LOADED]
    return JSONResponse(rf.render_registry(loaded).model_dump(mode="json"))


@router.get("/model/registry", summary="Roboflow: the loaded models")
async def registry(request: Request, service: ServiceDep) -> Response:
    return _registry(service)


@router.post("/model/add", summary="Roboflow: load a model")
async def add(request: Request, service: ServiceDep) -> Response:
    body = rf.parse_add_request(await request.body())
    name = service.resolve_name(body.model_id)  # unknown names never become a metric label
    tag_model(request, name)
    await service.load(name)
    return _registry(service)


@router.post("/model/remove", summary="Roboflow: unload a model")
async def remove(request: Request, service: ServiceDep) -> Response:
    body = rf.parse_clear_request(await request.body())
    name = service.resolve_name(body.model_id)  # unknown names never become a metric label
    tag_model(request, name)
    await service.unload(name)
    return _registry(service)


@router.post("/model/clear", summary="Roboflow: unload every model")
async def clear(request: Request, service: ServiceDep) -> Response:
    for status in service.models():
        if status.state is ModelState.LOADED:
            await service.unload(status.name)
    return _registry(service)
