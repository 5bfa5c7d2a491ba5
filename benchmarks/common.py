"""Helpers shared by the benchmark scripts: test images and summary statistics."""

from __future__ import annotations

import statistics

import cv2
import numpy as np
from skimage import data

SIZES = {"640x480": (640, 480), "1920x1080": (1920, 1080)}


def jpeg(width: int, height: int, quality: int = 90) -> bytes:
    """The astronaut photo resized to ``width x height``, as JPEG bytes (a real photo, not noise)."""
    image = cv2.resize(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR), (width, height))
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return bytes(buf.tobytes())


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000.0


def percentile_ms(samples: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples) * 1000.0, q)) if samples else float("nan")
