"""Tiny models of each task with a ``model.yaml``, shared by the protocol tests (DeepStack, KServe v2,
TF Serving, Roboflow): their answers are constants, whatever the image, so tests state them exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tests.factories import constant_onnx

from visionserve.types import FloatArray

# --- tiny models of each task, with a model.yaml (protocol tests) ---------------------------------
#
# Each writes ``<folder>/net.onnx`` and ``<folder>/model.yaml`` for a 64x64 RGB input (letterbox, so a
# 64x64 image maps 1:1 to network pixels) and returns the folder; the answers are constants, whatever
# the image, so a test can state them exactly.

#: ``yolov8_seg_model``: (x1, y1, x2, y2), class id, score of each instance, best first.
SEG_BOXES = [((8.0, 8.0, 40.0, 40.0), 0, 0.9), ((44.0, 44.0, 60.0, 60.0), 1, 0.6)]
#: Its masks on a 64x64 image as (x1, y1, x2, y2) rectangles: the first is the part of its box that
#: prototype cells 2..5 (x) and 2..7 (y) cover, the second its whole box.
SEG_MASKS = [(8, 8, 24, 32), (44, 44, 60, 60)]
#: ``yolov8_pose_model``: one person (box, score) with keypoints (x, y, score) named in KEYPOINT_NAMES.
POSE_BOX = ((10.0, 10.0, 50.0, 60.0), 0.8)
POSE_KEYPOINTS = [(20.0, 15.0, 0.9), (30.0, 25.0, 0.2), (40.0, 35.0, 0.7)]
KEYPOINT_NAMES = ["nose", "left_hand", "right_hand"]
#: ``classify_model``: labels and the score of each.
CLASS_LABELS = ["cat", "dog", "bird"]
CLASS_SCORES = [0.1, 0.7, 0.2]

_TINY_INPUT = "input: {width: 64, height: 64, resize: letterbox, color: rgb, scale: 0.00392156862745098}\n"


def _tiny_model(folder: Path, name: str, table: FloatArray, yaml_body: str, **extra: FloatArray) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    constant_onnx(folder / "net.onnx", table, input_shape=("batch", 3, 64, 64), extra_outputs=extra or None)
    (folder / "model.yaml").write_text(
        f"name: {name}\nbackend: onnxruntime\nfiles: {{model: net.onnx}}\n{_TINY_INPUT}{yaml_body}", encoding="utf-8"
    )
    return folder


def yolov8_seg_model(folder: Path, name: str = "tiny-seg") -> Path:
    """A YOLOv8-seg model (2 classes, 1 prototype of 16x16 cells of 4 pixels) that finds
    :data:`SEG_BOXES` with the masks :data:`SEG_MASKS`."""
    table = np.zeros((1, 4 + 2 + 1, 8), np.float32)
    for column, (((x1, y1, x2, y2), class_id, score), coefficient) in enumerate(
        zip(SEG_BOXES, (1.0, -1.0), strict=True)
    ):
        table[0, :4, column] = ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1)
        table[0, 4 + class_id, column] = score
        table[0, 6, column] = coefficient
    prototypes = np.full((1, 1, 16, 16), -10.0, np.float32)
    prototypes[0, 0, 2:8, 2:6] = 10.0  # cells of 4x4 pixels: x 8..24, y 8..32
    yaml_body = "task: segment\ndecoder: {layout: yolov8_seg}\nlabels: [person, car]\nthresholds: {conf: 0.25}\n"
    return _tiny_model(folder, name, table, yaml_body, output1=prototypes)


def yolov8_pose_model(folder: Path, name: str = "tiny-pose") -> Path:
    """A YOLOv8-pose model with 3 named keypoints that finds :data:`POSE_BOX` with
    :data:`POSE_KEYPOINTS`."""
    table = np.zeros((1, 4 + 1 + 3 * 3, 8), np.float32)
    (x1, y1, x2, y2), score = POSE_BOX
    table[0, :5, 0] = ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, score)
    table[0, 5:, 0] = np.array(POSE_KEYPOINTS, np.float32).reshape(-1)
    yaml_body = (
        f"task: pose\ndecoder: {{layout: yolov8_pose}}\nlabels: [person]\n"
        f"keypoints: {{names: {KEYPOINT_NAMES}, skeleton: [[0, 1], [0, 2]]}}\nthresholds: {{conf: 0.25}}\n"
    )
    return _tiny_model(folder, name, table, yaml_body)


def classify_model(folder: Path, name: str = "tiny-cls") -> Path:
    """A classifier of :data:`CLASS_LABELS` whose scores are :data:`CLASS_SCORES` (no activation)."""
    table = np.array([CLASS_SCORES], np.float32)
    yaml_body = f"task: classify\ndecoder: {{layout: classify}}\nlabels: {CLASS_LABELS}\n"
    return _tiny_model(folder, name, table, yaml_body)
