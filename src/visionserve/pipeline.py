"""A loaded model: images in, one :data:`~visionserve.core.prediction.Prediction` per image out.

``preprocess -> session.run -> decoder -> NMS/filter/top-k -> map to source pixels``. Each stage is
timed so that the server can report where the time went.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol

import numpy as np

from visionserve.backends.base import Session
from visionserve.core.classifications import Classifications
from visionserve.core.detections import Detections
from visionserve.core.geometry import Fit
from visionserve.core.nms import class_aware_nms
from visionserve.core.prediction import Prediction
from visionserve.core.thresholds import OTHER, Threshold, floor_of, keep_mask
from visionserve.decoders.base import Candidates, ClassScores, Decoded, DecodeParams, get_decoder
from visionserve.errors import DecodeError, InvalidParameterError
from visionserve.models.labels import Labels
from visionserve.models.spec import BEST, ModelSpec
from visionserve.preprocess import Preprocessor
from visionserve.types import AnyArray, BGRImage, IntArray


@dataclass(frozen=True)
class PredictOptions:
    """Per-call overrides of the model's thresholds; None keeps the model's default. ``conf="best"``
    asks for the model's saved per-class thresholds (see :func:`class_thresholds`)."""

    conf: float | Literal["best"] | None = None
    iou: float | None = None
    classes: frozenset[int] | None = None
    max_det: int | None = None
    #: Classifiers: at most this many classes.
    top_k: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.conf, str) and self.conf != BEST:
            raise InvalidParameterError(f"conf must be a number between 0 and 1 or 'best', got {self.conf!r}")
        for name in ("conf", "iou"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str) and not 0.0 <= value <= 1.0:
                raise InvalidParameterError(f"{name} must be between 0 and 1, got {value}")
        for name in ("max_det", "top_k"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise InvalidParameterError(f"{name} must be at least 1, got {value}")


def parse_conf(value: Any) -> float | Literal["best"] | None:
    """A request's ``conf``: None, ``"best"`` (any case), or a number between 0 and 1 (numeric text
    accepted); anything else raises :class:`InvalidParameterError`."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str) and value.strip().lower() == BEST:
        return BEST
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"conf must be a number between 0 and 1 or 'best', got {value!r}") from None
    if isinstance(value, bool) or not 0.0 <= number <= 1.0:
        raise InvalidParameterError(f"conf must be between 0 and 1 (or 'best'), got {value!r}")
    return number


def check_conf(spec: ModelSpec, conf: float | Literal["best"] | None) -> None:
    """Raise :class:`InvalidParameterError` when ``conf`` is ``best`` and ``spec`` has no saved
    per-class thresholds (callers check before queueing work, so one request cannot fail a batch)."""
    if conf == BEST and not spec.class_conf:
        raise InvalidParameterError(
            f"conf=best: model {spec.name!r} has no saved per-class thresholds "
            "(create them with `visionserve eval --save-thresholds`)"
        )


def class_thresholds(spec: ModelSpec, labels: Labels, conf: float | Literal["best"] | None) -> Threshold:
    """The confidence threshold an answer uses: one number, or with ``conf="best"`` (or no ``conf``
    on a model whose ``thresholds.conf`` is ``best``) the saved per-class thresholds by class id (a
    class with none saved uses ``thresholds.conf``: the mapping's ``OTHER`` entry). Raises
    :class:`InvalidParameterError` for ``best`` on a model without saved thresholds."""
    if conf is None:
        if not spec.thresholds.best:
            return spec.thresholds.conf
        conf = BEST
    if not isinstance(conf, str):
        return float(conf)
    check_conf(spec, conf)
    by_id = {OTHER: spec.thresholds.conf}
    for name, value in spec.class_conf.items():
        class_id = labels.id_of(name)
        if class_id is not None:
            by_id[class_id] = value
    return by_id


def resolve_classes(names: Iterable[str], labels: Labels) -> frozenset[int]:
    """Class ids for label names or numeric ids (blank entries are skipped).

    A numeric entry must be an id of ``labels`` (see :meth:`Labels.has_id`), otherwise it is looked
    up as a name; anything else (an unknown name, a negative or out-of-range id) raises
    :class:`InvalidParameterError` with the same message, whatever interface the value came from.
    """
    ids = set()
    for raw in names:
        name = raw.strip()
        if not name:
            continue
        class_id = _class_id(name, labels)
        if class_id is None:
            raise InvalidParameterError(f"unknown class {name!r}: not among this model's label names or ids")
        ids.add(class_id)
    return frozenset(ids)


def _class_id(name: str, labels: Labels) -> int | None:
    """The class id that ``name`` (a stripped id or label name) means for ``labels``, or None."""
    try:
        number = int(name)
    except ValueError:
        return labels.id_of(name)
    return number if labels.has_id(number) else labels.id_of(name)


@dataclass(frozen=True)
class StageTimings:
    """Milliseconds spent on one batch, per stage."""

    preprocess_ms: float = 0.0
    inference_ms: float = 0.0
    postprocess_ms: float = 0.0


@dataclass(frozen=True)
class BatchResult:
    """One prediction per input image, in order (:class:`Detections` for detect, segment and pose
    models, :class:`Classifications` for classify models), and the batch's stage timings."""

    predictions: list[Prediction]
    timings: StageTimings


class Predictor(Protocol):
    """Anything that turns a batch of images into predictions: a network model or a plugin."""

    @property
    def spec(self) -> ModelSpec: ...

    @property
    def labels(self) -> Labels: ...

    def infer(self, images: Sequence[BGRImage], options: PredictOptions | None = None) -> BatchResult:
        """A prediction for each ``(H, W, 3) uint8`` BGR image, in that image's pixels."""
        ...

    def predict(self, images: Sequence[BGRImage], options: PredictOptions | None = None) -> list[Prediction]:
        """Like :meth:`infer`, without timings."""
        ...

    def close(self) -> None: ...


def _ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


class NetworkModel:
    """A network spec with its open session. One instance serves one caller at a time."""

    def __init__(self, spec: ModelSpec, session: Session, labels: Labels) -> None:
        _, input_spec, decoder_spec = spec.network
        self._spec = spec
        self._session = session
        self._labels = labels
        self._preprocess = Preprocessor(input_spec)
        self._decode = get_decoder(decoder_spec.layout, spec.task, spec.source)
        self._input_name = session.inputs[0].name
        # A model exported with a fixed batch size says so in its input shape, even without a yaml field.
        self._fixed_batch = input_spec.fixed_batch or session.inputs[0].shape[0]
        self._nms = decoder_spec.nms
        self._decode_params = DecodeParams(
            input_width=input_spec.width,
            input_height=input_spec.height,
            conf=spec.thresholds.conf,
            num_classes=decoder_spec.num_classes or labels.num_classes,
            anchors=decoder_spec.anchors,
            num_keypoints=len(spec.keypoints.names) if spec.keypoints else 0,
            activation=decoder_spec.activation.value,
        )

    @property
    def spec(self) -> ModelSpec:
        return self._spec

    @property
    def labels(self) -> Labels:
        return self._labels

    @property
    def preprocessor(self) -> Preprocessor:
        return self._preprocess

    def predict(self, images: Sequence[BGRImage], options: PredictOptions | None = None) -> list[Prediction]:
        """Like :meth:`infer`, without timings."""
        return self.infer(images, options).predictions

    def infer(self, images: Sequence[BGRImage], options: PredictOptions | None = None) -> BatchResult:
        if not images:
            return BatchResult([], StageTimings())
        options = options or PredictOptions()
        start = time.perf_counter()
        blob, fits = self._preprocess(images)
        preprocess_ms = _ms_since(start)
        start = time.perf_counter()
        chunks = [
            (part, len(padded), self._session.run({self._input_name: padded})) for part, padded in self._chunks(blob)
        ]
        inference_ms = _ms_since(start)
        start = time.perf_counter()
        threshold = class_thresholds(self._spec, self._labels, options.conf)
        params = replace(self._decode_params, conf=floor_of(threshold))
        # The decoder reads the whole padded chunk; only the first ``n`` results are real images.
        decoded = [d for n, size, outputs in chunks for d in list(self._decode(outputs, size, params))[:n]]
        if len(decoded) != len(images):
            raise DecodeError(f"decoder returned {len(decoded)} results for {len(images)} images")
        predictions = [self._finish(d, fit, options, threshold) for d, fit in zip(decoded, fits, strict=True)]
        return BatchResult(predictions, StageTimings(preprocess_ms, inference_ms, _ms_since(start)))

    def _chunks(self, blob: AnyArray) -> list[tuple[int, AnyArray]]:
        """``(images in chunk, blob to run)``: the whole batch, or fixed-size chunks (the last one
        padded by repeating its final image) for models exported with a fixed batch size."""
        fixed = self._fixed_batch
        if fixed is None or fixed == len(blob):
            return [(len(blob), blob)]
        result = []
        for i in range(0, len(blob), fixed):
            chunk = blob[i : i + fixed]
            padding = np.repeat(chunk[-1:], fixed - len(chunk), axis=0)
            result.append((len(chunk), np.concatenate([chunk, padding]) if len(padding) else chunk))
        return result

    def _finish(self, found: Decoded, fit: Fit, options: PredictOptions, threshold: Threshold) -> Prediction:
        """Class filter and per-class thresholds, then NMS and ``max_det`` (boxes) or ``top_k``
        (classes); boxes, mask regions and keypoints mapped to source pixels."""
        if isinstance(found, ClassScores):
            return self._classes(found, options, threshold)
        if isinstance(found, Candidates):
            return self._boxes(found, fit, options, threshold)
        raise DecodeError(f"decoder returned a {type(found).__name__}, not Candidates or ClassScores")

    def _classes(self, found: ClassScores, options: PredictOptions, threshold: Threshold) -> Classifications:
        top_k = options.top_k or self._spec.thresholds.top_k
        return Classifications.from_scores(found.scores).filter(threshold, options.classes, top_k)

    def _boxes(self, found: Candidates, fit: Fit, options: PredictOptions, threshold: Threshold) -> Detections:
        rows: IntArray = np.arange(len(found.scores), dtype=np.int32)
        if not isinstance(threshold, float | int):
            rows = rows[keep_mask(found.scores, found.class_ids, threshold)]
        if options.classes is not None:
            rows = rows[np.isin(found.class_ids, np.fromiter(options.classes, np.int32, len(options.classes)))]
        xyxy, scores, class_ids = found.xyxy[rows], found.scores[rows], found.class_ids[rows]
        if self._nms:
            iou = self._spec.thresholds.iou if options.iou is None else options.iou
            order = class_aware_nms(xyxy, scores, class_ids, iou)
        else:
            order = np.argsort(-scores, kind="stable")
        kept = rows[order[: options.max_det or self._spec.thresholds.max_det]]
        keypoints = None if found.keypoints is None else fit.points_to_source(found.keypoints[kept])
        masks = None
        if found.masks is not None:
            selected = found.masks.select(kept)
            masks = selected.with_regions(fit.boxes_to_source(selected.regions, clip=False))
        return Detections(
            fit.boxes_to_source(found.xyxy[kept]),
            found.scores[kept],
            found.class_ids[kept],
            masks=masks,
            keypoints=keypoints,
        )

    def close(self) -> None:
        self._session.close()
