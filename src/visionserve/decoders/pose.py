"""Pose layouts: Ultralytics YOLOv8/YOLO11-pose ``[B, 4 + 1 + K * 3, N]`` and MoveNet single-pose
``[1, 1, K, 3]``. Keypoints come out as ``(x, y, score)`` in network-input pixels, class 0 (person)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from visionserve.decoders.base import Candidates, DecodeParams, cxcywh_to_xyxy, expect_shape, register
from visionserve.decoders.yolo_ultralytics import check_batch, first_output
from visionserve.errors import DecodeError
from visionserve.models.spec import OutputLayout
from visionserve.types import AnyArray

#: MoveNet keypoints scoring below this do not shape the person's box.
MOVENET_BOX_SCORE = 0.2


@register(OutputLayout.YOLOV8_POSE)
def decode_yolov8_pose(outputs: Sequence[AnyArray], batch_size: int, params: DecodeParams) -> list[Candidates]:
    """Per column ``(cx, cy, w, h, score, K x (x, y, visibility))`` in network-input pixels (the
    exported head has already applied the sigmoid to visibilities); ``K`` from the spec or the shape."""
    hint = "[B, 4 + 1 + K * 3, N] (YOLOv8/YOLO11-pose)"
    table = first_output(outputs, "yolov8_pose", hint)
    expect_shape(table, 3, "yolov8_pose", hint)
    check_batch(table, batch_size, "yolov8_pose")
    values = table.shape[1] - 5
    count = params.num_keypoints or values // 3
    if values < 3 or values != count * 3:
        raise DecodeError(f"yolov8_pose decoder expects an output {hint} with K = {count}, got shape {table.shape}")
    rows = table[:batch_size].astype(np.float32).transpose(0, 2, 1)
    result = []
    for index in range(batch_size):
        mine = rows[index][rows[index, :, 4] >= params.conf]
        result.append(
            Candidates(
                cxcywh_to_xyxy(mine[:, :4]),
                mine[:, 4].copy(),
                np.zeros(len(mine), np.int32),
                keypoints=mine[:, 5:].reshape(len(mine), count, 3),
            )
        )
    return result


@register(OutputLayout.MOVENET)
def decode_movenet(outputs: Sequence[AnyArray], batch_size: int, params: DecodeParams) -> list[Candidates]:
    """MoveNet single-pose ``[B, 1, K, 3]`` rows ``(y, x, score)`` normalised to the input: one person
    per image, scored by the mean keypoint score, boxed by the keypoints scoring at least
    :data:`MOVENET_BOX_SCORE` (all of them when none does); none below ``params.conf``."""
    hint = "[B, 1, K, 3] (MoveNet single-pose)"
    table = first_output(outputs, "movenet", hint)
    expect_shape(table, 4, "movenet", hint)
    check_batch(table, batch_size, "movenet")
    if table.shape[1] != 1 or table.shape[2] < 1 or table.shape[3] != 3:
        raise DecodeError(f"movenet decoder expects an output {hint}, got shape {table.shape}")
    result = []
    for index in range(batch_size):
        yxs = table[index, 0].astype(np.float32)
        points = np.stack([yxs[:, 1] * params.input_width, yxs[:, 0] * params.input_height, yxs[:, 2]], axis=1).astype(
            np.float32
        )
        score = float(points[:, 2].mean())
        if score < params.conf:
            result.append(Candidates.empty())
            continue
        shaping = points[points[:, 2] >= MOVENET_BOX_SCORE]
        shaping = shaping if len(shaping) else points
        box = np.array([[*shaping[:, :2].min(axis=0), *shaping[:, :2].max(axis=0)]], np.float32)
        result.append(Candidates(box, np.array([score], np.float32), np.zeros(1, np.int32), keypoints=points[None]))
    return result
