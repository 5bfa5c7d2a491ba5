"""Predictions of any task read from the server's answers, without I/O (the counterpart of
``/v1/predict``): boxes with masks and named keypoints, or the top classes of an image."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np

from visionserve.core.classifications import Classifications
from visionserve.core.detections import Detections
from visionserve.core.masks import InstanceMasks
from visionserve.core.prediction import Prediction
from visionserve.errors import InvalidParameterError, ServerError, WrongTaskError
from visionserve.render.mask_decoding import instance_masks, patch_from_polygons, patch_from_rle
from visionserve.render.mask_encoding import MaskFormat

__all__ = ["MaskFormat", "PredictionResult", "parse_prediction", "parse_predictions", "predict_path"]


@dataclass(frozen=True)
class PredictionResult:
    """What a model predicted for one image, whatever its task.

    ``prediction`` is :class:`Detections` (detect, segment, pose: boxes in source-image pixels,
    highest score first, with ``masks`` as compact :class:`InstanceMasks` at image resolution when
    the server sent polygons or RLE, and ``keypoints (N, K, 3)`` as ``x, y, score``) or
    :class:`Classifications` (classify). ``labels[i]`` names row ``i`` (a detection or a class);
    ``keypoint_names[k]`` names keypoint ``k``; ``timings`` are the server's milliseconds per stage.
    """

    model: str
    version: str | None
    task: str
    width: int
    height: int
    prediction: Prediction
    labels: tuple[str, ...]
    keypoint_names: tuple[str, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def detections(self) -> Detections:
        """The boxes; raises :class:`WrongTaskError` for a classification."""
        if not isinstance(self.prediction, Detections):
            raise WrongTaskError(f"model {self.model!r} classifies images: read .classes")
        return self.prediction

    @property
    def classes(self) -> Classifications:
        """The top classes; raises :class:`WrongTaskError` for boxes."""
        if not isinstance(self.prediction, Classifications):
            raise WrongTaskError(f"model {self.model!r} gives boxes ({self.task}): read .detections")
        return self.prediction


def predict_path(model: str | None) -> str:
    """The native predict route for ``model`` (the default model when None)."""
    return "/v1/predict" if model is None else f"/v1/models/{quote(model, safe='')}/predict"


def predict_fields(top_k: int | None, mask_format: MaskFormat | str) -> dict[str, str]:
    """Form fields of the prediction-only options; raises :class:`InvalidParameterError` for an
    unknown mask format (before any request)."""
    try:
        fields = {"mask_format": MaskFormat(mask_format).value}
    except ValueError:
        raise InvalidParameterError(f"mask_format must be polygon, rle or none, got {mask_format!r}") from None
    if top_k is not None:
        fields["top_k"] = str(top_k)
    return fields


def _masks(items: Sequence[dict[str, Any]]) -> InstanceMasks | None:
    """The masks when every item carries them in one format, else None."""
    if all("polygons" in d for d in items):
        return instance_masks([patch_from_polygons(d["polygons"]) for d in items])
    if all("rle" in d for d in items):
        return instance_masks([patch_from_rle(d["rle"]) for d in items])
    return None


def _boxes(items: list[dict[str, Any]]) -> tuple[Detections, tuple[str, ...], tuple[str, ...]]:
    if not items:
        return Detections.empty(), (), ()
    boxes = np.array([[d["box"][k] for k in ("x1", "y1", "x2", "y2")] for d in items], np.float32)
    scores = np.array([d["score"] for d in items], np.float32)
    class_ids = np.array([d["class_id"] for d in items], np.int32)
    keypoints, names = None, tuple[str, ...]()
    if all("keypoints" in d for d in items):
        keypoints = np.array([[(p["x"], p["y"], p["score"]) for p in d["keypoints"]] for d in items], np.float32)
        names = tuple(str(p["name"]) for p in items[0]["keypoints"])
    detections = Detections(boxes, scores, class_ids, masks=_masks(items), keypoints=keypoints)
    return detections, tuple(str(d["label"]) for d in items), names


def _classes(items: list[dict[str, Any]]) -> tuple[Classifications, tuple[str, ...]]:
    class_ids = np.array([d["class_id"] for d in items], np.int32)
    scores = np.array([d["score"] for d in items], np.float32)
    return Classifications(class_ids, scores), tuple(str(d["label"]) for d in items)


def parse_prediction(document: dict[str, Any], model: str | None = None) -> PredictionResult:
    """A :class:`PredictionResult` from one native result document (``detections`` or ``classes``);
    raises :class:`ServerError` when fields are missing or of the wrong type."""
    try:
        names: tuple[str, ...] = ()
        prediction: Prediction
        if "classes" in document:
            prediction, labels = _classes(document["classes"])
        else:
            prediction, labels, names = _boxes(document["detections"])
        version = document.get("version")
        return PredictionResult(
            model=str(document.get("model", model or "")),
            version=None if version is None else str(version),
            task=str(document.get("task", "classify" if "classes" in document else "detect")),
            width=int(document["width"]),
            height=int(document["height"]),
            prediction=prediction,
            labels=labels,
            keypoint_names=names,
            timings={str(k): float(v) for k, v in (document.get("timings") or {}).items()},
        )
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ServerError(f"unreadable prediction from the server: {exc!r}") from exc


def parse_predictions(response: httpx.Response, model: str | None, count: int) -> list[PredictionResult]:
    """Results of a predict answer: one document for one image; for several,
    ``{"model", "version", "task", "results": [...]}`` whose items inherit those three."""
    try:
        document = response.json()
    except ValueError as exc:
        raise ServerError(f"the server answered {response.request.url.path} with something that is not JSON") from exc
    if not isinstance(document, dict):
        raise ServerError("unreadable prediction answer from the server")
    items = document.get("results", [document])
    if not isinstance(items, list) or len(items) != count:
        raise ServerError(
            f"the server returned {len(items) if isinstance(items, list) else 'no'} results for {count} images"
        )
    head = {key: document[key] for key in ("model", "version", "task") if key in document}
    return [parse_prediction({**head, **item} if isinstance(item, dict) else {}, model) for item in items]
