"""How an image is fitted into a network input, and how boxes map back to the source image."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import cv2
import numpy as np

from visionserve.types import BGRImage, FloatArray


class ResizeMode(StrEnum):
    """How a source image is fitted into the network's input size."""

    #: Scale to the exact input size, ignoring the aspect ratio (SSD, Darknet).
    STRETCH = "stretch"
    #: Keep the aspect ratio, scale to fit, pad the rest evenly (Ultralytics YOLO).
    LETTERBOX = "letterbox"


@dataclass(frozen=True)
class Fit:
    """The affine map from source pixels to network-input pixels: ``x' = x * scale_x + pad_x``.

    ``width``/``height`` are the source image's size, ``resized_width``/``resized_height`` the size
    it is scaled to before padding.
    """

    width: int
    height: int
    resized_width: int
    resized_height: int
    pad_x: int
    pad_y: int

    @property
    def scale_x(self) -> float:
        return self.resized_width / self.width

    @property
    def scale_y(self) -> float:
        return self.resized_height / self.height

    def boxes_to_source(self, xyxy: FloatArray, clip: bool = True) -> FloatArray:
        """Map ``(N, 4)`` xyxy boxes in network-input pixels to source pixels, clipped to the image
        unless ``clip`` is False (mask regions keep their extent, so that their bitmaps keep their scale)."""
        offset = np.array([self.pad_x, self.pad_y, self.pad_x, self.pad_y], dtype=np.float32)
        scale = np.array([self.scale_x, self.scale_y, self.scale_x, self.scale_y], dtype=np.float32)
        boxes: FloatArray = ((xyxy.astype(np.float32) - offset) / scale).astype(np.float32)
        if not clip:
            return boxes
        limits = np.array([self.width, self.height, self.width, self.height], dtype=np.float32)
        clipped: FloatArray = np.clip(boxes, 0.0, limits).astype(np.float32)
        return clipped

    def points_to_source(self, points: FloatArray) -> FloatArray:
        """Map ``(..., 3)`` keypoints ``(x, y, score)`` in network-input pixels to source pixels
        (clipped to the image; scores unchanged)."""
        result = points.astype(np.float32, copy=True)
        result[..., 0] = np.clip((result[..., 0] - self.pad_x) / self.scale_x, 0.0, self.width)
        result[..., 1] = np.clip((result[..., 1] - self.pad_y) / self.scale_y, 0.0, self.height)
        return result


def plan_fit(width: int, height: int, input_width: int, input_height: int, mode: ResizeMode) -> Fit:
    """The :class:`Fit` of a ``width x height`` image into an ``input_width x input_height`` input.

    Letterbox follows Ultralytics: one scale ``r = min(iw / w, ih / h)``, the resized size rounded,
    the padding split evenly with the odd pixel on the bottom/right.
    """
    if mode is ResizeMode.STRETCH:
        return Fit(width, height, input_width, input_height, 0, 0)
    ratio = min(input_width / width, input_height / height)
    resized_w = max(1, round(width * ratio))
    resized_h = max(1, round(height * ratio))
    pad_x = round((input_width - resized_w) / 2 - 0.1)
    pad_y = round((input_height - resized_h) / 2 - 0.1)
    return Fit(width, height, resized_w, resized_h, pad_x, pad_y)


def apply_fit(image: BGRImage, fit: Fit, out: BGRImage) -> None:
    """Resize ``image`` per ``fit`` into the pre-filled ``out`` canvas ``(input_h, input_w, 3)``.

    The caller fills ``out`` with the padding value first; only the resized region is written.
    """
    region = out[fit.pad_y : fit.pad_y + fit.resized_height, fit.pad_x : fit.pad_x + fit.resized_width]
    if image.shape[0] == fit.resized_height and image.shape[1] == fit.resized_width:
        region[...] = image
    else:
        cv2.resize(image, (fit.resized_width, fit.resized_height), dst=region, interpolation=cv2.INTER_LINEAR)
