"""The one step that turns a prediction into rows: sorted highest score first, labelled, with masks
and keypoints in the requested format. Every codec (native JSON, DeepStack, KServe v2, TF Serving,
Roboflow, /upload, jobs) starts from these rows and only renames and reshapes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from visionserve.core.classifications import Classifications
from visionserve.core.detections import Detections
from visionserve.models.labels import Labels
from visionserve.render.mask_encoding import MaskFormat, Polygon, polygons, rle


@dataclass(frozen=True)
class KeypointRow:
    """One named keypoint in source pixels, with its score."""

    name: str
    x: float
    y: float
    score: float


@dataclass(frozen=True)
class CandidateRow:
    """One candidate label of a detection, with its score."""

    label: str
    class_id: int
    score: float


@dataclass(frozen=True)
class BoxRow:
    """One detection: box ``(x1, y1, x2, y2)`` in source pixels; ``polygons`` or ``rle`` when the
    model gives masks and that format was asked for; ``keypoints`` for pose models; ``candidates``
    (every label proposed for the box, highest score first) for analysis modules."""

    label: str
    class_id: int
    score: float
    box: tuple[float, float, float, float]
    polygons: list[Polygon] | None = None
    rle: dict[str, Any] | None = None
    keypoints: tuple[KeypointRow, ...] | None = None
    tracker_id: int | None = None
    candidates: tuple[CandidateRow, ...] | None = None

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]


@dataclass(frozen=True)
class ClassRow:
    """One class of a classification."""

    label: str
    class_id: int
    score: float


def box_rows(
    detections: Detections,
    labels: Labels,
    image_size: tuple[int, int],
    mask_format: MaskFormat = MaskFormat.POLYGON,
) -> list[BoxRow]:
    """Rows of ``detections`` (in pixels of an image of ``image_size = (width, height)``), highest
    score first; masks rasterised one at a time over their box only and encoded as ``mask_format``."""
    ordered = detections.sorted_by_confidence()
    width, height = image_size
    # Plain Python numbers, converted once per array rather than once per element.
    class_ids, scores, boxes = ordered.class_id.tolist(), ordered.confidence.tolist(), ordered.xyxy.tolist()
    keypoints = None if ordered.keypoints is None else ordered.keypoints.tolist()
    tracks = None if ordered.tracker_id is None else ordered.tracker_id.tolist()
    rows = []
    for i, (class_id, score, box) in enumerate(zip(class_ids, scores, boxes, strict=True)):
        shapes, encoded = None, None
        if ordered.masks is not None and mask_format is not MaskFormat.NONE:
            patch = ordered.mask_patch(i, height, width)
            if mask_format is MaskFormat.POLYGON:
                shapes = polygons(patch)
            else:
                encoded = rle(patch, height, width)
        points = None
        if keypoints is not None:
            points = tuple(KeypointRow(labels.keypoint_name(k), x, y, s) for k, (x, y, s) in enumerate(keypoints[i]))
        track = None if tracks is None else tracks[i]
        proposed = _candidate_rows(ordered, i, labels)
        rows.append(
            BoxRow(labels.name(class_id), class_id, score, tuple(box), shapes, encoded, points, track, proposed)
        )
    return rows


def _candidate_rows(detections: Detections, index: int, labels: Labels) -> tuple[CandidateRow, ...] | None:
    if detections.candidates is None:
        return None
    return tuple(CandidateRow(labels.name(c), c, s) for c, s in detections.candidates.row(index))


def class_rows(classes: Classifications, labels: Labels) -> list[ClassRow]:
    """Rows of ``classes``, highest score first (the value keeps that order)."""
    return [
        ClassRow(labels.name(c), c, s)
        for c, s in zip(classes.class_id.tolist(), classes.confidence.tolist(), strict=True)
    ]
