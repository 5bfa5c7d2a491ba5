"""A plugin model that answers fast but not always right, for the bench's wrong-answer check.

Each image gets one box covering it (label ``thing``, score 0.9), except on every ``wrong_every``-th
call to ``predict`` (counted over the model's life, warm-up included), where the box is moved
``shift`` pixels to the right: the kind of answer a broken batching path or a race gives.
The fixtures copy this file next to the ``model.yaml`` that names it (``flaky_plugin:Flaky``).
"""

from __future__ import annotations

import itertools
import threading

import numpy as np

from visionserve.core.detections import Detections
from visionserve.models.spec import ModelSpec
from visionserve.types import BGRImage


class Flaky:
    def __init__(self) -> None:
        self.wrong_every, self.shift = 2, 40.0
        self._calls = itertools.count(1)
        self._lock = threading.Lock()

    def load(self, spec: ModelSpec) -> None:
        self.wrong_every = int(spec.options.get("wrong_every", 2))
        self.shift = float(spec.options.get("shift", 40.0))

    def predict(self, images: list[BGRImage]) -> list[Detections]:
        with self._lock:
            call = next(self._calls)
        shift = self.shift if call % self.wrong_every == 0 else 0.0
        found = []
        for image in images:
            height, width = image.shape[:2]
            box = np.array([[shift, 0, width + shift, height]], np.float32)
            found.append(Detections(box, np.array([0.9], np.float32), np.array([0], np.int32)))
        return found
