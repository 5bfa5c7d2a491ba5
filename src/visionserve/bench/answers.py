"""What the bench compares: an answer reduced to labelled rows, and the check against a reference.

Every protocol's answer (and an in-process prediction) becomes an :class:`Answer`: label names,
scores, and boxes ``(x1, y1, x2, y2)`` in pixels of the image sent (classifiers have no boxes).
Under load the same image may travel in a different batch than it did alone, so the check allows
small differences: each reference row must be matched by a distinct row of the same label whose
score is within ``score_tolerance`` and whose box corners are within ``box_tolerance`` pixels, and
there must be no extra rows. Anything else is a wrong answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from visionserve.core.classifications import Classifications
from visionserve.core.detections import Detections
from visionserve.core.prediction import Prediction
from visionserve.models.labels import Labels

#: Scores and boxes in double precision (the comparison subtracts them).
Float64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Answer:
    """Rows of one image's answer: ``labels[i]``, ``scores[i]`` and ``boxes[i]`` (``(N, 4)`` float
    pixels, ``(N, 0)`` when the answer has no boxes)."""

    labels: tuple[str, ...]
    scores: Float64
    boxes: Float64

    def __post_init__(self) -> None:
        n = len(self.labels)
        if self.scores.shape != (n,) or self.boxes.ndim != 2 or self.boxes.shape[0] != n:
            raise ValueError(
                f"an answer needs as many scores and boxes as labels: {n} labels, "
                f"scores {self.scores.shape}, boxes {self.boxes.shape}"
            )

    @classmethod
    def of(cls, rows: Sequence[tuple[str, float, tuple[float, float, float, float] | None]]) -> Answer:
        """From ``(label, score, box or None)`` rows (all with boxes or none)."""
        boxes = [box for _, _, box in rows if box is not None]
        if boxes and len(boxes) != len(rows):
            raise ValueError("either every row of an answer has a box or none has")
        return cls(
            tuple(label for label, _, _ in rows),
            np.array([score for _, score, _ in rows], np.float64),
            np.array(boxes, np.float64).reshape(len(rows), 4 if boxes else 0),
        )

    def describe(self) -> str:
        """A short text for messages: ``person 0.91, dog 0.55``."""
        return (
            ", ".join(f"{label} {score:.2f}" for label, score in zip(self.labels, self.scores, strict=True))
            or "nothing"
        )


def answer_of(prediction: Prediction, labels: Labels) -> Answer:
    """The :class:`Answer` of an in-process prediction (boxes already in the image's pixels)."""
    if isinstance(prediction, Classifications):
        names = tuple(labels.name(int(c)) for c in prediction.class_id)
        scores = np.asarray(prediction.confidence, np.float64)
        return Answer(names, scores, np.zeros((len(names), 0)))
    found: Detections = prediction
    names = tuple(labels.name(int(c)) for c in found.class_id)
    return Answer(names, np.asarray(found.confidence, np.float64), np.asarray(found.xyxy, np.float64))


@dataclass(frozen=True)
class Tolerance:
    """How far an answer under load may be from the reference: box corners in pixels, scores absolute."""

    box_pixels: float = 2.0
    score: float = 0.02


def difference(reference: Answer, answer: Answer, tolerance: Tolerance) -> str | None:
    """None when ``answer`` matches ``reference`` within ``tolerance``, else why not (one line)."""
    if len(answer.labels) != len(reference.labels):
        return f"{len(answer.labels)} rows instead of {len(reference.labels)} ({answer.describe()})"
    if answer.boxes.shape[1] != reference.boxes.shape[1]:
        return "boxes where the reference has none, or the reverse"
    free = set(range(len(answer.labels)))
    for i, label in enumerate(reference.labels):
        match = next((j for j in sorted(free) if _same_row(reference, i, answer, j, tolerance)), None)
        if match is None:
            return f"no match for {label} {reference.scores[i]:.2f} (got {answer.describe()})"
        free.discard(match)
    return None


def _same_row(reference: Answer, i: int, answer: Answer, j: int, tolerance: Tolerance) -> bool:
    if answer.labels[j] != reference.labels[i] or abs(answer.scores[j] - reference.scores[i]) > tolerance.score:
        return False
    return bool(np.all(np.abs(answer.boxes[j] - reference.boxes[i]) <= tolerance.box_pixels))
