"""The output tensors of a model over KServe v2, for every task, and Triton's classification extension.

Box models (detect, segment, pose), each image's rows sorted by score and padded to the largest count
N in the batch:

- ``boxes FP32 [B, N, 4]`` (x1, y1, x2, y2 in source pixels), ``scores FP32 [B, N]``,
  ``class_ids INT32 [B, N]`` (-1 in padding), ``labels BYTES [B, N]`` (empty in padding),
  ``num_detections INT32 [B]``;
- segment models add ``masks BYTES [B, N]``, each a COCO RLE as JSON text
  (``{"size": [H, W], "counts": "..."}``, readable by ``pycocotools.mask.decode``), and
  ``polygons BYTES [B, N]``, each the JSON list of the mask's polygons ``[[[x, y], ...], ...]`` in
  source pixels (empty text in padding); they are encoded only when asked for (or no output is named);
- pose models add ``keypoints FP32 [B, N, K, 3]`` (x, y, score in source pixels; 0 in padding).

Classify models: ``scores FP32 [B, K]``, ``class_ids INT32 [B, K]`` and ``labels BYTES [B, K]``, the
top K classes best first (padded as above). Asking for ``"parameters": {"classification": k}`` on
``scores`` returns, as Triton does, ``scores`` as ``BYTES [B, k]`` of ``"<score>:<class id>:<label>"``
strings, best first (the score printed with six decimals, as C++'s ``std::to_string``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from visionserve.api.wire.kserve_tensors import Datatype
from visionserve.core.classifications import Classifications
from visionserve.core.prediction import Prediction, boxes_of, classes_of
from visionserve.errors import InvalidParameterError
from visionserve.models.labels import Labels
from visionserve.models.spec import Task
from visionserve.render.mask_encoding import MaskFormat
from visionserve.render.rows import BoxRow, ClassRow, box_rows, class_rows

#: The request parameter of the classification extension, on an output.
CLASSIFICATION = "classification"


class OutputName(StrEnum):
    """Every output name, in the order outputs are returned when the request names none."""

    BOXES = "boxes"
    SCORES = "scores"
    CLASS_IDS = "class_ids"
    LABELS = "labels"
    NUM_DETECTIONS = "num_detections"
    MASKS = "masks"
    POLYGONS = "polygons"
    KEYPOINTS = "keypoints"


_BOX_OUTPUTS: dict[OutputName, tuple[Datatype, list[int]]] = {
    OutputName.BOXES: (Datatype.FP32, [-1, -1, 4]),
    OutputName.SCORES: (Datatype.FP32, [-1, -1]),
    OutputName.CLASS_IDS: (Datatype.INT32, [-1, -1]),
    OutputName.LABELS: (Datatype.BYTES, [-1, -1]),
    OutputName.NUM_DETECTIONS: (Datatype.INT32, [-1]),
}
#: The outputs of each task: name -> (datatype, shape with -1 for variable dimensions).
TASK_OUTPUTS: dict[Task, dict[OutputName, tuple[Datatype, list[int]]]] = {
    Task.DETECT: _BOX_OUTPUTS,
    Task.SEGMENT: {
        **_BOX_OUTPUTS,
        OutputName.MASKS: (Datatype.BYTES, [-1, -1]),
        OutputName.POLYGONS: (Datatype.BYTES, [-1, -1]),
    },
    Task.POSE: {**_BOX_OUTPUTS, OutputName.KEYPOINTS: (Datatype.FP32, [-1, -1, -1, 3])},
    Task.CLASSIFY: {
        OutputName.SCORES: (Datatype.FP32, [-1, -1]),
        OutputName.CLASS_IDS: (Datatype.INT32, [-1, -1]),
        OutputName.LABELS: (Datatype.BYTES, [-1, -1]),
    },
}


@dataclass(frozen=True)
class WantedOutput:
    """One output to return: as binary data or JSON, and, for the classification extension, how
    many classes (None: the tensor itself)."""

    name: OutputName
    binary: bool = False
    classification: int | None = None

    @property
    def datatype(self) -> Datatype:
        return Datatype.BYTES if self.classification is not None else _datatype(self.name)


def _datatype(name: OutputName) -> Datatype:
    return next(types[name][0] for types in TASK_OUTPUTS.values() if name in types)


@dataclass(frozen=True)
class ImagePrediction:
    """The prediction of one image of ``width x height`` pixels (the prediction is in its pixels)."""

    prediction: Prediction
    width: int
    height: int


def _count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidParameterError(f"output '{name}': classification must be a positive integer, got {value!r}")
    return value


def wanted_output(name: str, parameters: dict[str, Any], task: Task, model: str, binary_default: bool) -> WantedOutput:
    """The output ``name`` with its request ``parameters``; raises :class:`InvalidParameterError`
    for an output the model does not have, or the classification extension on anything but a
    classify model's ``scores``."""
    outputs = TASK_OUTPUTS[task]
    if name not in {item.value for item in outputs}:
        raise InvalidParameterError(f"unexpected inference output '{name}' for model '{model}'")
    output = OutputName(name)
    binary = parameters.get("binary_data", binary_default) is True
    if CLASSIFICATION not in parameters:
        return WantedOutput(output, binary)
    if task is not Task.CLASSIFY or output is not OutputName.SCORES:
        raise InvalidParameterError(
            f"output '{name}': the classification extension applies to the 'scores' output of classify models"
        )
    return WantedOutput(output, binary, _count(parameters[CLASSIFICATION], name))


