"""The TensorFlow Serving REST API, with a detection model shaped like a TF Object Detection API export.

A model has one signature, ``serving_default``, whose input ``inputs`` takes encoded images
(``DT_STRING [-1]``, sent as ``{"b64": "..."}``) or, like an ``image_tensor`` export, RGB pixels as
nested lists ``[H][W][3]`` of integers 0-255. Requests use the row format (``{"instances": [...]}``,
answered with ``{"predictions": [{output: value}, ...]}``) or the columnar format
(``{"inputs": ...}``, answered with ``{"outputs": {output: batched value}}``).

Outputs are the TF Object Detection API's: ``detection_boxes`` ``[N, 4]`` as normalized
``[ymin, xmin, ymax, xmax]``, ``detection_scores`` ``[N]``, ``detection_classes`` ``[N]`` (class ids
as floats), ``num_detections`` (a float), plus ``detection_class_names`` ``[N]``. N is the largest
count in the batch; shorter results are padded with zeros (and empty names), as an export pads to
its maximum. A pose model adds the keypoint outputs of a TF Object Detection API keypoint export:
``detection_keypoints`` ``[N, K, 2]`` as normalized ``[y, x]`` and ``detection_keypoint_scores``
``[N, K]``, K being the model's keypoint count. A classify model answers like a TF classifier's
signature: ``classes`` (label names), ``scores`` and ``class_ids``, best first. Errors are
``{"error": "..."}``. Pure functions and pydantic schemas only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
from pydantic import BaseModel

from visionserve.api.wire.common import ImageInput, as_bgr_image, decode_base64
from visionserve.api.wire.jsonbody import parse_json
from visionserve.core.classifications import Classifications
from visionserve.core.detections import Detections
from visionserve.errors import ImageTooLargeError, InvalidParameterError
from visionserve.models.labels import Labels
from visionserve.models.spec import ColorOrder, Task
from visionserve.render.mask_encoding import MaskFormat
from visionserve.render.rows import BoxRow, box_rows, class_rows

#: Pixels that one request may send as nested lists (1280x720 fits); larger images go as b64.
MAX_LIST_PIXELS = 1_000_000
#: What one nested-list pixel costs while it is parsed, in decoded pixels (3 bytes each): about 96
#: bytes of Python lists and pointers, then 24 bytes of int64 array (measured with tracemalloc).
LIST_PIXEL_COST = 40

SIGNATURE_NAME = "serving_default"
INPUT_NAME = "inputs"
_METHOD_NAME = "tensorflow/serving/predict"


class PredictFormat(StrEnum):
    """The two request formats of ``:predict``; the answer uses the same one."""

    ROW = "row"
    COLUMNAR = "columnar"


class TFOutput(StrEnum):
    """Output names of the signature, as the TF Object Detection API names them."""

    DETECTION_BOXES = "detection_boxes"
    DETECTION_SCORES = "detection_scores"
    DETECTION_CLASSES = "detection_classes"
    DETECTION_CLASS_NAMES = "detection_class_names"
    NUM_DETECTIONS = "num_detections"


class TFKeypointOutput(StrEnum):
    """The outputs a pose model adds, as a TF Object Detection API keypoint export names them."""

    DETECTION_KEYPOINTS = "detection_keypoints"
    DETECTION_KEYPOINT_SCORES = "detection_keypoint_scores"


class TFClassOutput(StrEnum):
    """Output names of a classify model's signature, as a TF classifier's: ``classes`` (label
    names) and ``scores``, best first, with ``class_ids`` beside them."""

    CLASSES = "classes"
    SCORES = "scores"
    CLASS_IDS = "class_ids"


class ModelVersionState(StrEnum):
    """TF Serving's servable states."""

    UNKNOWN = "UNKNOWN"
    START = "START"
    LOADING = "LOADING"
    AVAILABLE = "AVAILABLE"
    UNLOADING = "UNLOADING"
    END = "END"


class VersionStatus(BaseModel):
    error_code: str = "OK"
    error_message: str = ""


class ModelVersionStatus(BaseModel):
    version: str
    state: ModelVersionState
    status: VersionStatus


