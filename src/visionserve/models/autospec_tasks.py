"""The head of a bare Ultralytics ONNX export of each task, inferred from its ``task`` metadata and
output shapes (see :mod:`visionserve.models.autospec`):

* ``detect``: ``[B, 4 + C, N]`` (YOLOv8/YOLO11) or ``[B, N, 5 + C]`` (YOLOv5), letterboxed;
* ``segment``: ``[B, 4 + C + M, N]`` and prototypes ``[B, M, H / 4, W / 4]`` (``yolov8_seg``), letterboxed;
* ``pose``: ``[B, 4 + 1 + K * 3, N]`` (``yolov8_pose``) with ``K`` from the ``kpt_shape`` metadata
  (``[K, 3]``; keypoints without a visibility, ``[K, 2]``, are refused), letterboxed; the 17 COCO
  keypoint names and skeleton when ``K`` is 17, ``keypoint_<k>`` names otherwise;
* ``classify``: ``[B, C]`` probabilities (``yolov8_cls``: the export ends with a softmax). Ultralytics
  resizes a classifier's input by its short side and crops the centre; here the image is stretched
  to the input size instead, so that the whole image is classified (a centre crop would drop what
  lies near the edges of a wide image). Every class is kept down to a score of 0, top 5.

``C`` comes from the ``names`` metadata when present, else from the shapes. A shape that does not fit
is a :class:`~visionserve.errors.ModelSpecError` naming the file.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from visionserve.core.geometry import ResizeMode
from visionserve.errors import ModelSpecError
from visionserve.models.keypoints import COCO_KEYPOINTS
from visionserve.models.spec import DecoderSpec, KeypointSpec, OutputLayout, Task, Thresholds

Shape = tuple[int | None, ...]
YOLO_THRESHOLDS = Thresholds(conf=0.25, iou=0.45, max_det=300)
_CLASSIFY_THRESHOLDS = Thresholds(conf=0.0, top_k=5)


@dataclass(frozen=True)
class Head:
    """What a bare export's outputs say: its task, decoder, thresholds, keypoints and how its input
    is resized."""

    task: Task
    decoder: DecoderSpec
    thresholds: Thresholds = YOLO_THRESHOLDS
    keypoints: KeypointSpec | None = None
    resize: ResizeMode = ResizeMode.LETTERBOX


def ultralytics_head(
    task: str, outputs: list[Shape], classes: int | None, metadata: dict[str, str], source: Path
) -> Head:
    """The :class:`Head` of an Ultralytics export of ``task`` with output shapes ``outputs`` and
    ``classes`` classes (None when it has no ``names`` metadata)."""
    if task == Task.DETECT:
        layout, count = yolo_layout(_single(outputs, 3, "detection", source), classes, source)
        return Head(Task.DETECT, DecoderSpec(layout=layout, num_classes=count))
    if task == Task.SEGMENT:
        return _segment(outputs, classes, source)
    if task == Task.POSE:
        return _pose(_single(outputs, 3, "pose", source), classes, metadata.get("kpt_shape"), source)
    if task == Task.CLASSIFY:
        return _classify(outputs, classes, source)
    raise ModelSpecError(
        f"{source}: Ultralytics task {task!r} is not supported (detect, segment, pose and classify are)"
    )


def yolo_layout(shape: Shape, classes: int | None, source: Path) -> tuple[OutputLayout, int]:
    """``(layout, C)`` of a ``[B, 4 + C, N]`` or ``[B, N, 5 + C]`` output; ``classes`` from names."""
    _, rows, cols = shape
    if classes is not None:
        if rows == 4 + classes and (cols is None or cols > rows):
            return OutputLayout.YOLOV8, classes
        if cols == 5 + classes:
            return OutputLayout.YOLOV5, classes
        raise ModelSpecError(
            f"{source}: output shape {shape} fits neither [B, 4 + C, N] (YOLOv8) nor [B, N, 5 + C] (YOLOv5) "
            f"with the C = {classes} classes of its 'names' metadata"
        )
    if rows is not None and cols is not None:
        if cols > rows > 4:
            return OutputLayout.YOLOV8, rows - 4
        if rows > cols > 5:
            return OutputLayout.YOLOV5, cols - 5
    raise ModelSpecError(f"{source}: cannot tell the decoder of output shape {shape}; write a model.yaml")


def _single(outputs: list[Shape], ndim: int, what: str, source: Path) -> Shape:
    """The first output, which must have ``ndim`` dimensions."""
    if not outputs or len(outputs[0]) != ndim:
        shapes = outputs[0] if outputs else "none"
        raise ModelSpecError(f"{source}: output shape {shapes} is not a supported {what} layout; write a model.yaml")
    return outputs[0]


def _segment(outputs: list[Shape], classes: int | None, source: Path) -> Head:
    tables = [s for s in outputs if len(s) == 3]
    prototypes = [s for s in outputs if len(s) == 4]
    hint = "[B, 4 + C + M, N] and prototypes [B, M, H/4, W/4]"
    if len(tables) != 1 or len(prototypes) != 1 or tables[0][1] is None or prototypes[0][1] is None:
        raise ModelSpecError(f"{source}: a segment export needs two outputs {hint}, got shapes {outputs}")
    rows, masks = tables[0][1], prototypes[0][1]
    count = rows - 4 - masks
    if count < 1 or (classes is not None and count != classes):
        expected = f"the C = {classes} classes of its 'names' metadata" if classes is not None else "C >= 1"
        raise ModelSpecError(f"{source}: segment outputs {outputs} do not fit {hint} with M = {masks} and {expected}")
    return Head(Task.SEGMENT, DecoderSpec(layout=OutputLayout.YOLOV8_SEG, num_classes=count))


def _keypoint_count(raw: str | None, rows: int | None, source: Path) -> int:
    """``K`` from ``kpt_shape`` metadata (``[K, 3]``), else from the output's ``4 + 1 + K * 3`` rows."""
    if raw is None:
        if rows is None or rows < 8 or (rows - 5) % 3:
            raise ModelSpecError(f"{source}: no 'kpt_shape' metadata and output rows {rows} are not 5 + K * 3")
        return (rows - 5) // 3
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = None
    if not (isinstance(value, list | tuple) and len(value) == 2 and all(isinstance(v, int) for v in value)):
        raise ModelSpecError(f"{source}: metadata 'kpt_shape' must be [K, 3], got {raw[:40]!r}")
    count, dims = value
    if dims != 3 or count < 1:
        raise ModelSpecError(
            f"{source}: metadata 'kpt_shape' is {raw}; only keypoints with a visibility score ([K, 3]) are supported"
        )
    return int(count)


