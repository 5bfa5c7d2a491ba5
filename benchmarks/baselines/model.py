"""The default model loaded and run by hand, as the baselines do it."""

from __future__ import annotations

import cv2
import numpy as np

from visionserve.models.default import default_spec


def load_net() -> cv2.dnn.Net:
    spec = default_spec()
    files = spec.network[0]
    assert files.config is not None
    return cv2.dnn.readNetFromTensorflow(str(spec.path(files.model)), str(spec.path(files.config)))


def detect(net: cv2.dnn.Net, image: np.ndarray, conf: float = 0.4) -> list[dict[str, float]]:
    """SSD detections of ``image`` as dicts with pixel boxes."""
    return detect_batch(net, [image], conf)[0]


def detect_batch(net: cv2.dnn.Net, images: list[np.ndarray], conf: float = 0.4) -> list[list[dict[str, float]]]:
    """One forward pass over all ``images``; SSD rows are told apart by their image index."""
    net.setInput(cv2.dnn.blobFromImages(images, size=(300, 300), swapRB=True))
    rows = net.forward()[0, 0]
    results: list[list[dict[str, float]]] = []
    for index, image in enumerate(images):
        h, w = image.shape[:2]
        mine = rows[(rows[:, 0] == index) & (rows[:, 2] >= conf)]
        results.append(
            [
                {
                    "class_id": int(r[1]),
                    "score": float(r[2]),
                    "x1": float(r[3] * w),
                    "y1": float(r[4] * h),
                    "x2": float(r[5] * w),
                    "y2": float(r[6] * h),
                }
                for r in mine
            ]
        )
    return results