@dataclass(frozen=True)
class ParsedPredict:
    """The images of a ``:predict`` request, in order, and the format to answer in."""

    images: list[ImageInput]
    format: PredictFormat


def tf_version(version: str | None) -> int:
    """The integer version TF Serving clients see: the model's version when it is a number, else 1."""
    return int(version) if version and version.isdigit() else 1


def _pixels(value: list[Any], where: str) -> ImageInput:
    try:
        array = np.asarray(value)
    except ValueError:
        raise InvalidParameterError(f"{where}: pixel rows have different lengths") from None
    if array.dtype.kind not in "iu" or array.size == 0 or array.min() < 0 or array.max() > 255:
        raise InvalidParameterError(f"{where}: pixels must be integers from 0 to 255")
    return as_bgr_image(where, array.astype(np.uint8), ColorOrder.RGB)


def _image(value: Any, where: str) -> ImageInput:
    """One image: ``{"b64": ...}``, nested pixel lists, or either under the named input ``inputs``."""
    if isinstance(value, dict):
        if "b64" in value:
            if len(value) != 1:
                raise InvalidParameterError(f"{where}: a b64 object must have no other keys")
            return decode_base64(f"{where} b64", value["b64"])
        unknown = sorted(set(value) - {INPUT_NAME})
        if unknown:
            raise InvalidParameterError(f"{where}: JSON object does not have named input: {unknown[0]}")
        if INPUT_NAME not in value:
            raise InvalidParameterError(f"{where}: missing named input: {INPUT_NAME}")
        return _image(value[INPUT_NAME], where)
    if isinstance(value, list):
        return _pixels(value, where)
    raise InvalidParameterError(f'{where}: expected {{"b64": ...}} or pixel lists, got {type(value).__name__}')


def _columnar(value: Any) -> list[ImageInput]:
    if isinstance(value, dict) and "b64" not in value:
        unknown = sorted(set(value) - {INPUT_NAME})
        if unknown or INPUT_NAME not in value:
            name = unknown[0] if unknown else INPUT_NAME
            raise InvalidParameterError(
                f"'inputs' has no named input {name!r}: the signature's input is '{INPUT_NAME}'"
            )
        value = value[INPUT_NAME]
    if isinstance(value, dict):
        return [_image(value, "inputs")]
    if not isinstance(value, list) or not value:
        raise InvalidParameterError("'inputs' must hold a non-empty batch of images")
    if isinstance(value[0], dict):
        return [_image(item, f"inputs[{i}]") for i, item in enumerate(value)]
    depth, probe = 0, value
    while isinstance(probe, list) and probe:
        depth, probe = depth + 1, probe[0]
    if depth == 3:
        return [_pixels(value, "inputs")]
    return [_pixels(item, f"inputs[{i}]") for i, item in enumerate(value)]


def list_pixel_bound(body: bytes) -> int:
    """An upper bound on the pixels ``body`` sends as nested lists, found without parsing: each
    such pixel is a list ``[r, g, b]`` and base64 never holds a ``[``, so the count of ``[`` bounds
    them. Raises :class:`ImageTooLargeError` beyond :data:`MAX_LIST_PIXELS`, before any Python list
    is built."""
    bound = body.count(b"[")
    if bound > MAX_LIST_PIXELS:
        raise ImageTooLargeError(
            f"images sent as nested pixel lists are limited to {MAX_LIST_PIXELS} pixels per request "
            f'(this body may hold {bound}): send larger images as {{"b64": ...}}'
        )
    return bound


def parse_predict_request(body: bytes) -> ParsedPredict:
    """The images of a ``:predict`` body in the row or the columnar format.

    Raises :class:`InvalidParameterError` for invalid JSON, an unknown signature, both or neither
    of ``instances``/``inputs``, unknown input names, bad base64 or bad pixel arrays.
    """
    document = parse_json(body, "JSON Parse error")
    if not isinstance(document, dict):
        raise InvalidParameterError("JSON Value is not an object")
    signature = document.get("signature_name") or SIGNATURE_NAME
    if signature != SIGNATURE_NAME:
        raise InvalidParameterError(f'Serving signature name: "{signature}" not found in signature def')
    if ("instances" in document) == ("inputs" in document):
        raise InvalidParameterError("Missing 'instances' or 'inputs' key (exactly one of them is required)")
    if "inputs" in document:
        return ParsedPredict(_columnar(document["inputs"]), PredictFormat.COLUMNAR)
    instances = document["instances"]
    if not isinstance(instances, list) or not instances:
        raise InvalidParameterError("'instances' must be a non-empty list")
    images = [_image(item, f"instances[{i}]") for i, item in enumerate(instances)]
    return ParsedPredict(images, PredictFormat.ROW)


