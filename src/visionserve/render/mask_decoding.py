"""Masks read back from the wire: the inverse of :mod:`visionserve.render.mask_encoding`.

Each decoded mask becomes a :class:`~visionserve.core.masks.MaskPatch` over its bounding rectangle
only, and :func:`instance_masks` keeps those patches as compact :class:`InstanceMasks` at image
resolution (one bitmap pixel per image pixel), so a client never holds ``N x H x W`` masks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np
from pycocotools import mask as coco_mask

from visionserve.core.masks import InstanceMasks, MaskPatch
from visionserve.types import IntArray


def patch_from_polygons(polygons: Sequence[Sequence[Sequence[float]]]) -> MaskPatch:
    """The mask whose parts are ``polygons`` (``[[x, y], ...]`` each, vertices at the centres of
    boundary pixels, as :func:`~visionserve.render.mask_encoding.polygons` writes them): every pixel
    on or inside a polygon is in. Holes are not represented (the encoding keeps outer contours).
    Raises ``ValueError`` for a polygon that is not a list of ``[x, y]`` pairs."""
    shapes = [_pixel_polygon(polygon) for polygon in polygons]
    if not shapes:
        return MaskPatch(0, 0, np.zeros((1, 1), np.bool_))
    stacked = np.concatenate(shapes)
    left, top = (int(v) for v in stacked.min(axis=0))
    right, bottom = (int(v) + 1 for v in stacked.max(axis=0))
    canvas = np.zeros((bottom - top, right - left), np.uint8)
    cv2.fillPoly(canvas, [(s - (left, top)).astype(np.int32).reshape(-1, 1, 2) for s in shapes], 1)
    return MaskPatch(left, top, canvas.astype(np.bool_))


def _pixel_polygon(polygon: Sequence[Sequence[float]]) -> IntArray:
    """``polygon``'s vertices as pixel indices ``(P, 2)``. Vertices at pixel centres map to their
    pixel; a polygon with other vertices (the encoder widens a line or a dot into the rectangle of
    its pixels' edges) becomes the rectangle of the pixels whose centres it covers."""
    points = np.asarray(polygon, np.float64)
    if points.ndim != 2 or points.shape[1] != 2 or len(points) == 0 or not np.isfinite(points).all():
        raise ValueError(f"a polygon must be a list of [x, y] points, got shape {points.shape}")
    shifted = points - 0.5
    if np.allclose(shifted, np.round(shifted), atol=1e-3):
        return np.round(shifted).astype(np.int32)
    (x0, y0), (x1, y1) = np.ceil(shifted.min(axis=0)), np.floor(shifted.max(axis=0))
    x1, y1 = max(x0, x1), max(y0, y1)
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.int32)


def patch_from_rle(encoded: Mapping[str, Any]) -> MaskPatch:
    """The mask of a COCO RLE ``{"size": [H, W], "counts": str | list[int]}``, cropped to its
    bounding rectangle. Raises ``ValueError`` when ``encoded`` is not a readable RLE."""
    try:
        height, width = (int(v) for v in encoded["size"])
        counts = encoded["counts"]
        rle = {"size": [height, width], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
        if isinstance(counts, list):
            rle = coco_mask.frPyObjects(rle, height, width)
        dense = coco_mask.decode(rle).astype(np.bool_)
    except (KeyError, TypeError, ValueError, UnicodeError) as exc:
        raise ValueError(f"not a COCO RLE mask: {exc}") from exc
    inside = np.argwhere(dense)
    if len(inside) == 0:
        return MaskPatch(0, 0, np.zeros((1, 1), np.bool_))
    (y1, x1), (y2, x2) = inside.min(axis=0), inside.max(axis=0) + 1
    return MaskPatch(int(x1), int(y1), np.ascontiguousarray(dense[y1:y2, x1:x2]))


def instance_masks(patches: Sequence[MaskPatch]) -> InstanceMasks:
    """Compact masks at image resolution: patch ``i``'s pixels over its own rectangle."""
    regions = [(p.x, p.y, p.x + p.mask.shape[1], p.y + p.mask.shape[0]) for p in patches]
    bitmaps = tuple(p.mask.astype(np.uint8) * 255 for p in patches)
    return InstanceMasks(bitmaps, np.array(regions, np.float32).reshape(-1, 4))
