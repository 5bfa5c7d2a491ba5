"""Raw YOLOv2 region output (Tiny YOLOv2), ``[B, A * (5 + C), H, W]``, decoded with its anchors."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from visionserve.decoders.base import Candidates, DecodeParams, expect_shape, register
from visionserve.decoders.yolo_ultralytics import check_batch, check_classes, first_output
from visionserve.errors import DecodeError
from visionserve.models.spec import OutputLayout
from visionserve.types import AnyArray, FloatArray

#: Anchors (w, h in grid cells) of Tiny YOLOv2 trained on Pascal VOC (20 classes).
VOC_TINY_YOLOV2_ANCHORS = ((1.08, 1.19), (3.42, 4.41), (6.63, 11.38), (9.42, 5.11), (16.62, 10.52))
#: Anchors of Tiny YOLOv2 trained on COCO (80 classes).
COCO_TINY_YOLOV2_ANCHORS = (
    (0.57273, 0.677385),
    (1.87446, 2.06253),
    (3.33843, 5.47434),
    (7.88282, 3.52778),
    (9.77052, 9.16828),
)
#: ``exp`` of a logit above this would overflow float32; such boxes are garbage either way.
_MAX_LOG_SIZE = 50.0


def sigmoid(x: FloatArray) -> FloatArray:
    """The logistic function, written with ``tanh`` so that it never overflows."""
    result: FloatArray = (0.5 * (1.0 + np.tanh(0.5 * x))).astype(np.float32)
    return result


def softmax(x: FloatArray, axis: int) -> FloatArray:
    """Softmax along ``axis``, shifted by the maximum so that ``exp`` never overflows."""
    shifted = np.exp(x - x.max(axis=axis, keepdims=True))
    result: FloatArray = (shifted / shifted.sum(axis=axis, keepdims=True)).astype(np.float32)
    return result


def _grid_boxes(cells: FloatArray, anchors: FloatArray, params: DecodeParams) -> FloatArray:
    """``(B, A, 4, H, W)`` raw ``tx, ty, tw, th`` to ``(B, A, H, W, 4)`` xyxy in input pixels."""
    height, width = cells.shape[-2:]
    col = np.arange(width, dtype=np.float32)[None, None, None, :]
    row = np.arange(height, dtype=np.float32)[None, None, :, None]
    log_size = np.minimum(cells[:, :, 2:4], _MAX_LOG_SIZE)
    cx = (col + sigmoid(cells[:, :, 0])) / width * params.input_width
    cy = (row + sigmoid(cells[:, :, 1])) / height * params.input_height
    w = anchors[None, :, 0, None, None] * np.exp(log_size[:, :, 0]) / width * params.input_width
    h = anchors[None, :, 1, None, None] * np.exp(log_size[:, :, 1]) / height * params.input_height
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=-1).astype(np.float32)


@register(OutputLayout.YOLO_REGION)
def decode_yolo_region(outputs: Sequence[AnyArray], batch_size: int, params: DecodeParams) -> list[Candidates]:
    """Decode ``[B, A * (5 + C), H, W]``: for anchor ``a`` the channels ``a * (5 + C) + k`` hold
    ``tx, ty, tw, th, objectness`` logits and ``C`` class logits. For the cell at ``(row, col)``:
    ``x = (col + sigmoid(tx)) / W``, ``y = (row + sigmoid(ty)) / H``, ``w = anchor_w * exp(tw) / W``,
    ``h = anchor_h * exp(th) / H`` (fractions of the input, returned in input pixels);
    ``score = sigmoid(objectness) * softmax(class logits)`` of the best class.
    The anchors ``(w, h)`` in grid cells come from ``params.anchors``."""
    hint = "[B, A * (5 + C), H, W] (YOLOv2 region)"
    table = first_output(outputs, "yolo_region", hint)
    expect_shape(table, 4, "yolo_region", hint)
    check_batch(table, batch_size, "yolo_region")
    count = len(params.anchors)
    if count == 0:
        raise DecodeError("yolo_region decoder needs anchors (decoder.anchors in model.yaml)")
    if table.shape[1] % count:
        raise DecodeError(
            f"yolo_region decoder expects an output {hint} with A = {count} anchors, got shape {table.shape}"
        )
    check_classes(table.shape[1] // count - 5, params, "yolo_region", hint, table.shape)
    height, width = table.shape[2:]
    cells = table[:batch_size].astype(np.float32).reshape(batch_size, count, -1, height, width)
    boxes = _grid_boxes(cells, np.asarray(params.anchors, dtype=np.float32), params)
    class_scores = sigmoid(cells[:, :, 4:5]) * softmax(cells[:, :, 5:], axis=2)
    class_ids = class_scores.argmax(axis=2)
    scores = np.take_along_axis(class_scores, class_ids[:, :, None], axis=2)[:, :, 0]
    scores, class_ids = scores.astype(np.float32), class_ids.astype(np.int32)
    keep = scores >= params.conf
    return [Candidates(boxes[i][keep[i]], scores[i][keep[i]], class_ids[i][keep[i]]) for i in range(batch_size)]
