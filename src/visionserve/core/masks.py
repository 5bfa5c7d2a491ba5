"""Instance masks kept compact: one small bitmap per instance, stretched over a rectangle.

A dense ``N x H x W`` mask of a 12 MP photo costs 12 MB per instance, so masks stay at the model's
resolution, cropped to their instance, until something draws or encodes them. Each bitmap covers a
*region* (``x1, y1, x2, y2`` in the same pixels as the detection boxes): mapping the masks from the
network input to the source image, or to another image size, maps only the regions, exactly as the
boxes are mapped. :meth:`InstanceMasks.patch` rasterises one mask at image resolution, limited to
its box; that is the only place masks meet source pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from visionserve.types import BoolArray, FloatArray, UInt8Array

#: Bitmap values at or above this are inside the mask (bitmaps hold probabilities scaled to 0-255).
INSIDE = 128


@dataclass(frozen=True)
class MaskPatch:
    """One mask rasterised at image resolution: ``mask (h, w) bool`` whose top-left pixel is
    ``(x, y)`` of the image. Pixels outside the patch are outside the mask."""

    x: int
    y: int
    mask: BoolArray

    def dense(self, height: int, width: int) -> BoolArray:
        """The whole ``(height, width)`` image as a boolean mask (costs ``height * width`` bytes)."""
        full = np.zeros((height, width), np.bool_)
        h, w = self.mask.shape
        full[self.y : self.y + h, self.x : self.x + w] = self.mask
        return full


@dataclass(frozen=True, eq=False)
class InstanceMasks:
    """N masks: ``bitmaps[i]`` (``(h_i, w_i) uint8``, 0-255 probability, >= 128 inside) covers
    ``regions[i]`` (``(N, 4) float32`` xyxy; it may reach past the image, so that the bitmap's scale is
    kept). Immutable; raises ``ValueError`` on construction when counts or shapes disagree."""

    bitmaps: tuple[UInt8Array, ...]
    regions: FloatArray

    def __post_init__(self) -> None:
        regions = np.asarray(self.regions, np.float32).reshape(-1, 4)
        if len(regions) != len(self.bitmaps):
            raise ValueError(f"{len(self.bitmaps)} mask bitmaps for {len(regions)} regions")
        bitmaps = []
        for bitmap in self.bitmaps:
            array = np.asarray(bitmap)
            if array.ndim != 2 or min(array.shape) < 1:
                raise ValueError(f"a mask bitmap must be a non-empty 2-D array, got shape {array.shape}")
            if array.dtype == np.bool_:
                array = array.astype(np.uint8) * 255
            bitmaps.append(_readonly(np.ascontiguousarray(array, np.uint8)))
        regions.flags.writeable = False
        object.__setattr__(self, "bitmaps", tuple(bitmaps))
        object.__setattr__(self, "regions", regions)

    @classmethod
    def from_dense(cls, masks: npt.NDArray[Any]) -> InstanceMasks:
        """Masks from an ``(N, H, W)`` array (bool, or probabilities in ``[0, 1]``) over the whole image,
        each kept as the crop of its bounding rectangle (a 1x1 empty bitmap when a mask is empty)."""
        bitmaps: list[UInt8Array] = []
        regions: list[tuple[float, float, float, float]] = []
        for mask in np.asarray(masks):
            scaled = mask.astype(np.uint8) * 255 if mask.dtype == np.bool_ else np.clip(mask * 255, 0, 255)
            inside = np.argwhere(scaled >= INSIDE)
            if len(inside) == 0:
                bitmaps.append(np.zeros((1, 1), np.uint8))
                regions.append((0.0, 0.0, 1.0, 1.0))
                continue
            (y1, x1), (y2, x2) = inside.min(axis=0), inside.max(axis=0) + 1
            bitmaps.append(np.ascontiguousarray(scaled[y1:y2, x1:x2], np.uint8))
            regions.append((float(x1), float(y1), float(x2), float(y2)))
        return cls(tuple(bitmaps), np.array(regions, np.float32).reshape(-1, 4))

    def __len__(self) -> int:
        return len(self.bitmaps)

    def __getitem__(self, index: slice | npt.NDArray[np.bool_] | npt.NDArray[np.integer[Any]]) -> InstanceMasks:
        positions = np.arange(len(self.bitmaps))[index]
        return InstanceMasks(tuple(self.bitmaps[i] for i in positions), self.regions[index])

    def with_regions(self, regions: FloatArray) -> InstanceMasks:
        """The same bitmaps over ``regions`` (``(N, 4)``, e.g. the old ones mapped to other pixels)."""
        return InstanceMasks(self.bitmaps, regions)

    def patch(self, index: int, box: Sequence[float], height: int, width: int) -> MaskPatch:
        """Mask ``index`` rasterised on a ``width x height`` image, limited to ``box`` (xyxy, the
        instance's detection box) and to the image. Bilinear interpolation of the bitmap, then the
        0.5 threshold (as Ultralytics upsamples its prototype masks)."""
        x1, y1, x2, y2 = (float(v) for v in self.regions[index])
        left = int(np.clip(np.floor(max(x1, float(box[0]))), 0, width - 1))
        top = int(np.clip(np.floor(max(y1, float(box[1]))), 0, height - 1))
        right = int(np.clip(np.ceil(min(x2, float(box[2]))), left + 1, width))
        bottom = int(np.clip(np.ceil(min(y2, float(box[3]))), top + 1, height))
        if x2 <= x1 or y2 <= y1:
            return MaskPatch(left, top, np.zeros((bottom - top, right - left), np.bool_))
        warped = _stretch(self.bitmaps[index], (x1, y1, x2, y2), (left, top, right, bottom))
        inside = warped >= INSIDE
        # Pixels whose centre lies outside the box (Ultralytics crops its masks to the box) or outside
        # the region are out: only the patch's border rows and columns can be.
        x_lo, x_hi = max(x1, float(box[0])), min(x2, float(box[2]))
        y_lo, y_hi = max(y1, float(box[1])), min(y2, float(box[3]))
        cols = np.arange(left, right) + 0.5
        rows = np.arange(top, bottom) + 0.5
        inside[:, (cols < x_lo) | (cols > x_hi)] = False
        inside[(rows < y_lo) | (rows > y_hi), :] = False
        return MaskPatch(left, top, inside)


def _stretch(
    bitmap: UInt8Array, region: tuple[float, float, float, float], patch: tuple[int, int, int, int]
) -> UInt8Array:
    """``bitmap`` stretched bilinearly over ``region`` and cut to ``patch`` (``left, top, right,
    bottom`` pixels). A plain resize to the region's whole pixels (its corners rounded: at most half a
    pixel off, far below the bitmap's own cell size) is five times faster than an exact affine warp;
    the warp remains for a region much larger than the patch, where resizing all of it would cost more."""
    x1, y1, x2, y2 = region
    left, top, right, bottom = patch
    rx1, ry1, rx2, ry2 = round(x1), round(y1), max(round(x2), round(x1) + 1), max(round(y2), round(y1) + 1)
    if (rx2 - rx1) * (ry2 - ry1) <= 4 * (right - left) * (bottom - top):
        stretched = cv2.resize(bitmap, (rx2 - rx1, ry2 - ry1), interpolation=cv2.INTER_LINEAR)
        cut = np.zeros((bottom - top, right - left), np.uint8)
        # The overlap of the stretched region with the patch, in the coordinates of each.
        ox1, oy1, ox2, oy2 = max(left, rx1), max(top, ry1), min(right, rx2), min(bottom, ry2)
        if ox1 < ox2 and oy1 < oy2:
            cut[oy1 - top : oy2 - top, ox1 - left : ox2 - left] = stretched[
                oy1 - ry1 : oy2 - ry1, ox1 - rx1 : ox2 - rx1
            ]
        return cut
    bh, bw = bitmap.shape
    sx, sy = (x2 - x1) / bw, (y2 - y1) / bh
    # Pixel centres: bitmap (u + 0.5) * s + region origin = image (x + 0.5), relative to the patch.
    matrix = np.array([[sx, 0, x1 + 0.5 * sx - 0.5 - left], [0, sy, y1 + 0.5 * sy - 0.5 - top]], np.float64)
    size = (right - left, bottom - top)
    warped = cv2.warpAffine(bitmap, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return np.asarray(warped, np.uint8)


def _readonly(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
    array.flags.writeable = False
    return array