def all_outputs(task: Task, binary: bool) -> list[WantedOutput]:
    """Every output of a ``task`` model, in order (what a request that names none gets)."""
    return [WantedOutput(name, binary) for name in TASK_OUTPUTS[task]]


def _pad_rows(found: Sequence[ImagePrediction], labels: Labels, mask: MaskFormat) -> list[list[BoxRow]]:
    return [box_rows(boxes_of(item.prediction, ""), labels, (item.width, item.height), mask) for item in found]


def _box_tensor(name: OutputName, rows: list[list[BoxRow]]) -> npt.NDArray[Any]:
    batch, width = len(rows), max((len(r) for r in rows), default=0)
    if name is OutputName.NUM_DETECTIONS:
        return np.array([len(r) for r in rows], np.int32)
    if name is OutputName.BOXES:
        array: npt.NDArray[Any] = np.zeros((batch, width, 4), np.float32)
        values: Any = [[row.box for row in image] for image in rows]
    elif name is OutputName.KEYPOINTS:
        points = max((len(row.keypoints or ()) for image in rows for row in image), default=0)
        array = np.zeros((batch, width, points, 3), np.float32)
        values = [[[(p.x, p.y, p.score) for p in row.keypoints or ()] for row in image] for image in rows]
    elif name is OutputName.SCORES:
        array, values = np.zeros((batch, width), np.float32), [[row.score for row in image] for image in rows]
    elif name is OutputName.CLASS_IDS:
        array, values = np.full((batch, width), -1, np.int32), [[row.class_id for row in image] for image in rows]
    else:
        array = np.full((batch, width), b"", dtype=np.object_)
        values = [[_text(name, row) for row in image] for image in rows]
    for i, image_values in enumerate(values):
        for j, value in enumerate(image_values):
            array[i, j] = value
    return array


def _text(name: OutputName, row: BoxRow) -> bytes:
    if name is OutputName.LABELS:
        return row.label.encode("utf-8")
    if name is OutputName.MASKS:
        return json.dumps(row.rle, separators=(",", ":")).encode("utf-8") if row.rle is not None else b""
    return json.dumps(row.polygons, separators=(",", ":")).encode("utf-8") if row.polygons is not None else b""


def _mask_format(name: OutputName) -> MaskFormat:
    return {OutputName.MASKS: MaskFormat.RLE, OutputName.POLYGONS: MaskFormat.POLYGON}.get(name, MaskFormat.NONE)


def box_tensors(
    wanted: Sequence[WantedOutput], found: Sequence[ImagePrediction], labels: Labels
) -> dict[OutputName, npt.NDArray[Any]]:
    """The tensors of ``wanted`` for box predictions; masks are encoded only for the mask outputs."""
    rows_by_format: dict[MaskFormat, list[list[BoxRow]]] = {}
    tensors = {}
    for output in wanted:
        mask = _mask_format(output.name)
        if mask not in rows_by_format:
            rows_by_format[mask] = _pad_rows(found, labels, mask)
        tensors[output.name] = _box_tensor(output.name, rows_by_format[mask])
    return tensors


def _classification(rows: list[list[ClassRow]], count: int) -> npt.NDArray[Any]:
    width = min(count, max((len(r) for r in rows), default=0))
    array = np.full((len(rows), width), b"", dtype=np.object_)
    for i, image in enumerate(rows):
        for j, row in enumerate(image[:width]):
            array[i, j] = f"{row.score:f}:{row.class_id}:{row.label}".encode()
    return array


def _class_column(name: OutputName, row: ClassRow) -> Any:
    if name is OutputName.SCORES:
        return row.score
    if name is OutputName.CLASS_IDS:
        return row.class_id
    return row.label.encode("utf-8")


def class_tensors(
    wanted: Sequence[WantedOutput], found: Sequence[ImagePrediction], labels: Labels
) -> dict[OutputName, npt.NDArray[Any]]:
    """The tensors of ``wanted`` for classifications (the classification extension included)."""
    rows = [class_rows(classes_of(item.prediction, ""), labels) for item in found]
    width = max((len(r) for r in rows), default=0)
    empty: dict[OutputName, Any] = {OutputName.SCORES: 0.0, OutputName.CLASS_IDS: -1}
    dtypes: dict[OutputName, Any] = {OutputName.SCORES: np.float32, OutputName.CLASS_IDS: np.int32}
    tensors: dict[OutputName, npt.NDArray[Any]] = {}
    for output in wanted:
        if output.classification is not None:
            tensors[output.name] = _classification(rows, output.classification)
            continue
        array = np.full((len(rows), width), empty.get(output.name, b""), dtype=dtypes.get(output.name, np.object_))
        for i, image in enumerate(rows):
            for j, row in enumerate(image):
                array[i, j] = _class_column(output.name, row)
        tensors[output.name] = array
    return tensors


def output_tensors(
    wanted: Sequence[WantedOutput], found: Sequence[ImagePrediction], labels: Labels
) -> dict[OutputName, npt.NDArray[Any]]:
    """The tensors of ``wanted`` for a batch of one model's predictions (all boxes or all classes)."""
    if found and isinstance(found[0].prediction, Classifications):
        return class_tensors(wanted, found, labels)
    return box_tensors(wanted, found, labels)
