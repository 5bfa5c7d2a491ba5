"""Mask R-CNN in the TF Object Detection API layout, as OpenCV DNN runs it: ``detection_out_final``
``[1, 1, N, 7]`` rows ``(image_id, class_id, score, x1, y1, x2, y2)`` normalised to ``[0, 1]``, and
``detection_masks`` ``[N, C, h, w]`` (15x15 in the TF-OD models): row ``i``'s mask is channel
``class_id`` of ``masks[i]``, a probability map stretched over its box.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from visionserve.core.masks import InstanceMasks
from visionserve.decoders.base import Candidates, DecodeParams, register
from visionserve.errors import DecodeError
from visionserve.models.spec import OutputLayout
from visionserve.types import AnyArray, FloatArray, IntArray, UInt8Array

_HINT = "detection_out_final [1, 1, N, 7] and detection_masks [N, C, h, w] (TF-OD Mask R-CNN)"


@dataclass(frozen=True)
class BoxMasks:
    """One probability map per candidate (``maps (N, h, w)``), each covering its box ``xyxy (N, 4)``."""

    maps: FloatArray
    xyxy: FloatArray

    def select(self, rows: IntArray) -> InstanceMasks:
        bitmaps: tuple[UInt8Array, ...] = tuple(
            np.round(np.clip(self.maps[row], 0.0, 1.0) * 255).astype(np.uint8) for row in rows
        )
        return InstanceMasks(bitmaps, self.xyxy[rows])


def _split(outputs: Sequence[AnyArray]) -> tuple[AnyArray, AnyArray]:
    """The detection rows and the masks, told apart by shape (rows end in 7 columns)."""
    rows = [o for o in outputs if o.ndim == 4 and o.shape[0] == 1 and o.shape[1] == 1 and o.shape[3] == 7]
    masks = [o for o in outputs if o.ndim == 4 and not any(o is r for r in rows)]
    if len(rows) != 1 or len(masks) != 1 or min(masks[0].shape[2:]) < 1:
        shapes = [tuple(o.shape) for o in outputs]
        raise DecodeError(f"mask_rcnn decoder expects two outputs {_HINT}, got shapes {shapes}")
    return rows[0], masks[0]


@register(OutputLayout.MASK_RCNN)
def decode_mask_rcnn(outputs: Sequence[AnyArray], batch_size: int, params: DecodeParams) -> list[Candidates]:
    """Per image: the rows whose score reaches ``params.conf``, boxes in network-input pixels, each
    with the mask channel of its class (channel 0 when the masks are class-agnostic)."""
    table, masks = _split(outputs)
    rows = table.reshape(-1, 7).astype(np.float32)
    if masks.shape[0] != len(rows):
        raise DecodeError(f"mask_rcnn decoder got {masks.shape[0]} masks for {len(rows)} detections ({_HINT})")
    class_ids = rows[:, 1].astype(np.int32)
    channels = np.zeros_like(class_ids) if masks.shape[1] == 1 else class_ids
    if (channels < 0).any() or (channels >= masks.shape[1]).any():
        raise DecodeError(f"mask_rcnn decoder got class ids outside the {masks.shape[1]} mask channels")
    maps = masks[np.arange(len(rows)), channels].astype(np.float32)
    size = np.array([params.input_width, params.input_height] * 2, dtype=np.float32)
    result = []
    for index in range(batch_size):
        mine = np.flatnonzero((rows[:, 0] == index) & (rows[:, 2] >= params.conf))
        xyxy = rows[mine, 3:7] * size
        result.append(Candidates(xyxy, rows[mine, 2].copy(), class_ids[mine], masks=BoxMasks(maps[mine], xyxy)))
    return result