def _keypoint_outputs(rows: list[BoxRow], width: int, height: int, pad: int, count: int) -> dict[StrEnum, Any]:
    points = np.zeros((pad, count, 2), np.float64)
    scores = np.zeros((pad, count), np.float64)
    for i, row in enumerate(rows):
        for k, point in enumerate((row.keypoints or ())[:count]):
            points[i, k] = (min(max(point.y / height, 0.0), 1.0), min(max(point.x / width, 0.0), 1.0))
            scores[i, k] = point.score
    return {
        TFKeypointOutput.DETECTION_KEYPOINTS: np.round(points, 6).tolist(),
        TFKeypointOutput.DETECTION_KEYPOINT_SCORES: np.round(scores, 6).tolist(),
    }


def _outputs(
    detections: Detections, labels: Labels, width: int, height: int, pad: int, keypoints: int
) -> dict[StrEnum, Any]:
    rows = box_rows(detections, labels, (width, height), MaskFormat.NONE)
    n = len(rows)
    boxes = np.zeros((pad, 4), np.float64)
    scale = np.array([width, height, width, height], np.float64)
    xyxy = np.array([row.box for row in rows], np.float32).reshape(-1, 4)
    normalized = np.clip(xyxy.astype(np.float64) / scale, 0.0, 1.0)
    boxes[:n] = normalized[:, [1, 0, 3, 2]]
    scores = np.zeros(pad, np.float64)
    scores[:n] = np.array([row.score for row in rows], np.float32)
    classes = np.zeros(pad, np.float64)
    classes[:n] = [row.class_id for row in rows]
    outputs: dict[StrEnum, Any] = {
        TFOutput.DETECTION_BOXES: np.round(boxes, 6).tolist(),
        TFOutput.DETECTION_SCORES: np.round(scores, 6).tolist(),
        TFOutput.DETECTION_CLASSES: classes.tolist(),
        TFOutput.DETECTION_CLASS_NAMES: [row.label for row in rows] + [""] * (pad - n),
        TFOutput.NUM_DETECTIONS: float(n),
    }
    if keypoints:
        outputs.update(_keypoint_outputs(rows, width, height, pad, keypoints))
    return outputs


def render_predict_response(
    results: Sequence[tuple[Detections, int, int]], labels: Labels, fmt: PredictFormat, task: Task = Task.DETECT
) -> dict[str, Any]:
    """The ``:predict`` answer for ``(detections, width, height)`` per image, in ``fmt``; a pose
    model's (``task``) with its keypoint outputs."""
    pad = max((len(d) for d, _, _ in results), default=0)
    keypoints = len(labels.keypoints) if task is Task.POSE else 0
    rows = [_outputs(d, labels, w, h, pad, keypoints) for d, w, h in results]
    names: list[StrEnum] = [*TFOutput, *(TFKeypointOutput if keypoints else ())]
    return _batched(rows, names, fmt)


def _batched(rows: list[dict[Any, Any]], names: Sequence[StrEnum], fmt: PredictFormat) -> dict[str, Any]:
    if fmt is PredictFormat.ROW:
        return {"predictions": [{name.value: value for name, value in row.items()} for row in rows]}
    return {"outputs": {name.value: [row[name] for row in rows] for name in names}}


def render_classify_response(results: Sequence[Classifications], labels: Labels, fmt: PredictFormat) -> dict[str, Any]:
    """The ``:predict`` answer of a classify model: per image ``classes`` (names), ``scores`` and
    ``class_ids``, best first, padded to the longest list of the batch with ``""``, 0 and -1."""
    pad = max((len(c) for c in results), default=0)
    rows = []
    for classes in results:
        ranked = class_rows(classes, labels)
        missing = pad - len(ranked)
        rows.append(
            {
                TFClassOutput.CLASSES: [r.label for r in ranked] + [""] * missing,
                TFClassOutput.SCORES: [round(r.score, 6) for r in ranked] + [0.0] * missing,
                TFClassOutput.CLASS_IDS: [r.class_id for r in ranked] + [-1] * missing,
            }
        )
    return _batched(rows, list(TFClassOutput), fmt)


