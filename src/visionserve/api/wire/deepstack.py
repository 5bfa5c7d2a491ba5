"""The DeepStack / CodeProject.AI object-detection wire format.

Requests are multipart forms: an ``image`` file, ``min_confidence`` (default 0.4) and ``api_key``.
Answers follow DeepStack's Go server (``{"success", "predictions", "duration"}`` with integer pixel
boxes) plus the fields that CodeProject.AI Server adds (``message``, ``count``, ``processMs``,
``inferenceMs``, ``moduleId``, ...), so that clients of either find what they read. Predictions are
sorted by confidence, highest first, because some consumers (Frigate's DeepStack detector, for one)
stop reading at the first prediction under their own threshold. Errors are
``{"success": false, "error": "..."}`` with the HTTP status in ``code`` as well.

``/v1/vision/scene`` answers DeepStack's ``{"success", "label", "confidence"}`` from a classify model
(plus CodeProject.AI's fields). Pure functions and pydantic schemas only: no HTTP framework here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from email.utils import formatdate
from enum import StrEnum
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel

from visionserve.core.classifications import Classifications
from visionserve.core.detections import Detections
from visionserve.errors import InvalidParameterError
from visionserve.models.labels import Labels
from visionserve.models.spec import BEST
from visionserve.render.mask_encoding import MaskFormat
from visionserve.render.rows import box_rows, class_rows

#: DeepStack's default ``min_confidence`` when the form field is absent or empty.
DEFAULT_MIN_CONFIDENCE = 0.4
#: How many labels CodeProject.AI names in ``message`` before it writes "...".
_MESSAGE_LABELS = 3


class DeepStackCommand(StrEnum):
    """The CodeProject.AI command that a route answers (echoed in ``command``)."""

    DETECT = "detect"
    CUSTOM = "custom"
    SCENE = "scene"
    LIST_CUSTOM = "list-custom"


class DeepStackPrediction(BaseModel):
    """One detection: label, confidence in [0, 1] and the box in integer source-image pixels."""

    confidence: float
    label: str
    x_min: int
    y_min: int
    x_max: int
    y_max: int


class DeepStackDetectionResponse(BaseModel):
    """A successful detection answer: DeepStack's fields, then CodeProject.AI's."""

    success: bool = True
    message: str
    count: int
    predictions: list[DeepStackPrediction]
    duration: float
    processMs: int
    inferenceMs: int
    analysisRoundTripMs: int
    moduleId: str
    moduleName: str
    command: DeepStackCommand
    executionProvider: str
    canUseGPU: bool
    inferenceDevice: str
    processedBy: str
    timestampUTC: str
    code: int = 200


class DeepStackSceneResponse(BaseModel):
    """A scene answer: DeepStack's ``{success, label, confidence}`` (the best class of a classify
    model, confidence in [0, 1]), then CodeProject.AI's fields."""

    success: bool = True
    label: str
    confidence: float
    message: str
    duration: float
    processMs: int
    inferenceMs: int
    analysisRoundTripMs: int
    moduleId: str
    moduleName: str
    command: DeepStackCommand = DeepStackCommand.SCENE
    executionProvider: str
    canUseGPU: bool
    inferenceDevice: str
    processedBy: str
    timestampUTC: str
    code: int = 200


class DeepStackModelList(BaseModel):
    """The answer of ``/v1/vision/custom/list``: the model names usable as ``custom/{name}``."""

    success: bool = True
    models: list[str]
    moduleId: str
    command: DeepStackCommand = DeepStackCommand.LIST_CUSTOM
    code: int = 200


class DeepStackError(BaseModel):
    """An error answer, as DeepStack's ``ErrorResponse`` (plus CodeProject.AI's ``code``)."""

    success: bool = False
    error: str
    duration: float = 0.0
    code: int


@dataclass(frozen=True)
class ServerFacts:
    """What CodeProject.AI clients read about the module that answered."""

    module_id: str = "visionserve"
    module_name: str = "visionserve object detection"
    execution_provider: str = "CPU"
    inference_device: str = "CPU"
    can_use_gpu: bool = False
    processed_by: str = "localhost"


@dataclass(frozen=True)
class Timing:
    """Times of one request in milliseconds: model work (``process_ms`` includes decoding and
    pre/post-processing, ``inference_ms`` the forward pass alone) and the whole round trip
    in the server. ``timestamp`` is the answer's time in seconds since the epoch."""

    process_ms: float
    inference_ms: float
    round_trip_ms: float
    timestamp: float


