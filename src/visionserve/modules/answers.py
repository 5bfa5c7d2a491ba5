"""An analysis module's answer as a prediction value.

``inference_by_path`` answers a list of ``[(x, y, w, h), {label: probability, ...}]`` pairs: one box
(top-left corner, width and height, in pixels of the picture) and the labels proposed for it. Each
becomes one detection whose class is the most probable label (the first one on a tie) and whose
:class:`~visionserve.core.candidates.CandidateLabels` row keeps every label with its probability. A
box with no label at all is skipped. Anything else is an :class:`InferenceError` that says what was
expected and where the answer differs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from visionserve.core.candidates import CandidateLabels
from visionserve.core.detections import Detections
from visionserve.errors import InferenceError

EXPECTED = "a list of [(x, y, w, h), {label: probability, ...}]"


def to_detections(answer: Any, label_id: Callable[[str], int], source: str) -> Detections:
    """The detections of ``answer``; ``label_id`` turns a label into its class id (``source`` names
    the module in errors). Raises :class:`InferenceError` for an answer of another shape."""
    if answer is None or isinstance(answer, str | bytes | Mapping) or not hasattr(answer, "__iter__"):
        raise InferenceError(f"{source}: inference_by_path returned {type(answer).__name__}, expected {EXPECTED}")
    boxes: list[tuple[float, float, float, float]] = []
    rows: list[list[tuple[int, float]]] = []
    for position, item in enumerate(answer):
        box, labels = _pair(item, position, source)
        if not labels:
            continue
        boxes.append(box)
        rows.append([(label_id(name), score) for name, score in labels])
    if not boxes:
        return Detections.empty()
    candidates = CandidateLabels.from_rows(rows)
    return Detections(
        np.array(boxes, np.float32), candidates.score[:, 0], candidates.class_id[:, 0], candidates=candidates
    )


def _pair(item: Any, position: int, source: str) -> tuple[tuple[float, float, float, float], list[tuple[str, float]]]:
    """``(x1, y1, x2, y2)`` and the ``(label, probability)`` pairs of one answered item."""
    where = f"{source}: inference_by_path item {position}"
    if isinstance(item, str | bytes | Mapping) or not hasattr(item, "__len__") or len(item) != 2:
        raise InferenceError(f"{where} is {_show(item)}, expected [(x, y, w, h), {{label: probability}}]")
    box, labels = item
    try:
        x, y, w, h = (float(v) for v in np.asarray(box, dtype=np.float64).reshape(-1))
    except (TypeError, ValueError) as exc:
        raise InferenceError(f"{where}: the box {_show(box)} is not four numbers (x, y, w, h)") from exc
    if not all(math.isfinite(v) for v in (x, y, w, h)) or w < 0 or h < 0:
        raise InferenceError(f"{where}: the box {_show(box)} needs finite numbers and a width and height >= 0")
    if not isinstance(labels, Mapping):
        raise InferenceError(f"{where}: the labels are {_show(labels)}, expected {{label: probability}}")
    scores = []
    for name, value in labels.items():
        try:
            score = float(value)
        except (TypeError, ValueError) as exc:
            raise InferenceError(f"{where}: the probability of {_show(name)} is {_show(value)}, not a number") from exc
        if not math.isfinite(score):
            raise InferenceError(f"{where}: the probability of {_show(name)} is {score}")
        scores.append((str(name), score))
    return (x, y, x + w, y + h), scores


def _show(value: Any) -> str:
    """A short form of ``value`` for an error message."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
