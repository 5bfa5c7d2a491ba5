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
import yaml
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


# -- tiny models of each task, as model-repository folders (used by the native API tests) -------------
#
# Each writes ``<repository>/<name>/{net.onnx, model.yaml}``: constant outputs (whatever the image) on a
# 64x64 stretched input, so on a 128x128 image every coordinate below doubles. Outputs are hand-made
# so that tests can state the exact answer.

#: The segment model's two instances, in 64x64 input pixels: box, class, score, mask coefficient.
#: Its one prototype is +10 over cells 3..6 (input pixels 12..28) and -10 elsewhere, so instance 0
#: (coefficient +1) has the square 12..28 as mask and instance 1 (coefficient -1) its whole box.
SEG_INSTANCES = (((8.0, 8.0, 40.0, 40.0), 0, 0.9, 1.0), ((36.0, 36.0, 60.0, 60.0), 1, 0.6, -1.0))
SEG_LABELS = ("dent", "scratch")
#: The pose model's one person: box in input pixels, score, and 3 named keypoints (x, y, score).
POSE_BOX, POSE_SCORE = (12.0, 8.0, 52.0, 56.0), 0.9
POSE_KEYPOINTS = {"head": (32.0, 12.0, 0.9), "left_hand": (16.0, 32.0, 0.8), "right_hand": (48.0, 32.0, 0.7)}
#: The classifier's scores per label.
CLASS_SCORES = {"cat": 0.1, "dog": 0.6, "bird": 0.05, "fish": 0.25}


def _write_spec(folder: Path, spec: Mapping[str, object]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.yaml").write_text(yaml.safe_dump(dict(spec), sort_keys=False), encoding="utf-8")
    return folder


def _tiny_spec(name: str, task: str, layout: str, labels: Sequence[str], **extra: object) -> dict[str, object]:
    return {
        "name": name,
        "task": task,
        "backend": "onnxruntime",
        "files": {"model": "net.onnx"},
        "input": {"width": 64, "height": 64, "resize": "stretch", "scale": 1 / 255},
        "decoder": {"layout": layout},
        "labels": list(labels),
        "instances": 1,
        **extra,
    }


def yolov8_seg_model(repository: Path, name: str = "tiny-seg") -> Path:
    """A YOLOv8-seg model of :data:`SEG_INSTANCES` (labels :data:`SEG_LABELS`); returns its folder."""
    folder = repository / name
    folder.mkdir(parents=True, exist_ok=True)
    table = np.zeros((1, 4 + len(SEG_LABELS) + 1, 8), np.float32)
    for column, ((x1, y1, x2, y2), class_id, score, coefficient) in enumerate(SEG_INSTANCES):
        table[0, :4, column] = ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1)
        table[0, 4 + class_id, column] = score
        table[0, -1, column] = coefficient
    prototypes = np.full((1, 1, 16, 16), -10.0, np.float32)
    prototypes[0, 0, 3:7, 3:7] = 10.0
    constant_onnx(folder / "net.onnx", table, input_shape=("batch", 3, 64, 64), extra_outputs={"output1": prototypes})
    return _write_spec(folder, _tiny_spec(name, "segment", "yolov8_seg", SEG_LABELS, thresholds={"conf": 0.25}))


def yolov8_pose_model(repository: Path, name: str = "tiny-pose") -> Path:
    """A YOLOv8-pose model of one person (:data:`POSE_BOX`, :data:`POSE_KEYPOINTS`, named in its
    ``model.yaml`` with a skeleton from the head to each hand); returns its folder."""
    folder = repository / name
    folder.mkdir(parents=True, exist_ok=True)
    table = np.zeros((1, 5 + 3 * len(POSE_KEYPOINTS), 8), np.float32)
    x1, y1, x2, y2 = POSE_BOX
    table[0, :5, 0] = ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, POSE_SCORE)
    table[0, 5:, 0] = np.array(list(POSE_KEYPOINTS.values()), np.float32).reshape(-1)
    constant_onnx(folder / "net.onnx", table, input_shape=("batch", 3, 64, 64))
    keypoints = {"names": list(POSE_KEYPOINTS), "skeleton": [[0, 1], [0, 2]]}
    return _write_spec(folder, _tiny_spec(name, "pose", "yolov8_pose", ["person"], keypoints=keypoints))


def classifier_model(repository: Path, name: str = "tiny-cls", top_k: int = 3) -> Path:
    """A classifier whose probabilities are :data:`CLASS_SCORES` (layout ``classify``, no activation),
    listing ``top_k`` classes by default; returns its folder."""
    folder = repository / name
    folder.mkdir(parents=True, exist_ok=True)
    scores = np.array([list(CLASS_SCORES.values())], np.float32)
    constant_onnx(folder / "net.onnx", scores, input_shape=("batch", 3, 64, 64))
    spec = _tiny_spec(name, "classify", "classify", list(CLASS_SCORES), thresholds={"conf": 0.0, "top_k": top_k})
    return _write_spec(folder, spec)
