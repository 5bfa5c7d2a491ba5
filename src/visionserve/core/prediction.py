"""The prediction of any task, as one tagged union: code that handles every task takes a
:data:`Prediction` and branches on its type (``isinstance``), code for one kind takes that kind.

Both members are immutable, validated on construction, and share ``scaled(sx, sy)`` (map to another
image size) and ``len``.
"""

from __future__ import annotations

from typing import TypeAlias

from visionserve.core.classifications import Classifications
from visionserve.core.detections import Detections
from visionserve.errors import WrongTaskError

#: Boxes with optional masks and keypoints (detect, segment, pose) or top classes (classify).
Prediction: TypeAlias = Detections | Classifications

__all__ = ["Classifications", "Detections", "Prediction", "boxes_of", "classes_of"]


def boxes_of(prediction: Prediction, model: str) -> Detections:
    """``prediction`` as :class:`Detections`; raises :class:`WrongTaskError` for a classification
    (``model`` classifies whole images: an interface that answers boxes cannot serve it)."""
    if not isinstance(prediction, Detections):
        raise WrongTaskError(f"model {model!r} classifies images and gives no boxes: use its predict route")
    return prediction


def classes_of(prediction: Prediction, model: str) -> Classifications:
    """``prediction`` as :class:`Classifications`; raises :class:`WrongTaskError` for detections
    (``model`` finds objects: an interface that answers classes of whole images cannot serve it)."""
    if not isinstance(prediction, Classifications):
        raise WrongTaskError(f"model {model!r} finds objects and does not classify whole images: use a box route")
    return prediction
