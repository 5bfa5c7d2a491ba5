"""Ultralytics instance segmentation (YOLOv8-seg, YOLO11-seg): ``[B, 4 + C + M, N]`` columns
``(cx, cy, w, h, C class scores, M mask coefficients)`` and prototypes ``[B, M, H / 4, W / 4]``.

An instance's mask is ``sigmoid(coefficients @ prototypes)`` cropped to its box and thresholded at
0.5. Only the instances that survive NMS get a mask, and only over the prototype cells their box
covers: the bitmap stays at prototype resolution until something draws or encodes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from visionserve.core.masks import InstanceMasks
from visionserve.decoders.base import Candidates, DecodeParams, cxcywh_to_xyxy, expect_shape, register
from visionserve.decoders.yolo_ultralytics import best_class, check_batch, check_classes
from visionserve.errors import DecodeError
from visionserve.models.spec import OutputLayout
from visionserve.types import AnyArray, FloatArray, IntArray, UInt8Array

_HINT = "[B, 4 + C + M, N] with prototypes [B, M, H/4, W/4] (YOLOv8/YOLO11-seg)"


@dataclass(frozen=True)
class PrototypeMasks:
    """The mask source of one image: ``prototypes (M, Hp, Wp)``, per-candidate ``coefficients (N, M)``
    and ``xyxy (N, 4)`` boxes in network-input pixels, one prototype cell being ``stride`` input pixels."""

    prototypes: FloatArray
    coefficients: FloatArray
    xyxy: FloatArray
    stride: tuple[float, float]

    def select(self, rows: IntArray) -> InstanceMasks:
        _, height, width = self.prototypes.shape
        sx, sy = self.stride
        bitmaps: list[UInt8Array] = []
        regions = []
        for row in rows:
            x1, y1, x2, y2 = self.xyxy[row]
            left = int(np.clip(np.floor(x1 / sx), 0, width - 1))
            top = int(np.clip(np.floor(y1 / sy), 0, height - 1))
            right = int(np.clip(np.ceil(x2 / sx), left + 1, width))
            bottom = int(np.clip(np.ceil(y2 / sy), top + 1, height))
            cells = self.prototypes[:, top:bottom, left:right]
            logits = np.tensordot(self.coefficients[row], cells, axes=1)
            probability = 1.0 / (1.0 + np.exp(-logits))
            bitmaps.append(np.round(probability * 255).astype(np.uint8))
            regions.append((left * sx, top * sy, right * sx, bottom * sy))
        return InstanceMasks(tuple(bitmaps), np.array(regions, np.float32).reshape(-1, 4))


def _split(outputs: Sequence[AnyArray]) -> tuple[AnyArray, AnyArray]:
    """The detection table (3-D) and the prototypes (4-D), in whichever order the model gives them."""
    tables = [o for o in outputs if o.ndim == 3]
    prototypes = [o for o in outputs if o.ndim == 4]
    if len(tables) != 1 or len(prototypes) != 1 or min(prototypes[0].shape[2:]) < 1:
        shapes = [tuple(o.shape) for o in outputs]
        raise DecodeError(f"yolov8_seg decoder expects two outputs {_HINT}, got shapes {shapes}")
    return tables[0], prototypes[0]


@register(OutputLayout.YOLOV8_SEG)
def decode_yolov8_seg(outputs: Sequence[AnyArray], batch_size: int, params: DecodeParams) -> list[Candidates]:
    """Decode a YOLOv8/YOLO11-seg batch: boxes of the best class per column, with a
    :class:`PrototypeMasks` source per image."""
    table, prototypes = _split(outputs)
    expect_shape(table, 3, "yolov8_seg", _HINT)
    check_batch(table, batch_size, "yolov8_seg")
    check_batch(prototypes, batch_size, "yolov8_seg")
    coefficients = prototypes.shape[1]
    check_classes(table.shape[1] - 4 - coefficients, params, "yolov8_seg", _HINT, table.shape)
    rows = table[:batch_size].astype(np.float32).transpose(0, 2, 1)
    scores, class_ids = best_class(rows[..., 4 : rows.shape[2] - coefficients])
    stride = (params.input_width / prototypes.shape[3], params.input_height / prototypes.shape[2])
    result = []
    for index in range(batch_size):
        keep = scores[index] >= params.conf
        xyxy = cxcywh_to_xyxy(rows[index, keep, :4])
        source = PrototypeMasks(prototypes[index].astype(np.float32), rows[index, keep, -coefficients:], xyxy, stride)
        result.append(Candidates(xyxy, scores[index][keep], class_ids[index][keep], masks=source))
    return result
