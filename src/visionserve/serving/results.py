"""The values the serving layer hands to its interfaces: a model's state and status, and the
prediction of one image with its timings. Plain data, so that wire codecs can read them without
depending on the serving machinery (the layering test keeps it so)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from visionserve.core.detections import Detections
from visionserve.core.prediction import Prediction, boxes_of
from visionserve.models.labels import Labels
from visionserve.models.spec import ModelSpec
from visionserve.types import BGRImage


class ModelState(StrEnum):
    UNLOADED = "unloaded"
    LOADING = "loading"
    LOADED = "loaded"
    UNLOADING = "unloading"
    FAILED = "failed"


@dataclass(frozen=True)
class ModelStatus:
    """A snapshot of one model: ``spec``/``labels`` are None for a ``model.yaml`` that does not
    validate (``error`` says why); ``instances`` is the number it runs (or would run) with;
    ``on_demand``: its next request loads it."""

    name: str
    state: ModelState
    spec: ModelSpec | None
    labels: Labels | None
    instances: int
    queue_depth: int
    error: str | None = None
    on_demand: bool = False


@dataclass(frozen=True)
class Timings:
    """Milliseconds spent on one image. ``preprocess``/``inference``/``postprocess`` are those of
    the forward pass the image shared with its batch; ``total`` runs from the call to the result."""

    queue_ms: float
    decode_ms: float
    preprocess_ms: float
    inference_ms: float
    postprocess_ms: float
    total_ms: float

    def as_dict(self) -> dict[str, float]:
        """``{"queue": ms, "decode": ms, ..., "total": ms}`` rounded to 0.01 ms."""
        return {name.removesuffix("_ms"): round(value, 2) for name, value in self.__dict__.items()}


@dataclass(frozen=True)
class ImageResult:
    """The prediction of one image.

    ``prediction`` is in pixels of the source image (``width x height``, upright). ``image`` is
    the decoded BGR image: at source size when the call asked for ``full_size`` (or passed arrays),
    otherwise possibly reduced (``image.shape`` then differs from ``width``/``height``). The model
    saw the same pixels either way, so ``full_size`` never changes the detections.
    """

    model: str
    version: str
    width: int
    height: int
    prediction: Prediction
    timings: Timings
    image: BGRImage
    batch_size: int

    @property
    def detections(self) -> Detections:
        """The prediction of a box model (detect, segment, pose); raises :class:`WrongTaskError` for
        a classifier, whose answer has no boxes."""
        return boxes_of(self.prediction, self.model)
