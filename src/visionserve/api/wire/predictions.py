"""The schemas of the native prediction answers (``/v1/predict``, ``/v1/detect``), for the API docs
and for tests that validate real answers. The JSON itself is built by
:func:`visionserve.render.json.prediction_to_json` and :func:`visionserve.api.wire.native.render_predictions`.

For one image::

    {"model": "...", "version": "...", "task": "segment", "width": 640, "height": 480,
     "detections": [{"label", "class_id", "score", "box": {"x1", "y1", "x2", "y2"},
                     "polygons": [[[x, y], ...], ...]}],  # or "rle", "keypoints", "candidates"
     "timings": {...}}

a classifier answers ``"classes": [{"label", "class_id", "score"}]`` instead of ``detections``;
several images give ``{"model", "version", "task", "results": [{"width", ...}, ...]}``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Box(_Closed):
    x1: float
    y1: float
    x2: float
    y2: float


class Keypoint(_Closed):
    name: str
    x: float
    y: float
    score: float


class Rle(_Closed):
    """COCO compressed RLE over the whole image, as ``pycocotools.mask.decode`` reads it."""

    size: tuple[int, int] = Field(description="[height, width] of the image")
    counts: str


class Candidate(_Closed):
    label: str
    class_id: int
    score: float


class Detection(_Closed):
    label: str
    class_id: int
    score: float
    box: Box
    polygons: list[list[tuple[float, float]]] | None = Field(
        None, description="Segment models, mask_format=polygon: one polygon of [x, y] points per part"
    )
    rle: Rle | None = Field(None, description="Segment models, mask_format=rle")
    keypoints: list[Keypoint] | None = Field(None, description="Pose models: named points")
    tracker_id: int | None = None
    candidates: list[Candidate] | None = Field(
        None, description="Analysis modules: every label proposed for the box, highest score first"
    )


class ClassScore(_Closed):
    label: str
    class_id: int
    score: float


class TimingsOut(_Closed):
    queue: float
    decode: float
    preprocess: float
    inference: float
    postprocess: float
    total: float


class ImagePrediction(_Closed):
    """The prediction of one image: ``detections`` (detect, segment, pose) or ``classes`` (classify)."""

    width: int
    height: int
    detections: list[Detection] | None = None
    classes: list[ClassScore] | None = None
    timings: TimingsOut


class PredictResponse(_Closed):
    """The answer for one image (``width`` ... ``timings`` set) or several (``results`` set)."""

    model: str
    version: str
    task: str
    width: int | None = None
    height: int | None = None
    detections: list[Detection] | None = None
    classes: list[ClassScore] | None = None
    timings: TimingsOut | None = None
    results: list[ImagePrediction] | None = None


#: ``/v1/detect`` answers the same document (always with ``detections``).
DetectResponse = PredictResponse
