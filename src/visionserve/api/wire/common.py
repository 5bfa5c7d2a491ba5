"""Pieces shared by the protocol codecs: image inputs, per-request options, base64 text.

A protocol codec turns a request into a list of :data:`ImageInput` (encoded image bytes, or an
already decoded ``(H, W, 3) uint8`` BGR array) and a :class:`RequestOptions`; the route hands both to
the serving layer and gives the results back to the codec to render.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt
from pydantic import ValidationError

from visionserve.errors import InvalidParameterError
from visionserve.models.labels import Labels
from visionserve.models.spec import ColorOrder
from visionserve.pipeline import PredictOptions, resolve_classes
from visionserve.types import BGRImage

#: One image of a request: encoded bytes (JPEG, PNG, ...) or a decoded BGR ``(H, W, 3) uint8`` array.
ImageInput: TypeAlias = bytes | BGRImage

_DATA_URL = re.compile(r"^data:[\w.+-]+/[\w.+-]+;base64,", re.IGNORECASE)


@dataclass(frozen=True)
class RequestOptions:
    """Thresholds a request asked for; None keeps the model's default.

    ``classes`` holds label names or numeric ids as the client wrote them; they become class ids
    against a model's labels in :meth:`to_predict_options`.
    """

    conf: float | Literal["best"] | None = None
    iou: float | None = None
    max_det: int | None = None
    classes: tuple[str, ...] | None = None

    def to_predict_options(self, labels: Labels) -> PredictOptions:
        """The :class:`PredictOptions` for a model with ``labels``; raises
        :class:`InvalidParameterError` for an unknown class or an out-of-range threshold."""
        class_ids = resolve_classes(self.classes, labels) if self.classes is not None else None
        return PredictOptions(conf=self.conf, iou=self.iou, classes=class_ids, max_det=self.max_det)


def decode_base64(what: str, text: Any) -> bytes:
    """Bytes of base64 ``text`` (standard or URL-safe alphabet, padding optional, a
    ``data:image/...;base64,`` prefix allowed); raises :class:`InvalidParameterError` naming ``what``."""
    if not isinstance(text, str):
        raise InvalidParameterError(f"{what} must be a base64 string, got {type(text).__name__}")
    body = _DATA_URL.sub("", text.strip(), count=1)
    body = "".join(body.split())
    body = body.replace("-", "+").replace("_", "/")
    body += "=" * (-len(body) % 4)
    try:
        data = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidParameterError(f"{what} is not valid base64") from None
    if not data:
        raise InvalidParameterError(f"{what} is empty")
    return data


def as_bgr_image(what: str, array: npt.NDArray[Any], color: ColorOrder) -> BGRImage:
    """A checked ``(H, W, 3) uint8`` BGR copy of ``array`` given in ``color`` order.

    Raises :class:`InvalidParameterError` when the dtype is not uint8 or the shape is not
    ``(H, W, 3)`` with ``H, W >= 1``.
    """
    if array.dtype != np.uint8:
        raise InvalidParameterError(f"{what} must be uint8 pixels, got {array.dtype}")
    if array.ndim != 3 or array.shape[2] != 3 or array.shape[0] < 1 or array.shape[1] < 1:
        raise InvalidParameterError(f"{what} must have shape (height, width, 3), got {tuple(array.shape)}")
    pixels = array[:, :, ::-1] if color is ColorOrder.RGB else array
    return np.ascontiguousarray(pixels)


def parse_color_order(value: Any) -> ColorOrder:
    """``"RGB"`` or ``"BGR"`` (any case); anything else raises :class:`InvalidParameterError`."""
    try:
        return ColorOrder(str(value).lower())
    except ValueError:
        raise InvalidParameterError(f"color order must be RGB or BGR, got {value!r}") from None


def split_classes(value: Any) -> tuple[str, ...] | None:
    """Class names from a comma-separated string or a list of names/ids; None or empty means all."""
    if value is None:
        return None
    items: Sequence[Any] = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, Sequence):
        raise InvalidParameterError(f"classes must be a list or a comma-separated string, got {value!r}")
    names = tuple(str(item).strip() for item in items if str(item).strip())
    return names or None


def describe_validation_error(exc: ValidationError) -> str:
    """The first error of ``exc`` as ``"field.path: message"``, without pydantic's union-member
    tags (``image.InferenceRequestImage.type`` reads ``image.type``)."""
    error = exc.errors()[0]
    parts = [str(p) for p in error["loc"] if not (isinstance(p, str) and (p[:1].isupper() or "[" in p))]
    where = ".".join(parts)
    return f"{where}: {error['msg']}" if where else str(error["msg"])