def render_version_status(version: int, state: ModelVersionState, error: str = "") -> ModelVersionStatus:
    """One entry of ``model_version_status``; a non-empty ``error`` reports error code UNKNOWN."""
    status = VersionStatus(error_code="UNKNOWN", error_message=error) if error else VersionStatus()
    return ModelVersionStatus(version=str(version), state=state, status=status)


#: visionserve's model states (``ModelState`` values) as TF Serving names them.
_STATES = {
    "loaded": ModelVersionState.AVAILABLE,
    "loading": ModelVersionState.LOADING,
    "unloading": ModelVersionState.UNLOADING,
    "unloaded": ModelVersionState.END,
    "failed": ModelVersionState.END,
}


def model_version_status(state: str, version: str | None, error: str | None = None) -> list[dict[str, Any]]:
    """TF Serving's ``model_version_status`` for a model in visionserve ``state`` (``"loaded"``,
    ``"unloaded"``, ...), as ``GET /v1/models/{name}`` carries it."""
    tf_state = _STATES.get(state, ModelVersionState.UNKNOWN)
    return [render_version_status(tf_version(version), tf_state, error or "").model_dump(mode="json")]


def _tensor_info(name: str, dtype: str, dims: list[int]) -> dict[str, Any]:
    shape = {"dim": [{"size": str(d), "name": ""} for d in dims], "unknown_rank": False}
    return {"dtype": dtype, "tensor_shape": shape, "name": f"{name}:0"}


def render_metadata(name: str, version: int, task: Task = Task.DETECT) -> dict[str, Any]:
    """``GET /v1/models/{name}/metadata``: the model spec and its ``serving_default`` signature
    (detection outputs, with the keypoint ones for a pose model, or a classifier's for a classify model)."""
    outputs: dict[StrEnum, dict[str, Any]]
    if task is Task.CLASSIFY:
        outputs = {
            TFClassOutput.CLASSES: _tensor_info("classes", "DT_STRING", [-1, -1]),
            TFClassOutput.SCORES: _tensor_info("scores", "DT_FLOAT", [-1, -1]),
            TFClassOutput.CLASS_IDS: _tensor_info("class_ids", "DT_INT64", [-1, -1]),
        }
    else:
        outputs = {
            TFOutput.DETECTION_BOXES: _tensor_info("detection_boxes", "DT_FLOAT", [-1, -1, 4]),
            TFOutput.DETECTION_SCORES: _tensor_info("detection_scores", "DT_FLOAT", [-1, -1]),
            TFOutput.DETECTION_CLASSES: _tensor_info("detection_classes", "DT_FLOAT", [-1, -1]),
            TFOutput.DETECTION_CLASS_NAMES: _tensor_info("detection_class_names", "DT_STRING", [-1, -1]),
            TFOutput.NUM_DETECTIONS: _tensor_info("num_detections", "DT_FLOAT", [-1]),
        }
        if task is Task.POSE:
            outputs[TFKeypointOutput.DETECTION_KEYPOINTS] = _tensor_info(
                "detection_keypoints", "DT_FLOAT", [-1, -1, -1, 2]
            )
            outputs[TFKeypointOutput.DETECTION_KEYPOINT_SCORES] = _tensor_info(
                "detection_keypoint_scores", "DT_FLOAT", [-1, -1, -1]
            )
    signature = {
        "inputs": {INPUT_NAME: _tensor_info("encoded_image_string_tensor", "DT_STRING", [-1])},
        "outputs": {key.value: value for key, value in outputs.items()},
        "method_name": _METHOD_NAME,
    }
    return {
        "model_spec": {"name": name, "signature_name": "", "version": str(version)},
        "metadata": {"signature_def": {"signature_def": {SIGNATURE_NAME: signature}}},
    }


def render_error(message: str) -> dict[str, str]:
    """``{"error": message}``."""
    return {"error": message}
