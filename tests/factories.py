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
* :func:`quantized_tflite` writes a LiteRT model of two quantise/dequantise ops, whose outputs are
  hand-computable from the quantisation parameters.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import flatbuffers
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
    (e.g. the prototypes of a segmentation model). A model of fixed batch 1 may have outputs of any
    leading dimension (Mask R-CNN's ``[N, C, h, w]`` masks): broadcasting over one image keeps them.

    ``input_shape`` is ``[B, 3, H, W]``; a string dimension (e.g. ``"batch"``) is dynamic.
    """
    outputs = {output_name: table, **(extra_outputs or {})}
    batch = input_shape[0]
    single = batch == 1
    nodes = [helper.make_node("ReduceSum", [input_name, "axes"], ["total"], keepdims=1)]
    initializers = [
        numpy_helper.from_array(np.array([1, 2, 3], np.int64), "axes"),
        numpy_helper.from_array(np.zeros((), np.float32), "zero"),
    ]
    infos = []
    for index, (name, value) in enumerate(outputs.items()):
        if value.shape[0] != 1 and not single:
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
        leading = value.shape[0] if single else batch
        infos.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [leading, *value.shape[1:]]))
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


@dataclass(frozen=True)
class QuantizedTflite:
    """A model written by :func:`quantized_tflite` and the quantisation of its tensors."""

    path: Path
    pixels_scale: float
    pixels_zero: int  # zero point of the ``pixels`` input in its own type (uint8 or int8)
    codes_scale: float
    codes_zero: int


def quantized_tflite(path: Path, pixels_type: str = "uint8") -> QuantizedTflite:
    """Write a LiteRT flatbuffer (no TensorFlow: the schema's object API that ``ai-edge-litert``
    ships) with two ops on ``[B, 4]`` tensors, B resizable:

    * ``real = DEQUANTIZE(pixels)``: ``pixels`` is a quantised ``pixels_type`` input (scale 0.5,
      zero point 10 for uint8, -118 for int8: the same real values for pixel ``p`` fed as ``p`` or
      ``p - 128``), ``real`` a float32 output;
    * ``codes = QUANTIZE(values)``: ``values`` is a float32 input, ``codes`` a uint8 output with
      scale 0.25 and zero point 3.
    """
    from ai_edge_litert import schema_py_generated as tfl

    def tensor(name: str, kind: int, buffer: int, scale: float | None = None, zero: int = 0) -> Any:
        item = tfl.TensorT()
        item.name, item.type, item.buffer, item.shape, item.shapeSignature = name, kind, buffer, [1, 4], [-1, 4]
        if scale is not None:
            item.quantization = tfl.QuantizationParametersT()
            item.quantization.scale, item.quantization.zeroPoint = [scale], [zero]
        return item

    def operator(code: int, inputs: list[int], outputs: list[int]) -> Any:
        item = tfl.OperatorT()
        item.opcodeIndex, item.inputs, item.outputs = code, inputs, outputs
        return item

    def opcode(builtin: int) -> Any:
        item = tfl.OperatorCodeT()
        item.builtinCode, item.deprecatedBuiltinCode, item.version = builtin, min(builtin, 127), 1
        return item

    int8 = pixels_type == "int8"
    pixels_zero = -118 if int8 else 10
    graph = tfl.SubGraphT()
    graph.name = "main"
    graph.tensors = [
        tensor("pixels", tfl.TensorType.INT8 if int8 else tfl.TensorType.UINT8, 1, 0.5, pixels_zero),
        tensor("values", tfl.TensorType.FLOAT32, 2),
        tensor("real", tfl.TensorType.FLOAT32, 3),
        tensor("codes", tfl.TensorType.UINT8, 4, 0.25, 3),
    ]
    graph.inputs, graph.outputs = [0, 1], [2, 3]
    graph.operators = [operator(0, [0], [2]), operator(1, [1], [3])]
    model = tfl.ModelT()
    model.version, model.description, model.subgraphs = 3, "visionserve test model", [graph]
    model.operatorCodes = [opcode(tfl.BuiltinOperator.DEQUANTIZE), opcode(tfl.BuiltinOperator.QUANTIZE)]
    model.buffers = [tfl.BufferT() for _ in range(5)]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(bytes(builder.Output()))
    return QuantizedTflite(path, 0.5, pixels_zero, 0.25, 3)


# --- Tiny models of the other tasks: segment, pose, classify ---------------------------------------
# Each writes a bare model file (Ultralytics-style metadata where the real exports have it) whose
# outputs are the hand-made tensors given, so that a test can work out masks, keypoints and classes
# by hand. The tests that use them (tests/unit/test_decoders_*.py) say which scenario they build.


def yolov8_seg_table(
    rows: Sequence[tuple[Any, ...]], num_classes: int, num_masks: int, columns: int = 16
) -> FloatArray:
    """A ``[1, 4 + C + M, columns]`` YOLOv8-seg output: ``rows[i]`` = ``(cx, cy, w, h, class_id, score,
    coefficients)`` (``coefficients`` a length-``M`` sequence) fills column ``i``; the rest is 0."""
    table = np.zeros((1, 4 + num_classes + num_masks, columns), np.float32)
    for index, (cx, cy, w, h, class_id, score, coefficients) in enumerate(rows):
        table[0, :4, index] = (cx, cy, w, h)
        table[0, 4 + int(class_id), index] = score
        table[0, 4 + num_classes :, index] = coefficients
    return table


def yolov8_seg_model(
    path: Path, table: FloatArray, prototypes: FloatArray, names: Sequence[str], imgsz: tuple[int, int] = (640, 640)
) -> Path:
    """A bare YOLOv8/YOLO11-seg export: ``output0`` = ``table`` ``[1, 4 + C + M, N]``, ``output1`` =
    ``prototypes`` ``[1, M, H / 4, W / 4]``, input ``[1, 3, H, W]`` (``imgsz`` is ``(H, W)``), metadata
    ``task: segment``."""
    return constant_onnx(
        path,
        table,
        input_shape=(1, 3, *imgsz),
        metadata=ultralytics_metadata(names, imgsz, task="segment"),
        extra_outputs={"output1": prototypes},
    )


def yolov8_pose_table(rows: Sequence[tuple[Any, ...]], num_keypoints: int, columns: int = 16) -> FloatArray:
    """A ``[1, 4 + 1 + K * 3, columns]`` YOLOv8-pose output: ``rows[i]`` = ``(cx, cy, w, h, score,
    keypoints)`` (``keypoints`` ``(K, 3)``: x, y, visibility) fills column ``i``; the rest is 0."""
    table = np.zeros((1, 5 + num_keypoints * 3, columns), np.float32)
    for index, (cx, cy, w, h, score, keypoints) in enumerate(rows):
        table[0, :5, index] = (cx, cy, w, h, score)
        table[0, 5:, index] = np.asarray(keypoints, np.float32).reshape(-1)
    return table


def yolov8_pose_model(path: Path, table: FloatArray, imgsz: tuple[int, int] = (640, 640)) -> Path:
    """A bare YOLOv8/YOLO11-pose export of one class (person): ``output0`` = ``table``, input
    ``[1, 3, H, W]``, metadata ``task: pose`` and ``kpt_shape: [K, 3]`` (K from the table)."""
    metadata = ultralytics_metadata(["person"], imgsz, task="pose")
    metadata["kpt_shape"] = str([(table.shape[1] - 5) // 3, 3])
    return constant_onnx(path, table, input_shape=(1, 3, *imgsz), metadata=metadata)


def yolov8_cls_model(path: Path, probabilities: Sequence[float], names: Sequence[str], size: int = 224) -> Path:
    """A bare YOLOv8/YOLO11-cls export: ``output0`` = ``[1, C]`` ``probabilities``, input
    ``[1, 3, size, size]``, metadata ``task: classify``."""
    table = np.asarray(probabilities, np.float32)[None]
    metadata = ultralytics_metadata(names, (size, size), task="classify")
    return constant_onnx(path, table, input_shape=(1, 3, size, size), metadata=metadata)


def mask_rcnn_model(path: Path, rows: FloatArray, masks: FloatArray, size: tuple[int, int] = (256, 256)) -> Path:
    """A TF-OD Mask R-CNN as the ``mask_rcnn`` layout reads it: ``detection_out_final`` = ``rows``
    ``[1, 1, N, 7]`` (image id, class id, score, x1, y1, x2, y2 normalised), ``detection_masks`` =
    ``masks`` ``[N, C, h, w]``; input ``[1, 3, height, width]`` (``size`` is ``(width, height)``)."""
    return constant_onnx(
        path,
        rows,
        input_shape=(1, 3, size[1], size[0]),
        input_name="image_tensor",
        output_name="detection_out_final",
        extra_outputs={"detection_masks": masks},
    )


def movenet_model(path: Path, keypoints: FloatArray, size: int = 192) -> Path:
    """A MoveNet single-pose model: output ``[1, 1, K, 3]`` = ``keypoints`` rows ``(y, x, score)``
    normalised to the input, input ``[1, size, size, 3]`` (NHWC, as MoveNet's)."""
    return constant_onnx(path, keypoints, input_shape=(1, size, size, 3), input_name="input", output_name="output_0")


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


def seg_model_folder(repository: Path, name: str = "tiny-seg") -> Path:
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


def pose_model_folder(repository: Path, name: str = "tiny-pose") -> Path:
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


def classifier_model_folder(repository: Path, name: str = "tiny-cls", top_k: int = 3) -> Path:
    """A classifier whose probabilities are :data:`CLASS_SCORES` (layout ``classify``, no activation),
    listing ``top_k`` classes by default; returns its folder."""
    folder = repository / name
    folder.mkdir(parents=True, exist_ok=True)
    scores = np.array([list(CLASS_SCORES.values())], np.float32)
    constant_onnx(folder / "net.onnx", scores, input_shape=("batch", 3, 64, 64))
    spec = _tiny_spec(name, "classify", "classify", list(CLASS_SCORES), thresholds={"conf": 0.0, "top_k": top_k})
    return _write_spec(folder, spec)
