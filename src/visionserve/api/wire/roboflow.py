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
from typing import Any, Generic, Literal, TypeVar
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
from visionserve.errors import ImageDecodeError, InvalidParameterError, WrongTaskError
from visionserve.models.labels import Labels
from visionserve.models.spec import BEST, ColorOrder, Task
from visionserve.render.mask_encoding import MaskFormat
from visionserve.render.rows import BoxRow, box_rows

TASK_TYPE = "object-detection"
#: The ``task_type`` of each task in the registry: the SDK picks the ``/infer/<task>`` route from it.
TASK_TYPES = {
    Task.DETECT: TASK_TYPE,
    Task.SEGMENT: "instance-segmentation",
    Task.CLASSIFY: "classification",
    Task.POSE: "keypoint-detection",
}
#: The mask formats of ``response_mask_format``.
MaskFormatName = Literal["polygon", "rle"]


class ImageType(StrEnum):
    BASE64 = "base64"
    URL = "url"
    NUMPY = "numpy"


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore", protected_namespaces=())


class InferenceRequestImage(_Request):
    type: ImageType
    value: Any = None


class InferRequest(_Request):
    """The fields that every Roboflow ``/infer/<task>`` request shares and visionserve acts on; the
    others (preprocessing switches, active learning, ...) are accepted and ignored."""

    id: str | None = None
    api_key: str | None = None
    model_id: str | None = None
    image: InferenceRequestImage | list[InferenceRequestImage]
    confidence: float | Literal["best", "default"] = 0.4
    visualize_predictions: bool | None = False


class ObjectDetectionRequest(InferRequest):
    """Roboflow's ``ObjectDetectionInferenceRequest``."""

    iou_threshold: float | None = 0.3
    class_filter: list[str] | None = None
    max_detections: int | None = 300
    class_agnostic_nms: bool | None = False


class InstanceSegmentationRequest(ObjectDetectionRequest):
    """Roboflow's ``InstanceSegmentationInferenceRequest``: masks as one polygon per instance
    (``points``) or, with ``response_mask_format="rle"``, as COCO RLE. ``mask_decode_mode`` and
    ``tradeoff_factor`` are accepted and ignored (masks are always decoded at full accuracy)."""

    response_mask_format: MaskFormatName = "polygon"


class KeypointsDetectionRequest(ObjectDetectionRequest):
    """Roboflow's ``KeypointsDetectionInferenceRequest``: keypoints scoring under
    ``keypoint_confidence`` are left out of the answer."""

    keypoint_confidence: float = Field(0.0, ge=0.0, le=1.0)


class ClassificationRequest(InferRequest):
    """Roboflow's ``ClassificationInferenceRequest``: classes under ``confidence`` are left out."""


R = TypeVar("R", bound=InferRequest)


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
class ParsedRequest(Generic[R]):
    """A parsed request: its images in order, thresholds, and what else it asked for."""

    request: R
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


def _options(request: InferRequest) -> RequestOptions:
    confidence = request.confidence
    conf: float | Literal["best"] | None = None
    if confidence == BEST:
        conf = BEST
    elif isinstance(confidence, float | int):
        conf = confidence
    if not isinstance(request, ObjectDetectionRequest):
        return RequestOptions(conf=conf)
    return RequestOptions(
        conf=conf,
        iou=request.iou_threshold,
        max_det=request.max_detections,
        classes=tuple(request.class_filter) if request.class_filter else None,
    )


def parse_infer_request(body: bytes, schema: type[R]) -> ParsedRequest[R]:
    """Parse an ``/infer/<task>`` body as ``schema``; raises :class:`InvalidParameterError` for
    invalid JSON, missing fields, an unknown image type or image data that cannot be read."""
    try:
        request = schema.model_validate_json(body)
    except ValidationError as exc:
        raise InvalidParameterError(f"invalid request: {describe_validation_error(exc)}") from None
    items = request.image if isinstance(request.image, list) else [request.image]
    if not items:
        raise InvalidParameterError("invalid request: image list is empty")
    images = [_image(item, f"image[{i}]") for i, item in enumerate(items)]
    return ParsedRequest(request, images, _options(request), isinstance(request.image, list))


def parse_object_detection_request(body: bytes) -> ParsedRequest[ObjectDetectionRequest]:
    """Parse a ``/infer/object_detection`` body (see :func:`parse_infer_request`)."""
    return parse_infer_request(body, ObjectDetectionRequest)


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


def box_fields(row: BoxRow, new_id: Callable[[], str]) -> dict[str, Any]:
    """The fields of one Roboflow box prediction: centre ``x, y``, ``width``, ``height`` in pixels,
    ``confidence``, ``class_name`` (``class`` on the wire), ``class_id`` and a new ``detection_id``."""
    x1, y1, x2, y2 = row.box
    return {
        "x": round((x1 + x2) / 2, 2),
        "y": round((y1 + y2) / 2, 2),
        "width": round(x2 - x1, 2),
        "height": round(y2 - y1, 2),
        "confidence": round(row.score, 4),
        "class_name": row.label,
        "class_id": row.class_id,
        "detection_id": new_id(),
    }


def encode_visualization(visualization: bytes | None) -> str | None:
    """The annotated JPEG as base64 text, as Roboflow's ``visualization`` carries it."""
    return base64.b64encode(visualization).decode("ascii") if visualization is not None else None


def render_object_detection(
    detections: Detections,
    labels: Labels,
    size: tuple[int, int],
    seconds: float,
    visualization: bytes | None = None,
    new_id: Callable[[], str] = lambda: str(uuid4()),
) -> ObjectDetectionResponse:
    """The answer for one ``(width, height)`` image: centre boxes in pixels, highest confidence first."""
    rows = box_rows(detections, labels, size, MaskFormat.NONE)
    predictions = [ObjectDetectionPrediction(**box_fields(row, new_id)) for row in rows]
    return ObjectDetectionResponse(
        inference_id=new_id(),
        time=round(seconds, 6),
        image=InferenceResponseImage(width=size[0], height=size[1]),
        predictions=predictions,
        visualization=encode_visualization(visualization),
    )


#: The tasks each ``/infer/<task>`` route serves (boxes come from any model that gives boxes).
ROUTE_TASKS = {
    "object_detection": frozenset({Task.DETECT, Task.SEGMENT, Task.POSE}),
    "instance_segmentation": frozenset({Task.SEGMENT}),
    "keypoints_detection": frozenset({Task.POSE}),
    "classification": frozenset({Task.CLASSIFY}),
}
_ROUTE_OF_TASK = {
    Task.DETECT: "object_detection",
    Task.SEGMENT: "instance_segmentation",
    Task.POSE: "keypoints_detection",
}


def check_task(route: str, task: Task, model: str) -> None:
    """Raise :class:`WrongTaskError` (422) when ``/infer/<route>`` cannot answer for a ``task`` model."""
    if task in ROUTE_TASKS[route]:
        return
    suggested = "classification" if task is Task.CLASSIFY else _ROUTE_OF_TASK[task]
    raise WrongTaskError(
        f"model {model!r} is a {TASK_TYPES[task]} model: /infer/{route} cannot serve it, use /infer/{suggested}"
    )


def render_registry(models: Sequence[ModelDescription]) -> ModelsDescriptions:
    """``{"models": [...]}`` for the registry routes."""
    return ModelsDescriptions(models=list(models))


def render_error(message: str) -> dict[str, str]:
    """``{"message": message}``, Roboflow's error body."""
    return {"message": message}
