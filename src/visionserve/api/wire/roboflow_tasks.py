"""Roboflow Inference answers for the tasks beyond boxes, shaped as its response entities.

- ``/infer/instance_segmentation`` (``InstanceSegmentationInferenceResponse``): each prediction is a
  box (centre ``x, y``, ``width``, ``height``, ``confidence``, ``class``, ``class_id``,
  ``detection_id``) with ``points``, the polygon of its mask as ``[{"x", "y"}, ...]`` in source
  pixels (the largest part when a mask has several, as Roboflow keeps one contour), and
  ``mask_format: "polygon"``; or, when the request says ``response_mask_format: "rle"``, with
  ``rle``, the COCO RLE ``{"size": [H, W], "counts": str}``, and ``mask_format: "rle"``.
- ``/infer/keypoints_detection`` (``KeypointsDetectionInferenceResponse``): boxes with
  ``keypoints`` ``[{"x", "y", "confidence", "class_id", "class"}, ...]``, ``class_id`` being the
  keypoint's index and ``class`` its name; keypoints under ``keypoint_confidence`` are left out.
- ``/infer/classification`` (``ClassificationInferenceResponse``): ``predictions`` ``[{"class",
  "class_id", "confidence"}, ...]`` highest first, ``top`` and ``confidence`` of the best class
  (``""`` and 0 when no class reaches the request's confidence, as Roboflow answers).

Every answer also has ``inference_id``, ``time`` (seconds), ``image {width, height}`` and
``visualization``. Pure functions and pydantic schemas only; rows come from
:mod:`visionserve.render.rows`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal
from uuid import uuid4

from pydantic import BaseModel, ConfigDict, Field

from visionserve.api.wire.roboflow import (
    InferenceResponseImage,
    MaskFormatName,
    ObjectDetectionPrediction,
    box_fields,
    encode_visualization,
)
from visionserve.core.classifications import Classifications
from visionserve.core.detections import Detections
from visionserve.core.prediction import Prediction
from visionserve.models.labels import Labels
from visionserve.render.annotated import annotated_jpeg
from visionserve.render.mask_encoding import MaskFormat
from visionserve.render.rows import BoxRow, box_rows, class_rows
from visionserve.types import BGRImage


def _new_id() -> str:
    return str(uuid4())


class Point(BaseModel):
    x: float
    y: float


class InstanceSegmentationPrediction(ObjectDetectionPrediction):
    points: list[Point]
    mask_format: Literal["polygon"] = "polygon"


class InstanceSegmentationRLEPrediction(ObjectDetectionPrediction):
    rle: dict[str, Any]
    mask_format: Literal["rle"] = "rle"


class Keypoint(BaseModel):
    model_config = ConfigDict(serialize_by_alias=True)

    x: float
    y: float
    confidence: float
    class_id: int
    class_name: str = Field(serialization_alias="class")


class KeypointsPrediction(ObjectDetectionPrediction):
    keypoints: list[Keypoint]


class ClassificationPrediction(BaseModel):
    model_config = ConfigDict(serialize_by_alias=True)

    class_name: str = Field(serialization_alias="class")
    class_id: int
    confidence: float


class _CvResponse(BaseModel):
    inference_id: str | None = None
    time: float
    image: InferenceResponseImage
    visualization: str | None = None


class InstanceSegmentationResponse(_CvResponse):
    predictions: list[InstanceSegmentationPrediction | InstanceSegmentationRLEPrediction]


class KeypointsDetectionResponse(_CvResponse):
    predictions: list[KeypointsPrediction]


class ClassificationResponse(_CvResponse):
    predictions: list[ClassificationPrediction]
    top: str = ""
    confidence: float = 0.0


def _head(
    size: tuple[int, int], seconds: float, visualization: bytes | None, new_id: Callable[[], str]
) -> dict[str, Any]:
    """The fields every answer shares (the inference id is drawn after the predictions' ids)."""
    return {
        "inference_id": new_id(),
        "time": round(seconds, 6),
        "image": InferenceResponseImage(width=size[0], height=size[1]),
        "visualization": encode_visualization(visualization),
    }


def _mask_prediction(
    row: BoxRow, new_id: Callable[[], str]
) -> InstanceSegmentationPrediction | InstanceSegmentationRLEPrediction:
    fields = box_fields(row, new_id)
    if row.rle is not None:
        return InstanceSegmentationRLEPrediction(**fields, rle=row.rle)
    largest = row.polygons[0] if row.polygons else []
    return InstanceSegmentationPrediction(**fields, points=[Point(x=x, y=y) for x, y in largest])


def render_instance_segmentation(
    detections: Detections,
    labels: Labels,
    size: tuple[int, int],
    seconds: float,
    mask_format: MaskFormatName = "polygon",
    visualization: bytes | None = None,
    new_id: Callable[[], str] = _new_id,
) -> InstanceSegmentationResponse:
    """The answer for one ``(width, height)`` image, highest confidence first; masks as polygons
    or COCO RLE (``mask_format``). Detections without masks get empty ``points``."""
    wanted = MaskFormat.RLE if mask_format == "rle" else MaskFormat.POLYGON
    rows = box_rows(detections, labels, size, wanted)
    predictions = [_mask_prediction(row, new_id) for row in rows]
    return InstanceSegmentationResponse(predictions=predictions, **_head(size, seconds, visualization, new_id))


def _keypoints(row: BoxRow, min_confidence: float) -> list[Keypoint]:
    return [
        Keypoint(x=round(p.x, 2), y=round(p.y, 2), confidence=round(p.score, 4), class_id=k, class_name=p.name)
        for k, p in enumerate(row.keypoints or ())
        if p.score >= min_confidence
    ]


def render_keypoints_detection(
    detections: Detections,
    labels: Labels,
    size: tuple[int, int],
    seconds: float,
    keypoint_confidence: float = 0.0,
    visualization: bytes | None = None,
    new_id: Callable[[], str] = _new_id,
) -> KeypointsDetectionResponse:
    """The answer for one ``(width, height)`` image: boxes highest confidence first, each with its
    keypoints scoring at least ``keypoint_confidence`` (named by the model's keypoint names)."""
    rows = box_rows(detections, labels, size, MaskFormat.NONE)
    predictions = [
        KeypointsPrediction(**box_fields(row, new_id), keypoints=_keypoints(row, keypoint_confidence)) for row in rows
    ]
    return KeypointsDetectionResponse(predictions=predictions, **_head(size, seconds, visualization, new_id))


def render_classification(
    classes: Classifications,
    labels: Labels,
    size: tuple[int, int],
    seconds: float,
    visualization: bytes | None = None,
    new_id: Callable[[], str] = _new_id,
) -> ClassificationResponse:
    """The answer for one ``(width, height)`` image: the classes of ``classes`` (already filtered
    by the request's confidence), highest first, and the best as ``top``/``confidence``."""
    predictions = [
        ClassificationPrediction(class_name=row.label, class_id=row.class_id, confidence=round(row.score, 4))
        for row in class_rows(classes, labels)
    ]
    best = predictions[0] if predictions else None
    return ClassificationResponse(
        predictions=predictions,
        top=best.class_name if best else "",
        confidence=best.confidence if best else 0.0,
        **_head(size, seconds, visualization, new_id),
    )


def visualize(image: BGRImage, prediction: Prediction, labels: Labels) -> bytes:
    """A JPEG of ``image`` (at source size: the prediction is in its pixels) with the prediction
    drawn: boxes, masks, keypoints or the class banner. Blocking: call it off the event loop."""
    return annotated_jpeg(image, prediction, labels)
