"""Roboflow Inference routes: ``/infer/object_detection`` and the model registry that
``inference-sdk``'s ``InferenceHTTPClient`` consults before it infers.

The registry lists loaded models; ``/model/add`` loads one, ``/model/remove`` unloads it,
``/model/clear`` unloads all. API keys may come as ``api_key`` in the JSON body or the query (the
SDK's legacy transport) or as ``Authorization: Bearer``. ``{"type": "url"}`` images are fetched only
from the hosts of the ``url_image_hosts`` setting, under :mod:`visionserve.outbound`'s address rules.
Errors are ``{"message": "..."}``.
"""

from __future__ import annotations

from dataclasses import replace

import httpx
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from visionserve.api.auth import BodyKeyRealm
from visionserve.api.deps import PixelHoldDep, ServiceDep, SettingsDep
from visionserve.api.metrics import tag_model
from visionserve.api.routes.protocol_support import ProtocolError, auth_renderer, protocol_route
from visionserve.api.wire import roboflow as rf
from visionserve.api.wire.common import ImageInput
from visionserve.api.wire.native import render_annotated
from visionserve.errors import ImageTooLargeError, InputError
from visionserve.outbound import OutboundPolicy, Target
from visionserve.serving.manager import ModelState, ModelStatus
from visionserve.serving.service import DetectionService

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


async def _images(parsed: rf.ParsedDetection, policy: OutboundPolicy, max_bytes: int) -> list[ImageInput]:
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


@router.post("/infer/object_detection", summary="Roboflow: object detection")
async def infer(request: Request, service: ServiceDep, settings: SettingsDep, hold: PixelHoldDep) -> Response:
    parsed = rf.parse_object_detection_request(await request.body())
    name = service.resolve_name(parsed.request.model_id)
    tag_model(request, name)
    labels = service.labels(name)
    options = parsed.options.to_predict_options(labels)
    visualize = bool(parsed.request.visualize_predictions)
    images = await _images(parsed, request.app.state.url_images, settings.max_body_bytes)
    results = await service.detect(name, images, options, full_size=visualize, hold=hold)
    iou = options.iou if options.iou is not None else service.spec(name).thresholds.iou
    answers = []
    for result in results:
        found = rf.class_agnostic(result.detections, iou) if parsed.request.class_agnostic_nms else result.detections
        picture = (
            await run_in_threadpool(render_annotated, replace(result, prediction=found), labels) if visualize else None
        )
        size = (result.width, result.height)
        answers.append(rf.render_object_detection(found, labels, size, result.timings.total_ms / 1000.0, picture))
    documents = [answer.model_dump(mode="json") for answer in answers]
    return JSONResponse(documents if parsed.batched else documents[0])


def _description(status: ModelStatus) -> rf.ModelDescription:
    spec = status.spec
    size = spec.input if spec is not None else None
    return rf.ModelDescription(
        model_id=status.name,
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
