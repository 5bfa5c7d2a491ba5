"""A plugin model for server tests: slow on purpose, and its answer depends on each image.

Per image it returns one box covering the whole image, of the class of the image's dominant colour
channel (labels ``[blue, green, red]``), score 0.9. ``options``:

* ``delay_s``: seconds each ``predict`` call sleeps (default 0);
* ``crash_on_red``: raise ``RuntimeError`` for a batch with a mostly red image (an unexpected
  failure: the server answers 500; the warm-up image is grey, so the model still loads).

The fixtures copy this file next to the ``model.yaml`` that names it (``sleepy_plugin:Sleepy``),
so the server process imports it from the model's folder.
"""

from __future__ import annotations

import time

import numpy as np

from visionserve.core.detections import Detections
from visionserve.models.spec import ModelSpec
from visionserve.types import BGRImage


class Sleepy:
    def __init__(self) -> None:
        self.delay_s = 0.0
        self.crash_on_red = False

    def load(self, spec: ModelSpec) -> None:
        self.delay_s = float(spec.options.get("delay_s", 0.0))
        self.crash_on_red = bool(spec.options.get("crash_on_red", False))

    def predict(self, images: list[BGRImage]) -> list[Detections]:
        time.sleep(self.delay_s)
        found = []
        for image in images:
            height, width = image.shape[:2]
            means = image.reshape(-1, 3).mean(axis=0)
            channel = int(np.argmax(means)) if np.ptp(means) > 0 else 1
            if self.crash_on_red and channel == 2:
                raise RuntimeError("sleepy plugin crashed on purpose")
            found.append(
                Detections(np.array([[0, 0, width, height]], np.float32), np.array([0.9]), np.array([channel]))
            )
        return found
