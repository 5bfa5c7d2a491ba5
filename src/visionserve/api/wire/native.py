"""The native API's wire format: request options in, predictions and model documents out.

``POST /v1/predict`` (any task) and ``POST /v1/detect`` (box tasks) answer the documents that
:mod:`visionserve.api.wire.predictions` describes: for one image ``{"model", "version", "task",
"width", "height", "detections" | "classes", "timings"}``, for several ``{"model", "version",
"task", "results": [...]}``. Boxes, polygons and keypoints are in pixels of the original image;
timings in milliseconds. Pure functions and pydantic schemas only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from visionserve.api.wire import tfserving
from visionserve.api.wire.common import RequestOptions, describe_validation_error, split_classes
from visionserve.api.wire.predictions import DetectResponse, PredictResponse
from visionserve.core.detections import Detections
from visionserve.errors import InvalidParameterError, WrongTaskError
from visionserve.models.devices import device_names
from visionserve.models.keypoints import keypoints_document
from visionserve.models.labels import Labels
from visionserve.models.spec import ModelSpec, Task
from visionserve.pipeline import PredictOptions
from visionserve.render.annotated import annotated_jpeg
from visionserve.render.annotators import RenderMode
from visionserve.render.json import prediction_to_json
from visionserve.render.mask_encoding import MaskFormat
from visionserve.serving.results import ImageResult, ModelStatus

__all__ = ["DetectResponse", "PredictResponse"]

#: Multipart field that carries the image(s).
IMAGE_FIELD = "image"
JPEG_MEDIA_TYPE = "image/jpeg"


class ResponseFormat(StrEnum):
    JSON = "json"
    IMAGE = "image"


class PredictParams(BaseModel):
    """Options of a predict or detect request, from the query string or form fields (form fields win)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    conf: Annotated[float, Field(ge=0, le=1)] | Literal["best"] | None = Field(
        None, description="Minimum confidence (default: the model's), or 'best': the saved per-class thresholds."
    )
    iou: float | None = Field(None, ge=0, le=1, description="NMS IoU threshold (default: the model's).")
    classes: str | None = Field(None, description="Only these classes: comma-separated names or ids.")
    max_det: int | None = Field(None, ge=1, le=10000, description="At most this many detections per image.")
    top_k: int | None = Field(None, ge=1, le=10000, description="Classifiers: at most this many classes.")
    mask_format: MaskFormat = Field(MaskFormat.POLYGON, description="Masks as 'polygon', 'rle' (COCO) or 'none'.")
    render: RenderMode = Field(RenderMode.BOXES_MASKS, description="What format=image draws.")
    format: ResponseFormat | None = Field(None, description="'json' (default) or 'image' (annotated JPEG).")


#: The name this schema had when only boxes were answered.
DetectParams = PredictParams


def query_values(items: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """``name -> values`` of a query string's ``(name, value)`` pairs, in order."""
    query: dict[str, list[str]] = {}
    for key, value in items:
        query.setdefault(key, []).append(value)
    return query


def parse_params(query: Mapping[str, Sequence[str]], form: Mapping[str, Sequence[str]]) -> PredictParams:
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
        # An empty value keeps the default; an unknown name is still refused.
        given = {k: v for k, v in merged.items() if v.strip() or k not in PredictParams.model_fields}
        return PredictParams.model_validate(given)
    except ValidationError as exc:
        raise InvalidParameterError(describe_validation_error(exc)) from None


def check_gives_boxes(spec: ModelSpec) -> None:
    """Raise :class:`WrongTaskError` when ``spec`` classifies (a box route cannot answer it); the
    routes call this before reading the body."""
    if spec.task is Task.CLASSIFY:
        raise WrongTaskError(
            f"model {spec.name!r} classifies images and gives no boxes: use /v1/models/{spec.name}/predict"
        )


def predict_options(params: PredictParams, labels: Labels) -> PredictOptions:
    """The predictor options of ``params`` for a model with ``labels`` (class names become ids)."""
    request = RequestOptions(params.conf, params.iou, params.max_det, split_classes(params.classes))
    return replace(request.to_predict_options(labels), top_k=params.top_k)


def wants_image(params: PredictParams, accept: str | None, count: int = 1) -> bool:
    """An annotated JPEG when ``format=image``, or when no format is given and ``Accept`` names
    ``image/jpeg`` (or ``image/*``) without naming JSON. Raises :class:`InvalidParameterError` when
    an image is wanted for ``count`` != 1 images."""
    if params.format is not None:
        as_image = params.format is ResponseFormat.IMAGE
    else:
        media = {part.split(";", 1)[0].strip().lower() for part in (accept or "").split(",")}
        as_image = bool(media & {JPEG_MEDIA_TYPE, "image/*"}) and "application/json" not in media
    if as_image and count != 1:
        raise InvalidParameterError("format=image answers for exactly one image")
    return as_image


def encodes_masks(results: Sequence[ImageResult], params: PredictParams) -> bool:
    """Whether rendering ``results`` rasterises masks (CPU work worth moving off the event loop)."""
    if params.mask_format is MaskFormat.NONE:
        return False
    return any(isinstance(r.prediction, Detections) and r.prediction.masks is not None for r in results)


def _image_json(result: ImageResult, labels: Labels, mask_format: MaskFormat) -> dict[str, Any]:
    size = (result.width, result.height)
    return {
        "width": result.width,
        "height": result.height,
        **prediction_to_json(result.prediction, labels, size, mask_format),
        "timings": result.timings.as_dict(),
    }


def render_predictions(
    results: Sequence[ImageResult], labels: Labels, task: Task, mask_format: MaskFormat = MaskFormat.POLYGON
) -> dict[str, Any]:
    """The JSON answer (see the module docstring); ``results`` is not empty and of one model whose
    task is ``task``. Encoding masks is blocking work: call it off the event loop when there are any."""
    first = results[0]
    head = {"model": first.model, "version": first.version, "task": task.value}
    if len(results) == 1:
        return {**head, **_image_json(first, labels, mask_format)}
    return {**head, "results": [_image_json(result, labels, mask_format) for result in results]}


def render_annotated(result: ImageResult, labels: Labels, mode: RenderMode = RenderMode.BOXES_MASKS) -> bytes:
    """A JPEG of ``result.image`` drawn as ``mode`` says (boxes, masks, keypoint skeletons, class
    banners). ``result`` must come from a full-size decode (the prediction is in source pixels).
    Blocking: call it off the event loop."""
    return annotated_jpeg(result.image, result.prediction, labels, mode)


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
        "devices": list(device_names(spec)) if spec else [],
        "description": spec.description if spec else "",
        "labels": {str(k): v for k, v in sorted(labels.as_dict().items())} if labels else {},
        "input": None,
        "thresholds": {**spec.thresholds.model_dump(), "classes": dict(spec.class_conf)} if spec else None,
        "keypoints": keypoints_document(spec) if spec else None,
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
    devices: list[str] = Field(default_factory=list, description="Where the instances run: cpu, cuda:N")
    description: str
    labels: dict[str, str]
    input: dict[str, Any] | None
    thresholds: dict[str, Any] | None
    keypoints: dict[str, Any] | None = Field(None, description="Pose models: keypoint names and skeleton pairs")
    instances: int
    batching: dict[str, Any] | None
    queue_depth: int
    model_version_status: list[dict[str, Any]]


class ModelList(BaseModel):
    models: list[ModelDocument]
    default: str | None = Field(None, description="The model of /v1/detect and /v1/predict")
