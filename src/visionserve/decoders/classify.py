"""Classifier outputs: ``[B, C]`` scores (``[B, C, 1, 1]`` too), one per class.

``classify`` applies the spec's ``decoder.activation`` (none, softmax or sigmoid); ``yolov8_cls`` is
the same for Ultralytics YOLOv8/YOLO11-cls exports, whose outputs are already probabilities.
Quantised outputs arrive here already dequantised by the backend.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from visionserve.decoders.base import ClassScores, DecodeParams, register
from visionserve.decoders.yolo_ultralytics import check_batch, check_classes, first_output
from visionserve.errors import DecodeError
from visionserve.models.spec import Activation, OutputLayout
from visionserve.types import AnyArray, FloatArray


def activate(scores: FloatArray, activation: str) -> FloatArray:
    """``scores (B, C)`` through ``activation`` (``none``, ``softmax`` over C, or ``sigmoid``)."""
    if activation == Activation.SOFTMAX:
        shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
        probabilities: FloatArray = (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)
        return probabilities
    if activation == Activation.SIGMOID:
        return (1.0 / (1.0 + np.exp(-scores))).astype(np.float32)
    if activation == Activation.NONE:
        return scores
    raise DecodeError(f"unknown classifier activation {activation!r}")


def _decode(
    outputs: Sequence[AnyArray], batch_size: int, params: DecodeParams, layout: str, activation: str
) -> list[ClassScores]:
    hint = "[B, C] class scores"
    table = first_output(outputs, layout, hint)
    check_batch(table, batch_size, layout)
    scores = table[:batch_size].reshape(batch_size, -1).astype(np.float32)
    check_classes(scores.shape[1], params, layout, hint, table.shape)
    return [ClassScores(row) for row in activate(scores, activation)]


@register(OutputLayout.CLASSIFY)
def decode_classify(outputs: Sequence[AnyArray], batch_size: int, params: DecodeParams) -> list[ClassScores]:
    """Scores per image after ``params.activation``."""
    return _decode(outputs, batch_size, params, "classify", params.activation)


@register(OutputLayout.YOLOV8_CLS)
def decode_yolov8_cls(outputs: Sequence[AnyArray], batch_size: int, params: DecodeParams) -> list[ClassScores]:
    """YOLOv8/YOLO11-cls probabilities per image, as they are."""
    return _decode(outputs, batch_size, params, "yolov8_cls", Activation.NONE)
