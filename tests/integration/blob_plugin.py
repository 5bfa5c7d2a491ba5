"""A fast plugin model for stream tests: finds the photo that the test videos move over a flat grey
background (the box of the pixels that differ from the background), labelled ``person``, score 0.9.

The fixtures copy this file next to the ``model.yaml`` that names it (``blob_plugin:Blob``).
"""

from __future__ import annotations

import numpy as np

from visionserve.core.detections import Detections
from visionserve.models.spec import ModelSpec
from visionserve.types import BGRImage

BACKGROUND = 60


class Blob:
    def load(self, spec: ModelSpec) -> None:
        self.min_pixels = int(spec.options.get("min_pixels", 50))

    def predict(self, images: list[BGRImage]) -> list[Detections]:
        found = []
        for image in images:
            differs = np.abs(image.astype(np.int16) - BACKGROUND).sum(axis=2) > 40
            ys, xs = np.nonzero(differs)
            if len(xs) < self.min_pixels:
                found.append(Detections.empty())
                continue
            box = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32)
            found.append(Detections(box, np.array([0.9], np.float32), np.array([0], np.int32)))
        return found
