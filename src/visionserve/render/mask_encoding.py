"""Masks as the wire carries them: polygons in source pixels, or COCO run-length encoding.

Both work from a :class:`~visionserve.core.masks.MaskPatch` (one mask rasterised over its box only),
so encoding a mask never allocates the whole image.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import cv2
import numpy as np
from pycocotools import mask as coco_mask

from visionserve.core.masks import MaskPatch

#: One polygon: ``[[x, y], ...]`` in source pixels.
Polygon = list[list[float]]


class MaskFormat(StrEnum):
    """How masks appear in an answer."""

    POLYGON = "polygon"  # a list of polygons per instance (a mask can have several parts)
    RLE = "rle"  # COCO RLE: {"size": [H, W], "counts": str}
    NONE = "none"


def polygons(patch: MaskPatch, decimals: int = 1) -> list[Polygon]:
    """The outer contours of the mask's parts, each a polygon of at least 3 points whose vertices are
    the centres of boundary pixels (continuous coordinates: pixel ``x`` covers ``x..x+1``), largest
    part first; empty when the mask is empty. Not simplified: filling the polygons gives back every
    pixel of the mask (holes aside)."""
    if not patch.mask.any():
        return []
    contours, _ = cv2.findContours(patch.mask.view(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    offset = np.array([patch.x + 0.5, patch.y + 0.5])
    result = []
    for contour in sorted(contours, key=cv2.contourArea, reverse=True):
        points = contour.reshape(-1, 2) + offset
        if len(points) < 3:  # a line or a dot: widen to a polygon with area
            x0, y0 = points.min(axis=0) - 0.5
            x1, y1 = points.max(axis=0) + 0.5
            points = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
        result.append(np.round(points, decimals).tolist())
    return result


def run_lengths(patch: MaskPatch, height: int, width: int) -> list[int]:
    """COCO's uncompressed RLE of the mask on a ``height x width`` image: alternating run lengths of
    0s and 1s in column-major order, starting with 0s. Computed from the patch alone."""
    h, w = patch.mask.shape
    # Column-major, each column framed by a 0 above and below so that runs never cross columns here:
    # transitions then alternate start, end within the flattened frame.
    framed = np.zeros((w, h + 2), np.bool_)
    framed[:, 1:-1] = patch.mask.T
    flat = framed.ravel()
    flips = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    columns, rows = np.divmod(flips, h + 2)
    # Global column-major positions (x * height + y) of each run's first pixel and one past its last.
    positions = (patch.x + columns) * height + patch.y + rows - 1
    starts, ends = positions[0::2], positions[1::2]
    if len(starts) > 1:  # a run at a column's bottom continues at the next column's top
        joined = np.r_[False, ends[:-1] == starts[1:]]
        starts = starts[~joined]
        ends = ends[np.r_[~joined[1:], True]]
    # Alternating runs: background before each run (from the previous run's end), then the run.
    previous_ends = np.r_[0, ends[:-1]]
    counts = np.empty(2 * len(starts), np.int64)
    counts[0::2] = starts - previous_ends
    counts[1::2] = ends - starts
    last = int(ends[-1]) if len(ends) else 0
    result: list[int] = counts.tolist()
    if last < height * width or not result:
        result.append(height * width - last)
    return result


def rle(patch: MaskPatch, height: int, width: int) -> dict[str, Any]:
    """COCO compressed RLE ``{"size": [height, width], "counts": str}`` of the mask, readable by
    ``pycocotools.mask.decode`` (the compression is pycocotools' own)."""
    encoded = coco_mask.frPyObjects(
        {"size": [height, width], "counts": run_lengths(patch, height, width)}, height, width
    )
    return {"size": [height, width], "counts": encoded["counts"].decode("ascii")}
