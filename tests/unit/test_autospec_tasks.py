"""Specs inferred for bare Ultralytics segment, pose and classify exports (no model.yaml)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from tests.factories import (
    constant_onnx,
    ultralytics_metadata,
    yolov8_cls_model,
    yolov8_pose_model,
    yolov8_pose_table,
    yolov8_seg_model,
    yolov8_seg_table,
    yolov8_table,
)

from visionserve.core.geometry import ResizeMode
from visionserve.errors import ModelSpecError
from visionserve.models.autospec import spec_for_file
from visionserve.models.keypoints import COCO_KEYPOINTS, COCO_SKELETON
from visionserve.models.loading import spec_labels
from visionserve.models.spec import ColorOrder, OutputLayout, Task


def test_segment_export(tmp_path: Path) -> None:
    path = yolov8_seg_model(
        tmp_path / "yolo11n-seg.onnx",
        yolov8_seg_table([], 3, 32),
        np.zeros((1, 32, 80, 120), np.float32),
        ["person", "bicycle", "car"],
        imgsz=(320, 480),
    )
    spec = spec_for_file(path)
    _, input_spec, decoder = spec.network
    assert (spec.task, decoder.layout, decoder.num_classes) == (Task.SEGMENT, OutputLayout.YOLOV8_SEG, 3)
    assert (input_spec.width, input_spec.height, input_spec.resize) == (480, 320, ResizeMode.LETTERBOX)
    assert (input_spec.color, input_spec.scale) == (ColorOrder.RGB, 1 / 255)
    assert (spec.thresholds.conf, spec.thresholds.max_det) == (0.25, 300)
    assert spec_labels(spec).as_dict() == {0: "person", 1: "bicycle", 2: "car"}


def test_segment_export_outputs_in_either_order(tmp_path: Path) -> None:
    # Some exporters list the prototypes first; the class count still comes out of the table.
    path = constant_onnx(
        tmp_path / "m.onnx",
        np.zeros((1, 32, 16, 16), np.float32),
        input_shape=(1, 3, 64, 64),
        metadata={"task": "segment", "imgsz": "[64, 64]"},
        extra_outputs={"output0": yolov8_seg_table([], 2, 32)},
        output_name="protos",
    )
    spec = spec_for_file(path)
    assert (spec.network[2].layout, spec.network[2].num_classes) == (OutputLayout.YOLOV8_SEG, 2)
    assert spec_labels(spec).as_dict() == {0: "class_0", 1: "class_1"}


def test_pose_export_with_coco_keypoints(tmp_path: Path) -> None:
    path = yolov8_pose_model(tmp_path / "yolov8n-pose.onnx", yolov8_pose_table([], 17))
    spec = spec_for_file(path)
    _, input_spec, decoder = spec.network
    assert (spec.task, decoder.layout, input_spec.resize) == (Task.POSE, OutputLayout.YOLOV8_POSE, ResizeMode.LETTERBOX)
    labels = spec_labels(spec)
    assert (labels.as_dict(), labels.keypoints, labels.skeleton) == ({0: "person"}, COCO_KEYPOINTS, COCO_SKELETON)


def test_pose_export_with_its_own_keypoint_count(tmp_path: Path) -> None:
    # kpt_shape [5, 3]: not COCO's 17, so the keypoints are numbered and no skeleton is drawn.
    path = yolov8_pose_model(tmp_path / "hand.onnx", yolov8_pose_table([], 5), imgsz=(256, 256))
    spec = spec_for_file(path)
    labels = spec_labels(spec)
    assert spec.keypoints is not None
    assert labels.keypoints == tuple(f"keypoint_{k}" for k in range(5))
    assert labels.skeleton == ()


def test_classify_export(tmp_path: Path) -> None:
    path = yolov8_cls_model(tmp_path / "yolov8n-cls.onnx", [0.1, 0.2, 0.7], ["cat", "dog", "fox"])
    spec = spec_for_file(path)
    _, input_spec, decoder = spec.network
    assert (spec.task, decoder.layout, decoder.num_classes) == (Task.CLASSIFY, OutputLayout.YOLOV8_CLS, 3)
    # Stretched, not Ultralytics' short-side resize and centre crop (see models/autospec_tasks.py).
    assert (input_spec.width, input_spec.height, input_spec.resize) == (224, 224, ResizeMode.STRETCH)
    assert (input_spec.color, input_spec.scale) == (ColorOrder.RGB, 1 / 255)
    assert (spec.thresholds.conf, spec.thresholds.top_k) == (0.0, 5)
    assert spec_labels(spec).as_dict() == {0: "cat", 1: "dog", 2: "fox"}


def _meta(task: str, names: int = 2, **extra: str) -> dict[str, str]:
    return {**ultralytics_metadata([f"n{i}" for i in range(names)], (64, 64), task=task), **extra}


SEG_TABLE = yolov8_seg_table([], 2, 32)
PROTOS = {"output1": np.zeros((1, 32, 16, 16), np.float32)}
POSE_TABLE = yolov8_pose_table([], 17)
TASK_ERRORS = {
    "segment without prototypes": (SEG_TABLE, {}, _meta("segment"), "needs two outputs"),
    "segment, names disagree": (SEG_TABLE, PROTOS, _meta("segment", 3), "C = 3 classes"),
    "segment, no room for classes": (yolov8_table([], 32), PROTOS, {"task": "segment"}, "C >= 1"),
    "pose, kpt_shape without visibility": (POSE_TABLE, {}, _meta("pose", 1, kpt_shape="[17, 2]"), "[K, 3]"),
    "pose, kpt_shape not a list": (POSE_TABLE, {}, _meta("pose", 1, kpt_shape="17"), "'kpt_shape' must be"),
    "pose, kpt_shape disagrees": (POSE_TABLE, {}, _meta("pose", 1, kpt_shape="[16, 3]"), "K = 16"),
    "pose of two classes": (POSE_TABLE, {}, _meta("pose", 2, kpt_shape="[17, 3]"), "one-class"),
    "pose, rows not 5 + K * 3": (yolov8_table([], 3), {}, {"task": "pose"}, "not 5 + K * 3"),
    "classify, names disagree": (np.zeros((1, 4), np.float32), {}, _meta("classify", 3), "C = 3"),
    "classify, 3-D output": (yolov8_table([], 2), {}, _meta("classify"), "not [B, C]"),
}


@pytest.mark.parametrize(("table", "extra", "metadata", "message"), TASK_ERRORS.values(), ids=TASK_ERRORS.keys())
def test_task_exports_that_do_not_fit(
    tmp_path: Path, table: np.ndarray, extra: dict[str, np.ndarray], metadata: dict[str, str], message: str
) -> None:
    path = constant_onnx(tmp_path / "m.onnx", table, input_shape=(1, 3, 64, 64), metadata=metadata, extra_outputs=extra)
    with pytest.raises(ModelSpecError, match=re.escape(str(path))) as caught:
        spec_for_file(path)
    assert message in str(caught.value)
