"""Ultralytics YOLO outputs: YOLOv5 ``[B, N, 5 + C]`` rows and YOLOv8/YOLO11 ``[B, 4 + C, N]`` columns.

Both carry boxes as ``(cx, cy, w, h)`` in network-input pixels, before NMS. The class count is
checked against ``params.num_classes`` (when known) so that a YOLOv5 output read as YOLOv8, or the
reverse, fails loudly instead of producing nonsense boxes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from visionserve.decoders.base import Candidates, DecodeParams, cxcywh_to_xyxy, expect_shape, register
from visionserve.errors import DecodeError
from visionserve.models.spec import OutputLayout
from visionserve.types import AnyArray, FloatArray, IntArray


def first_output(outputs: Sequence[AnyArray], layout: str, hint: str) -> AnyArray:
    """The first output (extra outputs, such as raw grids of older exports, are ignored)."""
    if not outputs:
        raise DecodeError(f"{layout} decoder expects an output {hint}, got none")
    return outputs[0]


def check_batch(array: AnyArray, batch_size: int, layout: str) -> None:
    """Raise :class:`DecodeError` when the output holds fewer images than the batch."""
    if array.shape[0] < batch_size:
        raise DecodeError(
            f"{layout} decoder got an output for {array.shape[0]} images (shape {array.shape}), expected {batch_size}"
        )


def check_classes(found: int, params: DecodeParams, layout: str, hint: str, shape: tuple[int, ...]) -> None:
    """Raise :class:`DecodeError` when the output has no class scores or not the expected count
    (``params.num_classes``: the spec's ``decoder.num_classes``, else one more than the largest label id)."""
    if found < 1 or (params.num_classes and found != params.num_classes):
        expected = f"C = {params.num_classes} classes" if params.num_classes else "C >= 1 classes"
        raise DecodeError(
            f"{layout} decoder expects an output {hint} with {expected}, got shape {shape} "
            "(is the decoder layout right? C comes from decoder.num_classes or the labels)"
        )


def per_image(
    boxes: FloatArray, scores: FloatArray, class_ids: IntArray, batch_size: int, conf: float
) -> list[Candidates]:
    """Split ``(B, N, 4)`` cxcywh boxes, ``(B, N)`` scores and class ids into per-image candidates
    whose score reaches ``conf``."""
    result = []
    for index in range(batch_size):
        keep = scores[index] >= conf
        result.append(
            Candidates(
                cxcywh_to_xyxy(boxes[index][keep]),
                scores[index][keep].astype(np.float32),
                class_ids[index][keep].astype(np.int32),
            )
        )
    return result


def best_class(class_scores: FloatArray) -> tuple[FloatArray, IntArray]:
    """``(B, N, C)`` scores to the best score ``(B, N)`` and its class id ``(B, N)``."""
    class_ids = class_scores.argmax(axis=-1)
    scores = np.take_along_axis(class_scores, class_ids[..., None], axis=-1)[..., 0]
    return scores.astype(np.float32), class_ids.astype(np.int32)


@register(OutputLayout.YOLOV8)
def decode_yolov8(outputs: Sequence[AnyArray], batch_size: int, params: DecodeParams) -> list[Candidates]:
    """Decode YOLOv8/YOLO11 ``[B, 4 + C, N]``: per column ``(cx, cy, w, h, C class scores)`` in
    network-input pixels, no objectness. Each column gives one box of its best class."""
    hint = "[B, 4 + C, N] (YOLOv8/YOLO11)"
    table = first_output(outputs, "yolov8", hint)
    expect_shape(table, 3, "yolov8", hint)
    check_batch(table, batch_size, "yolov8")
    check_classes(table.shape[1] - 4, params, "yolov8", hint, table.shape)
    rows = table[:batch_size].astype(np.float32).transpose(0, 2, 1)
    scores, class_ids = best_class(rows[..., 4:])
    return per_image(rows[..., :4], scores, class_ids, batch_size, params.conf)


@register(OutputLayout.YOLOV5)
def decode_yolov5(outputs: Sequence[AnyArray], batch_size: int, params: DecodeParams) -> list[Candidates]:
    """Decode YOLOv5 ``[B, N, 5 + C]``: per row ``(cx, cy, w, h, objectness, C class scores)`` in
    network-input pixels. A row's score is ``objectness * class score`` of its best class."""
    hint = "[B, N, 5 + C] (YOLOv5)"
    table = first_output(outputs, "yolov5", hint)
    expect_shape(table, 3, "yolov5", hint)
    check_batch(table, batch_size, "yolov5")
    check_classes(table.shape[2] - 5, params, "yolov5", hint, table.shape)
    rows = table[:batch_size].astype(np.float32)
    scores, class_ids = best_class(rows[..., 5:] * rows[..., 4:5])
    return per_image(rows[..., :4], scores, class_ids, batch_size, params.conf)
