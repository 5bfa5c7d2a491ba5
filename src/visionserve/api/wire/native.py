"""The native API's wire format: request options in, detections and model documents out.

``POST /v1/detect`` answers, for one image::

    {"model": "ssd-mobilenet-v2-coco", "version": "2018_03_29", "width": 512, "height": 512,
     "detections": [{"label": "person", "class_id": 1, "score": 0.93,
                     "box": {"x1": 12.5, "y1": 30.1, "x2": 260.0, "y2": 510.2}}],
     "timings": {"queue": 0.1, "decode": 2.3, "preprocess": 0.6, "inference": 36.0,
                 "postprocess": 0.3, "total": 40.1}}

and for several images ``{"model", "version", "results": [{"width", "height", "detections",
"timings"}, ...]}``. Boxes are in pixels of the original image; timings in milliseconds.
Pure functions and pydantic schemas only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any

import cv2
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from visionserve.api.wire import tfserving
from visionserve.api.wire.common import RequestOptions, describe_validation_error, split_classes
from visionserve.errors import InferenceError, InvalidParameterError
from visionserve.models.labels import Labels
from visionserve.pipeline import PredictOptions
from visionserve.render.annotators import default_annotators, render
from visionserve.render.json import detections_to_json
from visionserve.serving.manager import ModelStatus
from visionserve.serving.service import ImageResult

#: Multipart field that carries the image(s).
IMAGE_FIELD = "image"
JPEG_MEDIA_TYPE = "image/jpeg"
_JPEG_QUALITY = 90


class ResponseFormat(StrEnum):
    JSON = "json"
    IMAGE = "image"


class DetectParams(BaseModel):
    """Options of a detect request, from the query string or form fields (form fields win)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    conf: float | None = Field(None, ge=0, le=1, description="Minimum confidence (default: the model's).")
    iou: float | None = Field(None, ge=0, le=1, description="NMS IoU threshold (default: the model's).")
    classes: str | None = Field(None, description="Only these classes: comma-separated names or ids.")
    max_det: int | None = Field(None, ge=1, le=10000, description="At most this many detections per image.")
    format: ResponseFormat | None = Field(None, description="'json' (default) or 'image' (annotated JPEG).")


class Box(BaseModel):
    x1: float
    y1: float
    x2: float
    y2: float


class Detection(BaseModel):
    label: str
    class_id: int
    score: float
    box: Box


class TimingsOut(BaseModel):
    queue: float
    decode: float
    preprocess: float
    inference: float
    postprocess: float
    total: float


class ImageDetections(BaseModel):
    width: int
    height: int
    detections: list[Detection]
    timings: TimingsOut


class DetectResponse(BaseModel):
    """The answer for one image (``width`` ... ``timings`` set) or several (``results`` set)."""

    model: str
    version: str
    width: int | None = None
    height: int | None = None
    detections: list[Detection] | None = None
    timings: TimingsOut | None = None
    results: list[ImageDetections] | None = None


def parse_params(query: Mapping[str, Sequence[str]], form: Mapping[str, Sequence[str]]) -> DetectParams:
    """Validate the options of ``query`` then ``form`` (each name -> its values); a repeated
    ``classes`` is joined, other repeated names take the last value. Raises
    :class:`InvalidParameterError` naming the field."""
    merged: dict[str, str] = {}
    for source in (query, form):
        for name, values in source.items():
            if not values:
                continue
            if name == "classes":
                merged[name] = ",".join([merged[name], *values] if name in merged else values)
            else:
                merged[name] = values[-1]
    try:
        return DetectParams.model_validate({k: (v if v.strip() else None) for k, v in merged.items()})
    except ValidationError as exc:
        raise InvalidParameterError(describe_validation_error(exc)) from None


def predict_options(params: DetectParams, labels: Labels) -> PredictOptions:
    """The predictor options of ``params`` for a model with ``labels`` (class names become ids)."""
    request = RequestOptions(params.conf, params.iou, params.max_det, split_classes(params.classes))
    return request.to_predict_options(labels)


def wants_image(params: DetectParams, accept: str | None) -> bool:
    """An annotated JPEG when ``format=image``, or when no format is given and ``Accept`` names
    ``image/jpeg`` (or ``image/*``) without naming JSON."""
    if params.format is not None:
        return params.format is ResponseFormat.IMAGE
    media = {part.split(";", 1)[0].strip().lower() for part in (accept or "").split(",")}
    return bool(media & {JPEG_MEDIA_TYPE, "image/*"}) and "application/json" not in media


def _image_json(result: ImageResult, labels: Labels) -> dict[str, Any]:
    return {
        "width": result.width,
        "height": result.height,
        "detections": detections_to_json(result.detections, labels),
        "timings": result.timings.as_dict(),
    }


def render_detections(results: Sequence[ImageResult], labels: Labels) -> dict[str, Any]:
    """The JSON answer (see the module docstring); ``results`` is not empty and of one model."""
    first = results[0]
    head = {"model": first.model, "version": first.version}
    if len(results) == 1:
        return {**head, **_image_json(first, labels)}
    return {**head, "results": [_image_json(result, labels) for result in results]}


def render_annotated(result: ImageResult, labels: Labels) -> bytes:
    """A JPEG of ``result.image`` with boxes and labels drawn. ``result`` must come from a
    full-size decode (boxes are in source pixels). Blocking: call it off the event loop."""
    canvas = render(result.image, result.detections, default_annotators(labels))
    ok, encoded = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY])
    if not ok:
        raise InferenceError("cannot encode the annotated image as JPEG")
    return bytes(encoded.tobytes())


def model_document(status: ModelStatus) -> dict[str, Any]:
    """What ``GET /v1/models/{name}`` says about a model. Every model document is built here (other
    protocols extend it)."""
    spec, labels = status.spec, status.labels
    document: dict[str, Any] = {
        "name": status.name,
        "state": status.state.value,
        "error": status.error,
        "version": spec.version if spec else None,
        "task": spec.task.value if spec else None,
        "backend": spec.backend.value if spec else None,
        "description": spec.description if spec else "",
        "labels": {str(k): v for k, v in sorted(labels.as_dict().items())} if labels else {},
        "input": None,
        "thresholds": spec.thresholds.model_dump() if spec else None,
        "instances": status.instances,
        "batching": spec.batching.model_dump() if spec else None,
        "queue_depth": status.queue_depth,
        # TF Serving's model status, so that its clients read this same route
        "model_version_status": tfserving.model_version_status(
            status.state.value, spec.version if spec else None, status.error
        ),
    }
    if spec is not None and spec.input is not None:
        document["input"] = {
            "width": spec.input.width,
            "height": spec.input.height,
            "resize": spec.input.resize.value,
            "color": spec.input.color.value,
        }
    return document


class ModelDocument(BaseModel):
    """The schema of :func:`model_document` (for the API docs)."""

    model_config = ConfigDict(extra="allow")

    name: str
    state: str
    error: str | None
    version: str | None
    task: str | None
    backend: str | None
    description: str
    labels: dict[str, str]
    input: dict[str, Any] | None
    thresholds: dict[str, Any] | None
    instances: int
    batching: dict[str, Any] | None
    queue_depth: int
    model_version_status: list[dict[str, Any]]


class ModelList(BaseModel):
    models: list[ModelDocument]
