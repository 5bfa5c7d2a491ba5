"""The Roboflow Inference server's object-detection API and model registry, as ``inference-sdk`` calls them.

``POST /infer/object_detection`` takes ``model_id``, ``image`` (``{"type": "base64"|"url"|"numpy",
"value": ...}`` or a list of them), ``confidence`` (a number, or ``"default"``/``"best"`` for the
model's own), ``iou_threshold``, ``class_filter``, ``max_detections``, ``class_agnostic_nms`` and
``visualize_predictions``, with Roboflow's defaults (0.4, 0.3, all, 300). It answers one object per
image (a list for a list): ``inference_id``, ``time`` (seconds), ``image {width, height}`` and
``predictions`` with box centres ``x, y``, ``width``, ``height`` in pixels, ``confidence``, ``class``,
``class_id`` and ``detection_id``. ``numpy`` values are base64 of a pickled or ``.npy`` BGR array;
pickles are read by :mod:`visionserve.api.wire.numpy_pickle`, which admits numpy arrays and nothing else.

The registry routes answer ``{"models": [{model_id, task_type, batch_size, input_height,
input_width}]}``, listing loaded models. Errors are ``{"message": "..."}``. Pure functions and
pydantic schemas only.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal
from uuid import uuid4

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from visionserve.api.wire.common import (
    ImageInput,
    RequestOptions,
    as_bgr_image,
    decode_base64,
    describe_validation_error,
)
from visionserve.api.wire.npy import MAGIC, load_npy
from visionserve.api.wire.numpy_pickle import load_pickled_array
from visionserve.core.detections import Detections
from visionserve.core.nms import class_aware_nms
from visionserve.errors import ImageDecodeError, InvalidParameterError
from visionserve.models.labels import Labels
from visionserve.models.spec import ColorOrder

TASK_TYPE = "object-detection"


class ImageType(StrEnum):
    BASE64 = "base64"
    URL = "url"
    NUMPY = "numpy"


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore", protected_namespaces=())


class InferenceRequestImage(_Request):
    type: ImageType
    value: Any = None


class ObjectDetectionRequest(_Request):
    """The fields of Roboflow's ``ObjectDetectionInferenceRequest`` that visionserve acts on;
    the others (preprocessing switches, active learning, ...) are accepted and ignored."""

    id: str | None = None
    api_key: str | None = None
    model_id: str | None = None
    image: InferenceRequestImage | list[InferenceRequestImage]
    confidence: float | Literal["best", "default"] = 0.4
    iou_threshold: float | None = 0.3
    class_filter: list[str] | None = None
    max_detections: int | None = 300
    class_agnostic_nms: bool | None = False
    visualize_predictions: bool | None = False


class AddModelRequest(_Request):
    model_id: str
    model_type: str | None = None
    api_key: str | None = None


class ClearModelRequest(_Request):
    model_id: str


class ModelDescription(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    model_id: str
    task_type: str = TASK_TYPE
    batch_size: int | str | None = None
    input_height: int | None = None
    input_width: int | None = None


class ModelsDescriptions(BaseModel):
    models: list[ModelDescription]


class ObjectDetectionPrediction(BaseModel):
    model_config = ConfigDict(serialize_by_alias=True)

    x: float
    y: float
    width: float
    height: float
    confidence: float
    class_name: str = Field(serialization_alias="class")
    class_id: int
    detection_id: str


class InferenceResponseImage(BaseModel):
    width: int
    height: int


class ObjectDetectionResponse(BaseModel):
    inference_id: str | None = None
    time: float
    image: InferenceResponseImage
    predictions: list[ObjectDetectionPrediction]
    visualization: str | None = None


@dataclass(frozen=True)
class UrlImage:
    """An image the server must fetch from ``url`` (the route decides whether it may)."""

    url: str


@dataclass(frozen=True)
class ParsedDetection:
    """A parsed request: its images in order, thresholds, and what else it asked for."""

    request: ObjectDetectionRequest
    images: list[ImageInput | UrlImage]
    options: RequestOptions
    batched: bool


def _numpy_image(value: Any, where: str) -> ImageInput:
    data = decode_base64(where, value)
    array = load_npy(data, where) if data.startswith(MAGIC) else load_pickled_array(data, where)
    return as_bgr_image(where, array, ColorOrder.BGR)


def _image(item: InferenceRequestImage, where: str) -> ImageInput | UrlImage:
    """The image of ``item``; unreadable data raises :class:`ImageDecodeError` (400), as Roboflow's
    server answers "Could not load input image"."""
    try:
        if item.type is ImageType.BASE64:
            return decode_base64(where, item.value)
        if item.type is ImageType.NUMPY:
            return _numpy_image(item.value, where)
    except InvalidParameterError as exc:
        raise ImageDecodeError(f"Could not load input image. Cause: {exc}") from None
    if not isinstance(item.value, str) or not item.value.startswith(("http://", "https://")):
        raise InvalidParameterError(f"{where}: url must be an http:// or https:// address")
    return UrlImage(item.value)


def _options(request: ObjectDetectionRequest) -> RequestOptions:
    conf = request.confidence if isinstance(request.confidence, float | int) else None
    return RequestOptions(
        conf=conf,
        iou=request.iou_threshold,
        max_det=request.max_detections,
        classes=tuple(request.class_filter) if request.class_filter else None,
    )


def parse_object_detection_request(body: bytes) -> ParsedDetection:
    """Parse a ``/infer/object_detection`` body; raises :class:`InvalidParameterError` for invalid
    JSON, missing fields, an unknown image type or image data that cannot be read."""
    try:
        request = ObjectDetectionRequest.model_validate_json(body)
    except ValidationError as exc:
        raise InvalidParameterError(f"invalid request: {describe_validation_error(exc)}") from None
    items = request.image if isinstance(request.image, list) else [request.image]
    if not items:
        raise InvalidParameterError("invalid request: image list is empty")
    images = [_image(item, f"image[{i}]") for i, item in enumerate(items)]
    return ParsedDetection(request, images, _options(request), isinstance(request.image, list))


def parse_add_request(body: bytes) -> AddModelRequest:
    """The body of ``POST /model/add``; :class:`InvalidParameterError` when it does not validate."""
    try:
        return AddModelRequest.model_validate_json(body)
    except ValidationError as exc:
        raise InvalidParameterError(f"invalid request: {describe_validation_error(exc)}") from None


def parse_clear_request(body: bytes) -> ClearModelRequest:
    """The body of ``POST /model/remove``; :class:`InvalidParameterError` when it does not validate."""
    try:
        return ClearModelRequest.model_validate_json(body)
    except ValidationError as exc:
        raise InvalidParameterError(f"invalid request: {describe_validation_error(exc)}") from None


def class_agnostic(detections: Detections, iou: float) -> Detections:
    """``detections`` after NMS across classes at ``iou`` (what ``class_agnostic_nms`` asks for)."""
    keep = class_aware_nms(detections.xyxy, detections.confidence, np.zeros(len(detections), np.int32), iou)
    return detections[np.asarray(keep, dtype=np.int64)]


def render_object_detection(
    detections: Detections,
    labels: Labels,
    size: tuple[int, int],
    seconds: float,
    visualization: bytes | None = None,
    new_id: Callable[[], str] = lambda: str(uuid4()),
) -> ObjectDetectionResponse:
    """The answer for one ``(width, height)`` image: centre boxes in pixels, highest confidence first."""
    ordered = detections.sorted_by_confidence()
    predictions = [
        ObjectDetectionPrediction(
            x=round(float(x1 + x2) / 2, 2),
            y=round(float(y1 + y2) / 2, 2),
            width=round(float(x2 - x1), 2),
            height=round(float(y2 - y1), 2),
            confidence=round(float(score), 4),
            class_name=labels.name(int(class_id)),
            class_id=int(class_id),
            detection_id=new_id(),
        )
        for (x1, y1, x2, y2), score, class_id in zip(ordered.xyxy, ordered.confidence, ordered.class_id, strict=True)
    ]
    return ObjectDetectionResponse(
        inference_id=new_id(),
        time=round(seconds, 6),
        image=InferenceResponseImage(width=size[0], height=size[1]),
        predictions=predictions,
        visualization=base64.b64encode(visualization).decode("ascii") if visualization is not None else None,
    )


def render_registry(models: Sequence[ModelDescription]) -> ModelsDescriptions:
    """``{"models": [...]}`` for the registry routes."""
    return ModelsDescriptions(models=list(models))


def render_error(message: str) -> dict[str, str]:
    """``{"message": message}``, Roboflow's error body."""
    return {"message": message}
