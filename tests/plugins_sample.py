"""A plugin model for tests: fixed boxes, as fractions of each image's size.

Per image it returns, in this order, ``(x1, y1, x2, y2)`` fractions with class and score:
``(0.25, 0.25, 0.75, 0.75)`` class 0 score 0.9; ``(0.0, 0.0, 0.5, 0.5)`` class 1 score 0.6;
``(0.5, 0.5, 1.0, 1.0)`` class 0 score 0.3. ``options.scale`` multiplies every score (default 1).
With ``options.broken: true`` it returns one result too few.
"""

from __future__ import annotations

import numpy as np

from visionserve.core.detections import Detections
from visionserve.models.spec import ModelSpec
from visionserve.types import BGRImage

BOXES = np.array([[0.25, 0.25, 0.75, 0.75], [0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]], np.float32)
SCORES = np.array([0.9, 0.6, 0.3], np.float32)
CLASSES = np.array([0, 1, 0], np.int32)


class FixedBoxes:
    """The fixed boxes above, scaled to each image."""

    def __init__(self) -> None:
        self.scale = 1.0
        self.broken = False
        self.closed = False

    def load(self, spec: ModelSpec) -> None:
        self.scale = float(spec.options.get("scale", 1.0))
        self.broken = bool(spec.options.get("broken", False))

    def predict(self, images: list[BGRImage]) -> list[Detections]:
        found = []
        for image in images:
            height, width = image.shape[:2]
            size = np.array([width, height, width, height], np.float32)
            found.append(Detections(BOXES * size, SCORES * self.scale, CLASSES))
        return found[:-1] if self.broken else found

    def close(self) -> None:
        self.closed = True


class NotAPlugin:
    """A class without ``load``/``predict``."""
