"""The JSON form of a prediction, shared by the native HTTP API, the CLI and the jobs.

Built on :mod:`visionserve.render.rows` (sorting and labelling happen there). A box prediction
(detect, segment, pose) becomes ``{"detections": [...]}``; each entry::

    {"label": "person", "class_id": 0, "score": 0.93,
     "box": {"x1": 12.5, "y1": 30.1, "x2": 260.0, "y2": 510.2},
     "polygons": [[[x, y], ...], ...],                 # masks, mask_format=polygon (one per part)
     "rle": {"size": [H, W], "counts": "..."},         # masks, mask_format=rle (COCO compressed)
     "keypoints": [{"name": "nose", "x": 1.0, "y": 2.0, "score": 0.9}, ...],  # pose models
     "candidates": [{"label": "person", "class_id": 0, "score": 0.93}, ...]}   # analysis modules

(``polygons``, ``rle``, ``keypoints`` and ``candidates`` only when the model gives them and the format asks for
them). A classification becomes ``{"classes": [{"label", "class_id", "score"}, ...]}``, highest
score first. Coordinates are in source-image pixels.
"""

from __future__ import annotations

from typing import Any

from visionserve.core.classifications import Classifications
from visionserve.core.detections import Detections
from visionserve.core.prediction import Prediction
from visionserve.models.labels import Labels
from visionserve.render.mask_encoding import MaskFormat
from visionserve.render.rows import BoxRow, box_rows, class_rows

#: Decimals of boxes and keypoints (pixels) and of scores.
PIXEL_DECIMALS = 2
SCORE_DECIMALS = 4


def box_row_json(row: BoxRow) -> dict[str, Any]:
    """One detection row as JSON (see the module docstring)."""
    item: dict[str, Any] = {
        "label": row.label,
        "class_id": row.class_id,
        "score": round(row.score, SCORE_DECIMALS),
        "box": dict(zip(("x1", "y1", "x2", "y2"), (round(v, PIXEL_DECIMALS) for v in row.box), strict=True)),
    }
    if row.polygons is not None:
        item["polygons"] = row.polygons
    if row.rle is not None:
        item["rle"] = row.rle
    if row.keypoints is not None:
        item["keypoints"] = [
            {
                "name": point.name,
                "x": round(point.x, PIXEL_DECIMALS),
                "y": round(point.y, PIXEL_DECIMALS),
                "score": round(point.score, SCORE_DECIMALS),
            }
            for point in row.keypoints
        ]
    if row.tracker_id is not None:
        item["tracker_id"] = row.tracker_id
    if row.candidates is not None:
        item["candidates"] = [
            {"label": c.label, "class_id": c.class_id, "score": round(c.score, SCORE_DECIMALS)} for c in row.candidates
        ]
    return item


def detections_to_json(
    detections: Detections,
    labels: Labels,
    image_size: tuple[int, int] = (0, 0),
    mask_format: MaskFormat = MaskFormat.NONE,
) -> list[dict[str, Any]]:
    """The entries of ``detections`` (in pixels of an image of ``image_size = (width, height)``),
    highest score first. Masks are encoded only when ``mask_format`` asks for them, which needs the
    real ``image_size``."""
    if mask_format is not MaskFormat.NONE and min(image_size) < 1:
        raise ValueError(f"encoding masks needs the image size, got {image_size}")
    return [box_row_json(row) for row in box_rows(detections, labels, image_size, mask_format)]


def classes_to_json(classes: Classifications, labels: Labels) -> list[dict[str, Any]]:
    """``[{"label", "class_id", "score"}]``, highest score first."""
    return [
        {"label": row.label, "class_id": row.class_id, "score": round(row.score, SCORE_DECIMALS)}
        for row in class_rows(classes, labels)
    ]


def prediction_to_json(
    prediction: Prediction,
    labels: Labels,
    image_size: tuple[int, int],
    mask_format: MaskFormat = MaskFormat.POLYGON,
) -> dict[str, Any]:
    """``{"detections": [...]}`` for boxes, ``{"classes": [...]}`` for a classification; the image
    is ``image_size = (width, height)`` pixels (masks are encoded on it)."""
    if isinstance(prediction, Classifications):
        return {"classes": classes_to_json(prediction, labels)}
    return {"detections": detections_to_json(prediction, labels, image_size, mask_format)}
