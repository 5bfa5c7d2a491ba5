"""Helpers of the end-to-end tests of the segment, pose and classify decoders: load a model the way
the server does, and work out in source pixels what a mask drawn in network-input pixels covers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from visionserve.core.detections import Detections
from visionserve.models.loading import load_model
from visionserve.models.repository import ModelRepository
from visionserve.pipeline import NetworkModel
from visionserve.types import BoolArray, FloatArray

#: A shape in network-input pixels: ``inside(x, y)`` for arrays of pixel-centre coordinates.
Shape = Callable[[FloatArray, FloatArray], BoolArray]


@dataclass(frozen=True)
class Placement:
    """Where a ``width x height`` source image lies in the network input, worked out by hand:
    input ``x = source x * scale_x + pad_x`` (and the same along y)."""

    width: int
    height: int
    scale_x: float
    scale_y: float
    pad_x: float = 0.0
    pad_y: float = 0.0

    def centres_in_input(self) -> tuple[FloatArray, FloatArray]:
        """``(xs, ys)``, each ``(height, width)``: the input coordinates of every source pixel centre."""
        ys, xs = np.mgrid[0 : self.height, 0 : self.width].astype(np.float32) + 0.5
        return xs * self.scale_x + self.pad_x, ys * self.scale_y + self.pad_y

    def mask(self, shape: Shape) -> BoolArray:
        """The source pixels whose centre falls inside ``shape`` (given in input pixels)."""
        return shape(*self.centres_in_input())

    def point(self, x: float, y: float) -> tuple[float, float]:
        """An input-pixel point in source pixels, clipped to the image."""
        mapped_x = (x - self.pad_x) / self.scale_x
        mapped_y = (y - self.pad_y) / self.scale_y
        return min(max(mapped_x, 0.0), self.width), min(max(mapped_y, 0.0), self.height)

    def box(self, xyxy: tuple[float, float, float, float]) -> tuple[float, ...]:
        """An input-pixel box in source pixels, clipped to the image."""
        return (*self.point(*xyxy[:2]), *self.point(*xyxy[2:]))


def in_box(x1: float, y1: float, x2: float, y2: float) -> Shape:
    return lambda xs, ys: (xs >= x1) & (xs <= x2) & (ys >= y1) & (ys <= y2)


def both(a: Shape, b: Shape) -> Shape:
    return lambda xs, ys: a(xs, ys) & b(xs, ys)


def iou(a: BoolArray, b: BoolArray) -> float:
    """Intersection over union of two boolean masks (0 when both are empty)."""
    union = int((a | b).sum())
    return float((a & b).sum() / union) if union else 0.0


def dense_masks(found: Detections, height: int, width: int) -> list[BoolArray]:
    """Every mask of ``found`` rasterised on the ``width x height`` source image."""
    return [found.mask_patch(i, height, width).dense(height, width) for i in range(len(found))]


def load_network(target: Path, name: str | None = None) -> NetworkModel:
    """The model of a bare file (``name`` None) or of model ``name`` in repository folder ``target``,
    loaded by the real loading code."""
    repository = ModelRepository.scan(None if name is None else target)
    spec = repository.resolve(str(target)) if name is None else repository.get(name)
    model = load_model(spec)
    if not isinstance(model, NetworkModel):
        raise TypeError(f"expected a NetworkModel, got {type(model).__name__}")
    return model


def jpeg(width: int, height: int) -> bytes:
    """A mid-grey ``width x height`` JPEG."""
    ok, data = cv2.imencode(".jpg", np.full((height, width, 3), 90, np.uint8))
    if not ok:
        raise OSError("cannot encode a JPEG")
    return data.tobytes()
