"""What runs the model for a job item: the :class:`ItemDetector` protocol and its two implementations.

* :class:`ServedModels`, in the server: the served models of the
  :class:`~visionserve.serving.service.DetectionService` (the same batcher, instances and thread
  governor as synchronous requests) at :attr:`~visionserve.batching.Priority.LOW`, so that a job
  never loads a second copy of a model nor delays a request by more than one forward pass;
* :class:`ModelCache`, in a Celery worker process: its own models, loaded once per process.

Both feed the model the pixels that every route feeds it (a large JPEG decoded at reduced size) and
give the prediction of any task (boxes with their masks and keypoints, or classes) in source pixels;
with ``keep_pixels`` they also give the full-size image for crops and drawings.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from visionserve.batching import Priority
from visionserve.core.images import DEFAULT_MAX_PIXELS
from visionserve.core.prediction import Prediction
from visionserve.jobs.devices import spec_on_device
from visionserve.models.labels import Labels
from visionserve.models.loading import load_model
from visionserve.models.repository import ModelRepository
from visionserve.models.spec import ModelSpec
from visionserve.pipeline import PredictOptions, Predictor
from visionserve.serving.instances import decode_for_model, decode_with_source
from visionserve.serving.service import DetectionService
from visionserve.types import BGRImage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Detected:
    """The prediction of one item (:class:`Detections` of a box model, or :class:`Classifications`) in
    pixels of the ``width x height`` source image, ``source`` that image at full size when asked for
    (else None), the model's ``labels``, and the milliseconds spent decoding and inferring."""

    width: int
    height: int
    prediction: Prediction
    labels: Labels
    source: BGRImage | None
    decode_ms: float
    inference_ms: float


class ItemDetector(Protocol):
    """Runs models for job items; called from job threads or worker processes (blocking)."""

    def prepare(self, model: str) -> None:
        """Make ``model`` ready to detect. Raises :class:`~visionserve.errors.ModelNotFoundError`,
        :class:`~visionserve.errors.ModelLoadError`, :class:`~visionserve.errors.ConfigError` or
        :class:`~visionserve.errors.ModelNotReadyError`: the model cannot serve the job."""
        ...

    def describe(self, model: str) -> tuple[ModelSpec, Labels]:
        """The spec and labels of ``model`` (after :meth:`prepare`)."""
        ...

    def detect(self, model: str, data: bytes, options: PredictOptions, keep_pixels: bool) -> Detected:
        """Decode ``data`` and predict (any task). Raises :class:`~visionserve.errors.InputError`,
        :class:`~visionserve.errors.InferenceError`, and, in a server,
        :class:`~visionserve.errors.ShuttingDownError` or :class:`~visionserve.errors.OverloadedError`
        (try again later)."""
        ...

    def detect_frames(self, model: str, frames: Sequence[BGRImage], options: PredictOptions) -> Frames:
        """Predict on decoded ``(H, W, 3) uint8`` BGR video frames, in one call (they may share forward
        passes); predictions in the frames' pixels. Raises what :meth:`detect` raises."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Frames:
    """The predictions of a batch of frames, in order, the model's ``labels``, and the milliseconds
    the batch took."""

    predictions: list[Prediction]
    labels: Labels
    inference_ms: float


class ModelCache:
    """Models loaded once and kept, by name, for one thread or one worker process (a predictor serves
    one caller at a time). ``load(spec)`` defaults to :func:`load_model`; images over ``max_pixels``
    are refused."""

    def __init__(
        self,
        repository: ModelRepository,
        device: str = "cpu",
        load: Callable[..., Predictor] = load_model,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        self._repository = repository
        self._device = device
        self._load = load
        self._max_pixels = max_pixels
        self._models: dict[str, Predictor] = {}

    def get(self, name: str) -> Predictor:
        """The model called ``name`` (a repository name, never a path). Raises what
        :meth:`ModelRepository.get` and ``load`` raise."""
        if name not in self._models:
            spec = spec_on_device(self._repository.get(name), self._device)
            self._models[name] = self._load(spec)
            log.info("loaded model %s on %s", name, self._device)
        return self._models[name]

    def prepare(self, model: str) -> None:
        self.get(model)

    def describe(self, model: str) -> tuple[ModelSpec, Labels]:
        predictor = self.get(model)
        return predictor.spec, predictor.labels

    def detect(self, model: str, data: bytes, options: PredictOptions, keep_pixels: bool) -> Detected:
        predictor = self.get(model)
        started = time.perf_counter()
        target = predictor.spec.input
        if keep_pixels:
            decoded, source = decode_with_source(data, self._max_pixels, target)
        else:
            decoded, source = decode_for_model(data, self._max_pixels, target), None
        decoded_at = time.perf_counter()
        (found,) = predictor.infer([decoded.image], options).predictions
        inferred = time.perf_counter()
        sx, sy = decoded.scale
        if (sx, sy) != (1.0, 1.0):
            found = found.scaled(sx, sy)
        decode_ms, inference_ms = (decoded_at - started) * 1000.0, (inferred - decoded_at) * 1000.0
        return Detected(decoded.width, decoded.height, found, predictor.labels, source, decode_ms, inference_ms)

    def detect_frames(self, model: str, frames: Sequence[BGRImage], options: PredictOptions) -> Frames:
        predictor = self.get(model)
        started = time.perf_counter()
        predictions = list(predictor.infer(list(frames), options).predictions)
        return Frames(predictions, predictor.labels, (time.perf_counter() - started) * 1000.0)

    def close(self) -> None:
        for model in self._models.values():
            model.close()
        self._models.clear()


class ServedModels:
    """The server's served models, reached from job threads through the event loop ``loop`` that
    runs ``service``. Items wait until start-up loading has finished; a model that loads on demand is
    loaded then, and one that is not loaded (unloaded, failed) cannot serve the job
    (:class:`ModelNotReadyError`)."""

    def __init__(self, service: DetectionService, loop: asyncio.AbstractEventLoop) -> None:
        self._service = service
        self._loop = loop

    def prepare(self, model: str) -> None:
        asyncio.run_coroutine_threadsafe(self._service.wait_started(), self._loop).result()
        self._service.resolve_name(model)
        # Raises ModelNotReadyError unless loaded (a model that loads on demand is loaded now).
        asyncio.run_coroutine_threadsafe(self._service.manager.acquire(model), self._loop).result()

    def describe(self, model: str) -> tuple[ModelSpec, Labels]:
        return self._service.spec(model), self._service.labels(model)

    def detect(self, model: str, data: bytes, options: PredictOptions, keep_pixels: bool) -> Detected:
        call = self._service.detect(model, [data], options, full_size=keep_pixels, priority=Priority.LOW)
        (result,) = asyncio.run_coroutine_threadsafe(call, self._loop).result()
        source = result.image if keep_pixels else None
        timings = result.timings
        labels = self._service.labels(model)
        return Detected(
            result.width, result.height, result.prediction, labels, source, timings.decode_ms, timings.inference_ms
        )

    def detect_frames(self, model: str, frames: Sequence[BGRImage], options: PredictOptions) -> Frames:
        started = time.perf_counter()
        call = self._service.detect(model, list(frames), options, priority=Priority.LOW)
        results = asyncio.run_coroutine_threadsafe(call, self._loop).result()
        elapsed = (time.perf_counter() - started) * 1000.0
        return Frames([result.prediction for result in results], self._service.labels(model), elapsed)

    def close(self) -> None:
        """Nothing to release: the models belong to the service."""
