"""Builders of tiny models whose outputs are known exactly, for end-to-end tests of the real loading,
preprocessing and decoding code.

* :func:`constant_onnx` writes an ONNX graph whose outputs are hand-made tensors, whatever the image:
  ``output = table + 0 * sum(images)`` (the sum gives the output its batch dimension and keeps the
  input in the graph), with optional Ultralytics-style metadata.
* :func:`darknet_detector` writes a Darknet ``.cfg`` + ``.weights`` pair that OpenCV's
  ``readNetFromDarknet`` loads: a 1x1 convolution, an 8x8 max pool (stride 8, no padding: Darknet's
  default padding would shift the windows) and one ``[yolo]`` layer with one anchor on a 4x4 grid
  of a 32x32 input. The objectness logit is ``obj_weight * red + obj_bias`` (``red`` the
  input's first channel, i.e. red for RGB input scaled to [0, 1]); every other logit is a constant
  bias. So only grid cells that contain red pixels hold an object, at a hand-computable box.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from visionserve.types import BGRImage, FloatArray


def ultralytics_metadata(
    names: Sequence[str], imgsz: tuple[int, int], task: str = "detect", batch: int = 1
) -> dict[str, str]:
    """Metadata as an Ultralytics ONNX export writes it (``imgsz`` is ``[height, width]``)."""
    return {
        "description": "Ultralytics YOLO model (test double)",
        "author": "Ultralytics",
        "stride": "32",
        "task": task,
        "batch": str(batch),
        "imgsz": str(list(imgsz)),
        "names": str(dict(enumerate(names))),
    }


def constant_onnx(
    path: Path,
    table: FloatArray,
    *,
    input_shape: Sequence[int | str] = (1, 3, 64, 64),
    metadata: Mapping[str, str] | None = None,
    input_name: str = "images",
    output_name: str = "output0",
    extra_outputs: Mapping[str, FloatArray] | None = None,
) -> Path:
    """Write an ONNX model whose output is ``table`` (leading dimension 1) broadcast over the batch,
    followed by ``extra_outputs`` (name -> tensor with a leading dimension of 1), broadcast the same way
    (e.g. the prototypes of a segmentation model).

    ``input_shape`` is ``[B, 3, H, W]``; a string dimension (e.g. ``"batch"``) is dynamic.
    """
    outputs = {output_name: table, **(extra_outputs or {})}
    batch = input_shape[0]
    nodes = [helper.make_node("ReduceSum", [input_name, "axes"], ["total"], keepdims=1)]
    initializers = [
        numpy_helper.from_array(np.array([1, 2, 3], np.int64), "axes"),
        numpy_helper.from_array(np.zeros((), np.float32), "zero"),
    ]
    infos = []
    for index, (name, value) in enumerate(outputs.items()):
        if value.shape[0] != 1:
            raise ValueError(f"output {name} must have a leading dimension of 1, got shape {value.shape}")
        ones = [1] * (value.ndim - 1)
        nodes += [
            helper.make_node("Reshape", ["total", f"batch_shape{index}"], [f"per_image{index}"]),
            helper.make_node("Mul", [f"per_image{index}", "zero"], [f"zeros{index}"]),
            helper.make_node("Add", [f"zeros{index}", f"table{index}"], [name]),
        ]
        initializers += [
            numpy_helper.from_array(np.array([-1, *ones], np.int64), f"batch_shape{index}"),
            numpy_helper.from_array(value.astype(np.float32), f"table{index}"),
        ]
        infos.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [batch, *value.shape[1:]]))
    graph = helper.make_graph(
        nodes,
        "constant",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, list(input_shape))],
        infos,
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="visionserve-tests")
    model.ir_version = 8
    if metadata:
        helper.set_model_props(model, dict(metadata))
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


def yolov8_table(rows: Sequence[Sequence[float]], num_classes: int, columns: int = 16) -> FloatArray:
    """A ``[1, 4 + C, columns]`` YOLOv8 output: ``rows[i]`` = ``(cx, cy, w, h, class_id, score)``
    fills column ``i``; other columns and class scores are 0."""
    table = np.zeros((1, 4 + num_classes, columns), np.float32)
    for index, (cx, cy, w, h, class_id, score) in enumerate(rows):
        table[0, :4, index] = (cx, cy, w, h)
        table[0, 4 + int(class_id), index] = score
    return table


def yolov5_table(rows: Sequence[Sequence[float]], num_classes: int, count: int = 16) -> FloatArray:
    """A ``[1, count, 5 + C]`` YOLOv5 output: ``rows[i]`` = ``(cx, cy, w, h, objectness, class_id,
    class_score)`` fills row ``i``; other rows are 0."""
    table = np.zeros((1, count, 5 + num_classes), np.float32)
    for index, (cx, cy, w, h, obj, class_id, score) in enumerate(rows):
        table[0, index, :5] = (cx, cy, w, h, obj)
        table[0, index, 5 + int(class_id)] = score
    return table


def solid_image(width: int, height: int, bgr: tuple[int, int, int] = (40, 40, 40)) -> BGRImage:
    """A ``height x width`` image of one colour."""
    return np.full((height, width, 3), bgr, np.uint8)


@dataclass(frozen=True)
class DarknetDetector:
    """The files and parameters of a model written by :func:`darknet_detector`."""

    cfg: Path
    weights: Path
    size: int  # network input width = height, in pixels
    grid: int  # cells per side
    anchor: tuple[float, float]  # (w, h) in network-input pixels


def darknet_detector(
    folder: Path,
    stem: str,
    *,
    class_logits: Sequence[float],
    box_logits: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0),
    obj_weight: float = 12.0,
    obj_bias: float = -10.0,
    anchor: tuple[int, int] = (16, 8),
    size: int = 32,
) -> DarknetDetector:
    """Write ``<stem>.cfg`` and ``<stem>.weights`` (Darknet format 0.2: major, minor, revision as
    int32, ``seen`` as uint64, then per convolution its biases and its weights as float32)."""
    classes = len(class_logits)
    filters = 5 + classes
    cfg = folder / f"{stem}.cfg"
    cfg.write_text(
        "[net]\nbatch=1\nsubdivisions=1\n"
        f"width={size}\nheight={size}\nchannels=3\n\n"
        f"[convolutional]\nsize=1\nstride=1\npad=0\nfilters={filters}\nactivation=linear\n\n"
        "[maxpool]\nsize=8\nstride=8\npadding=0\n\n"
        f"[yolo]\nmask=0\nanchors={anchor[0]},{anchor[1]}\nclasses={classes}\nnum=1\n",
        encoding="utf-8",
    )
    biases = np.array([*box_logits, obj_bias, *class_logits], np.float32)
    weights = np.zeros((filters, 3), np.float32)  # (output channel, input channel) of the 1x1 kernel
    weights[4, 0] = obj_weight
    path = folder / f"{stem}.weights"
    path.write_bytes(struct.pack("<iiiQ", 0, 2, 0, 0) + biases.tobytes() + weights.tobytes())
    return DarknetDetector(cfg, path, size, size // 8, (float(anchor[0]), float(anchor[1])))


def red_block(width: int, height: int, x0: int, y0: int, x1: int, y1: int) -> BGRImage:
    """A black ``height x width`` image with a pure red rectangle ``[x0, x1) x [y0, y1)``."""
    image = np.zeros((height, width, 3), np.uint8)
    image[y0:y1, x0:x1] = (0, 0, 255)
    return image


def write_image(path: Path, image: BGRImage) -> Path:
    """Write ``image`` losslessly (PNG) to ``path``."""
    if not cv2.imwrite(str(path), image):
        raise OSError(f"cannot write {path}")
    return path


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