def _pose(shape: Shape, classes: int | None, kpt_shape: str | None, source: Path) -> Head:
    rows = shape[1]
    count = _keypoint_count(kpt_shape, rows, source)
    if classes not in (None, 1) or rows != 5 + count * 3:
        raise ModelSpecError(
            f"{source}: pose output shape {shape} does not fit [B, 4 + 1 + K * 3, N] with one class and "
            f"K = {count} keypoints (classes: {classes or 1}); only one-class pose models are supported"
        )
    names = COCO_KEYPOINTS if count == len(COCO_KEYPOINTS) else tuple(f"keypoint_{k}" for k in range(count))
    keypoints = None if names is COCO_KEYPOINTS else KeypointSpec(names=names)
    return Head(Task.POSE, DecoderSpec(layout=OutputLayout.YOLOV8_POSE), keypoints=keypoints)


def _classify(outputs: list[Shape], classes: int | None, source: Path) -> Head:
    shape = outputs[0] if outputs else ()
    found = shape[1] if len(shape) == 2 else None
    if found is None or found < 1 or (classes is not None and found != classes):
        expected = f"C = {classes} (its 'names' metadata)" if classes is not None else "C >= 1"
        raise ModelSpecError(f"{source}: classify output shape {shape} is not [B, C] with {expected}")
    decoder = DecoderSpec(layout=OutputLayout.YOLOV8_CLS, num_classes=found)
    return Head(Task.CLASSIFY, decoder, thresholds=_CLASSIFY_THRESHOLDS, resize=ResizeMode.STRETCH)