def parse_min_confidence(raw: str | None) -> float | Literal["best"]:
    """``min_confidence`` as DeepStack reads it: absent or empty means 0.4; ``best`` asks for the
    model's saved per-class thresholds.

    Raises :class:`InvalidParameterError` with DeepStack's messages for a value that is not a
    number or lies outside [0, 1].
    """
    if raw is None or not raw.strip():
        return DEFAULT_MIN_CONFIDENCE
    if raw.strip().lower() == BEST:
        return BEST
    try:
        value = float(raw)
    except ValueError:
        raise InvalidParameterError("Invalid value for min_confidence") from None
    if math.isnan(value):
        raise InvalidParameterError("Invalid value for min_confidence")
    if value > 1.0:
        raise InvalidParameterError("min_confidence cannot be greater than 1")
    if value < 0.0:
        raise InvalidParameterError("min_confidence cannot be less than 0")
    return value


def to_predictions(
    detections: Detections, labels: Labels, width: int, height: int, min_confidence: float | Literal["best"] = 0.0
) -> list[DeepStackPrediction]:
    """Detections at or above ``min_confidence`` (``best``: as the model filtered them), highest
    first, boxes clipped to the ``width x height`` image and truncated to integer pixels as DeepStack does."""
    floor = 0.0 if isinstance(min_confidence, str) else min_confidence
    rows = box_rows(detections.filter(floor), labels, (width, height), MaskFormat.NONE)
    limits = np.array([width, height, width, height], dtype=np.float32)
    predictions = []
    for row in rows:
        # float32 as the boxes are, so that truncation gives the same pixel as before the rows
        x_min, y_min, x_max, y_max = np.clip(np.array(row.box, np.float32), 0.0, limits).astype(np.int64).tolist()
        predictions.append(
            DeepStackPrediction(
                confidence=round(row.score, 6), label=row.label, x_min=x_min, y_min=y_min, x_max=x_max, y_max=y_max
            )
        )
    return predictions


def summary_message(predictions: list[DeepStackPrediction]) -> str:
    """CodeProject.AI's ``message``: "Found a, b, c..." naming at most three, or "No objects found"."""
    if not predictions:
        return "No objects found"
    names = ", ".join(p.label for p in predictions[:_MESSAGE_LABELS])
    return f"Found {names}..." if len(predictions) > _MESSAGE_LABELS else f"Found {names}"


def render_detection(
    predictions: list[DeepStackPrediction],
    command: DeepStackCommand,
    timing: Timing,
    facts: ServerFacts,
) -> DeepStackDetectionResponse:
    """The full answer for ``predictions`` (as :func:`to_predictions` makes them)."""
    return DeepStackDetectionResponse(
        message=summary_message(predictions),
        count=len(predictions),
        predictions=predictions,
        command=command,
        **_server_fields(timing, facts),
    )


def _server_fields(timing: Timing, facts: ServerFacts) -> dict[str, Any]:
    return {
        "duration": round(timing.round_trip_ms / 1000.0, 6),
        "processMs": round(timing.process_ms),
        "inferenceMs": round(timing.inference_ms),
        "analysisRoundTripMs": round(timing.round_trip_ms),
        "moduleId": facts.module_id,
        "moduleName": facts.module_name,
        "executionProvider": facts.execution_provider,
        "canUseGPU": facts.can_use_gpu,
        "inferenceDevice": facts.inference_device,
        "processedBy": facts.processed_by,
        "timestampUTC": formatdate(timing.timestamp, usegmt=True),
    }


def render_scene(
    classes: Classifications, labels: Labels, timing: Timing, facts: ServerFacts
) -> DeepStackSceneResponse:
    """The scene answer: the best class of ``classes`` as ``label`` and ``confidence`` (``""`` and
    0 when the model gave no class), with CodeProject.AI's ``message`` "Found <label>"."""
    rows = class_rows(classes, labels)
    label, confidence = (rows[0].label, round(rows[0].score, 6)) if rows else ("", 0.0)
    message = f"Found {label}" if rows else "No scene found"
    return DeepStackSceneResponse(label=label, confidence=confidence, message=message, **_server_fields(timing, facts))


def render_model_list(names: list[str], facts: ServerFacts) -> DeepStackModelList:
    """The names of the models that ``/v1/vision/custom/{name}`` accepts, sorted."""
    return DeepStackModelList(models=sorted(names), moduleId=facts.module_id)


def render_error(message: str, status: int) -> DeepStackError:
    """``{"success": false, "error": message, "duration": 0, "code": status}``."""
    return DeepStackError(error=message, code=status)
