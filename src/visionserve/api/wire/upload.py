"""The ``/upload`` answer for phone and web clients: boxes, scores and a link to each crop, in one document.

``POST /upload`` (multipart field ``file``) answers::

    {"status": "success", "task_id": "<32 hex>", "num_detections": N,
     "score": [...], "boxes": [[x1, y1, x2, y2], ...], "labels": [...], "object_id": ["<crop url>", ...]}

with detections sorted by score, boxes in source-image pixels, and ``object_id[i]`` the URL of the
JPEG crop of detection ``i`` (``/upload/<task_id>/<i>.jpg``). Errors are
``{"status": "error", "error": "...", "traceback": ...}`` (a traceback only in debug mode).
Pure functions and pydantic schemas only.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel

from visionserve.core.detections import Detections
from visionserve.models.labels import Labels

#: Multipart field that carries the photo.
FILE_FIELD = "file"
_TASK_ID = re.compile(r"[0-9a-f]{32}")
_CROP_NAME = re.compile(r"(0|[1-9][0-9]{0,5})\.jpg")


class UploadResponse(BaseModel):
    status: Literal["success"] = "success"
    task_id: str
    num_detections: int
    score: list[float]
    boxes: list[list[float]]
    labels: list[str]
    object_id: list[str]


class UploadError(BaseModel):
    status: Literal["error"] = "error"
    error: str
    traceback: str | None = None


def new_task_id() -> str:
    """A fresh task id: 32 lowercase hex digits."""
    return uuid.uuid4().hex


def is_task_id(text: str) -> bool:
    """Whether ``text`` has the form of a task id (so it is safe as a storage key segment)."""
    return bool(_TASK_ID.fullmatch(text))


def crop_name(index: int) -> str:
    """The file name of crop ``index``: ``"<index>.jpg"``."""
    return f"{index}.jpg"


def crop_index(name: str) -> int | None:
    """The index in a crop file name made by :func:`crop_name`, or None for any other name."""
    match = _CROP_NAME.fullmatch(name)
    return int(match.group(1)) if match else None


def render_upload(
    task_id: str, detections: Detections, labels: Labels, crop_url: Callable[[int], str]
) -> UploadResponse:
    """The answer for ``detections`` (in the order their crops were stored, highest score first);
    ``crop_url(i)`` is the absolute URL of crop ``i``."""
    return UploadResponse(
        task_id=task_id,
        num_detections=len(detections),
        score=[round(float(s), 4) for s in detections.confidence],
        boxes=[[round(float(v), 1) for v in box] for box in detections.xyxy],
        labels=[labels.name(int(c)) for c in detections.class_id],
        object_id=[crop_url(i) for i in range(len(detections))],
    )


def render_error(message: str, traceback: str | None = None) -> UploadError:
    """``{"status": "error", "error": message}``, with ``traceback`` when given (debug mode)."""
    return UploadError(error=message, traceback=traceback)
