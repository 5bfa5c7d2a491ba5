"""The detection service: what every interface (HTTP routes, jobs, streams) calls. No HTTP here.

``bytes -> decode (thread pool, no more pixels than the model needs) -> batcher -> instance thread
-> Detections in source pixels``. The event loop only schedules: decoding runs in a thread pool and
inference in each instance's thread, so the next requests decode while a batch runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from visionserve.batching.batcher import Clock, Priority
from visionserve.core.images import DEFAULT_MAX_PIXELS, DecodedImage
from visionserve.errors import InputError, InvalidParameterError, ShuttingDownError
from visionserve.models.labels import Labels
from visionserve.models.loading import load_model
from visionserve.models.preload import Preload, preload_names
from visionserve.models.repository import ModelRepository
from visionserve.models.spec import InputSpec, ModelSpec
from visionserve.pipeline import PredictOptions, Predictor, check_conf
from visionserve.serving.instances import (
    BatchItem,
    Encoded,
    ItemResult,
    decode_for_model,
    decode_with_source,
    decoded_pixels,
)
from visionserve.serving.manager import ModelManager, ServedModel, ServingObserver
from visionserve.serving.model_stats import StatsRegistry, ms_to_ns, record_request
from visionserve.serving.pixel_budget import (
    DEFAULT_BUDGET_PIXELS,
    DEFAULT_WAIT_S,
    PixelBudget,
    PixelHold,
    PixelReservation,
)
from visionserve.serving.results import ImageResult, ModelState, ModelStatus, Timings
from visionserve.serving.threads import ThreadGovernor, set_opencv_threads
from visionserve.settings import Settings, available_cores
from visionserve.types import BGRImage

T = TypeVar("T")


@dataclass(frozen=True)
class Readiness:
    """Whether the service takes traffic: start-up loading done, not draining, a model loaded (or
    loading on its first request)."""

    ready: bool
    reason: str
    models: dict[str, ModelState]


@dataclass(frozen=True)
class ServiceConfig:
    """What the service needs from the settings. ``preload``: the models loaded at start (see
    :mod:`visionserve.models.preload`; here every model by default, ``auto`` in the settings)."""

    max_image_pixels: int = DEFAULT_MAX_PIXELS
    instances: int | None = None
    cores: int = field(default_factory=available_cores)
    preload: str = Preload.ALL.value
    #: The process-wide decoded-pixel budget and the longest wait for a share of it.
    max_decoded_pixels: int = DEFAULT_BUDGET_PIXELS
    decode_wait_s: float = DEFAULT_WAIT_S

    @classmethod
    def from_settings(cls, settings: Settings) -> ServiceConfig:
        return cls(
            settings.max_image_pixels,
            settings.instances,
            settings.cores,
            settings.preload,
            settings.max_decoded_pixels,
            settings.decode_wait,
        )


def as_image(array: Any) -> BGRImage:
    """``array`` checked to be ``(H, W, 3) uint8``; raises :class:`InvalidParameterError`."""
    if not isinstance(array, np.ndarray) or array.dtype != np.uint8:
        raise InvalidParameterError("an image array must be a numpy uint8 array")
    if array.ndim != 3 or array.shape[2] != 3 or min(array.shape[:2]) < 1:
        raise InvalidParameterError(f"an image array must have shape (height, width, 3), got {array.shape}")
    return array


async def _gather_or_cancel(awaitables: Sequence[Awaitable[T]]) -> list[T]:
    """All results in order; on the first failure the others are cancelled and it is raised."""
    if len(awaitables) == 1:
        return [await awaitables[0]]  # no task for the common case of one image
    tasks = [asyncio.ensure_future(item) for item in awaitables]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        raise


@contextlib.contextmanager
def _naming(index: int, count: int) -> Iterator[None]:
    """Prefix the message of an :class:`InputError` raised inside with ``image i of n`` when the
    call has several images."""
    try:
        yield
    except InputError as exc:
        if count > 1:
            raise type(exc)(f"image {index + 1} of {count}: {exc}") from exc
        raise


def _array_pixels(item: Any) -> int:
    """The pixels of an image array (0 for anything else: :func:`as_image` refuses it later)."""
    shape: tuple[int, ...] = tuple(getattr(item, "shape", ()))
    return int(shape[0]) * int(shape[1]) if len(shape) >= 2 else 0


class DetectionService:
    """Models of a repository, loaded once, served through dynamic batching.

    Args:
        repository: the models (the default model is always among them).
        config: pixel limit, instance override, cores.
        observer: told about each forward pass (metrics).
        set_threads: applies OpenCV's thread count (tests inject a recorder).
        load: builds one predictor from a spec (tests inject slow or failing ones).
        clock: time source of the batchers and of the pixel budget's waits.
        budget: the decoded-pixel budget (default: one made from ``config``).
        stats: where each model's requests and forward passes are counted (``self.stats``).
    """

    def __init__(
        self,
        repository: ModelRepository,
        config: ServiceConfig | None = None,
        *,
        observer: ServingObserver | None = None,
        set_threads: Callable[[int], None] = set_opencv_threads,
        load: Callable[[ModelSpec], Predictor] = load_model,
        clock: Clock | None = None,
        budget: PixelBudget | None = None,
        stats: StatsRegistry | None = None,
    ) -> None:
        self.repository = repository
        self.stats = stats or StatsRegistry()
        self.config = config or ServiceConfig()
        self.budget = budget or PixelBudget(self.config.max_decoded_pixels, self.config.decode_wait_s, clock=clock)
        self.governor = ThreadGovernor(self.config.cores, set_threads)
        self.manager = ModelManager(
            repository,
            self.governor,
            instances=self.config.instances,
            observer=observer,
            load=load,
            clock=clock,
            preload=preload_names(self.config.preload, repository),
            stats=self.stats,
        )
        self.draining = False
        self._pool: ThreadPoolExecutor | None = None
        self._startup: asyncio.Task[None] | None = None

    # -- life cycle -------------------------------------------------------------------------

    async def start(self, wait: bool = False) -> None:
        """Start loading and warming up the preloaded models in the background (``wait``: until
        done); the others load on their first request."""
        self._pool = ThreadPoolExecutor(max_workers=self.config.cores, thread_name_prefix="decode")
        self._startup = asyncio.get_running_loop().create_task(self.manager.load_all(), name="load-models")
        if wait:
            await self._startup

    async def wait_started(self) -> None:
        """Return once start-up loading has finished."""
        if self._startup is not None:
            await asyncio.shield(self._startup)

    def begin_drain(self) -> None:
        """Refuse new detections from now on (:class:`ShuttingDownError`); running ones finish."""
        self.draining = True

    async def close(self) -> None:
        """Stop start-up loading, finish queued work, unload every model, stop the decode threads."""
        self.draining = True
        if self._startup is not None and not self._startup.done():
            self._startup.cancel()
            await asyncio.gather(self._startup, return_exceptions=True)
        await self.manager.close()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def readiness(self) -> Readiness:
        statuses = self.manager.statuses()
        states = {status.name: status.state for status in statuses}
        if self.draining:
            return Readiness(False, "shutting down", states)
        if self._startup is None or not self._startup.done():
            return Readiness(False, "loading models", states)
        if not any(status.state is ModelState.LOADED or status.on_demand for status in statuses):
            return Readiness(False, "no model is loaded or loads on demand", states)
        return Readiness(True, "ready", states)

    # -- models -----------------------------------------------------------------------------

    @property
    def default_model(self) -> str:
        return self.repository.default_name

    def resolve_name(self, model: str | None) -> str:
        """``model`` or the default model's name; raises :class:`ModelNotFoundError` when unknown."""
        name = model or self.default_model
        self.manager.ensure_known(name)
        return name

    def spec(self, model: str | None = None) -> ModelSpec:
        return self.manager.spec(self.resolve_name(model))

    def labels(self, model: str | None = None) -> Labels:
        return self.manager.labels(self.resolve_name(model))

    def models(self) -> list[ModelStatus]:
        return self.manager.statuses()

    def model(self, name: str | None = None) -> ModelStatus:
        return self.manager.status(self.resolve_name(name))

    async def load(self, name: str) -> ModelStatus:
        return await self.manager.load(self.resolve_name(name))

    async def unload(self, name: str) -> ModelStatus:
        return await self.manager.unload(self.resolve_name(name))

    # -- detection --------------------------------------------------------------------------

    async def detect(
        self,
        model: str | None,
        images: Sequence[bytes | BGRImage],
        options: PredictOptions | None = None,
        *,
        full_size: bool = False,
        priority: Priority = Priority.HIGH,
        hold: PixelHold | None = None,
    ) -> list[ImageResult]:
        """Detections for each image (encoded bytes, or ``(H, W, 3) uint8`` BGR arrays), in order.

        Encoded images decode at reduced size when the model needs fewer pixels; with
        ``full_size`` the result's ``image`` is also decoded at full size (for drawing and crops),
        but the model still sees the reduced pixels, so the detections are the same with or without
        it. Boxes come back in source pixels either way. They decode in the thread pool
        (overlapping with the batches running), except a lone image for an idle model, which its
        instance's thread decodes. The images of one call are queued together, so they share
        forward passes. ``priority`` is ``LOW`` for background work (job items): it runs on the same
        instances, after the waiting requests (see :mod:`visionserve.batching.batcher`), and is not
        refused while draining (only :meth:`close` stops it).

        Before anything is decoded, the call reserves the pixels its images will hold from the
        process-wide :class:`PixelBudget` (read from the headers; arrays count their own pixels).
        They are given back when the call ends, or, with ``hold``, when the caller releases it
        (for callers that keep the returned images, such as annotated answers and crops).

        A model that loads on demand is loaded (and warmed up) first.

        Raises :class:`ModelNotFoundError`, :class:`ModelNotReadyError` (not loaded, or its load failed),
        :class:`ShuttingDownError` (draining, ``HIGH`` only), :class:`InvalidParameterError` (no image, a bad array),
        :class:`ImageDecodeError`, :class:`ImageTooLargeError` (the message names the image when
        there are several; also when the images need more than the whole pixel budget),
        :class:`OverloadedError` (queue full, or no share of the pixel budget in time) or the
        model's :class:`InferenceError`.

        Every call on a known model counts in its statistics (``self.stats``): a success with its
        times, or a failure with the time it took to fail.
        """
        started = time.perf_counter()
        if self.draining and priority is Priority.HIGH:
            # Background work is stopped by its owner (job items in progress finish) before close().
            raise ShuttingDownError("the server is shutting down and takes no new requests")
        name = self.resolve_name(model)
        try:
            results = await self._detect(name, images, options, full_size, priority, hold, started)
        except Exception:
            self.stats.model(name).record_failure(ms_to_ns((time.perf_counter() - started) * 1000.0))
            raise
        record_request(self.stats.model(name), [result.timings for result in results])
        return results

    async def _detect(
        self,
        name: str,
        images: Sequence[bytes | BGRImage],
        options: PredictOptions | None,
        full_size: bool,
        priority: Priority,
        hold: PixelHold | None,
        started: float,
    ) -> list[ImageResult]:
        """:meth:`detect` on the known model ``name``, called at ``started`` (``perf_counter``)."""
        served = await self.manager.acquire(name)
        if not images:
            raise InvalidParameterError("no image given")
        check_conf(served.spec, (options or PredictOptions()).conf)
        served.batcher.check_room(len(images), priority)  # refuse before decoding, not after
        target = served.spec.input
        reservation = await self._reserve(images, target, full_size)
        try:
            outputs, sources = await self._run(served, images, options or PredictOptions(), full_size, priority)
        except BaseException:
            reservation.release()
            raise
        if hold is None:
            reservation.release()
        else:
            hold.add(reservation)
        total_ms = (time.perf_counter() - started) * 1000.0
        return [
            self._result(served.spec, output, total_ms, source) for output, source in zip(outputs, sources, strict=True)
        ]

    async def _run(
        self,
        served: ServedModel,
        images: Sequence[bytes | BGRImage],
        options: PredictOptions,
        full_size: bool,
        priority: Priority,
    ) -> tuple[list[ItemResult], list[BGRImage | None]]:
        """Decode ``images`` and run them through ``served``'s batcher; the results and, with
        ``full_size``, each image at full size (else None)."""
        target = served.spec.input
        sources: list[BGRImage | None] = [None] * len(images)
        first = images[0]
        if len(images) == 1 and isinstance(first, bytes) and not full_size and self._alone(served, priority):
            # Nothing to overlap with: decode in the instance's thread and save a thread hand-off.
            encoded = Encoded(first, self.config.max_image_pixels, target)
            items = [BatchItem(encoded, options, time.perf_counter())]
        else:
            count = len(images)
            decoded = await _gather_or_cancel(
                [self._decode(item, target, i, count, full_size) for i, item in enumerate(images)]
            )
            submitted = time.perf_counter()
            items = [BatchItem(image, options, submitted, decode_ms) for image, decode_ms, _ in decoded]
            sources = [source for _, _, source in decoded]
        return await served.infer(items, priority), sources

    async def _reserve(
        self, images: Sequence[bytes | BGRImage], target: InputSpec | None, full_size: bool
    ) -> PixelReservation:
        """The budget's reservation for the pixels ``images`` hold once decoded for ``target`` (and
        at full size too with ``full_size``); an image whose header is bad raises here, named as
        :meth:`_decode` names it."""
        max_pixels = self.config.max_image_pixels

        def count_all() -> int:
            total = 0
            for index, item in enumerate(images):
                with _naming(index, len(images)):
                    if isinstance(item, bytes | bytearray | memoryview):
                        data = bytes(item)
                        total += decoded_pixels(data, max_pixels, target)
                        total += decoded_pixels(data, max_pixels, None) if full_size else 0
                    else:
                        total += _array_pixels(item)
            return total

        if len(images) == 1:
            pixels = count_all()  # one header: cheaper than a thread hand-off
        else:
            pixels = await asyncio.get_running_loop().run_in_executor(self._pool, count_all)
        what = "this image" if len(images) == 1 else f"these {len(images)} images"
        return await self.budget.reserve(pixels, what)

    @staticmethod
    def _alone(served: ServedModel, priority: Priority) -> bool:
        """Whether a request would start at once on an idle CPU (background work always decodes
        in the pool: it must not hold an instance's thread while it decodes)."""
        return priority is Priority.HIGH and served.idle()

    async def detect_arrays(
        self, model: str | None, arrays: Sequence[BGRImage], options: PredictOptions | None = None
    ) -> list[ImageResult]:
        """:meth:`detect` on decoded ``(H, W, 3) uint8`` BGR arrays; boxes in their pixels."""
        return await self.detect(model, list(arrays), options)

    async def _decode(
        self, item: bytes | BGRImage, target: InputSpec | None, index: int, count: int, full_size: bool
    ) -> tuple[DecodedImage, float, BGRImage | None]:
        """The image for the model (decoded in the thread pool), the ms it took (hand-off included),
        and the full-size image when ``full_size`` (else None)."""
        started = time.perf_counter()
        source: BGRImage | None = None
        with _naming(index, count):
            if isinstance(item, bytes | bytearray | memoryview):
                loop = asyncio.get_running_loop()
                max_pixels = self.config.max_image_pixels
                if full_size:
                    decoded, source = await loop.run_in_executor(
                        self._pool, decode_with_source, bytes(item), max_pixels, target
                    )
                else:
                    decoded = await loop.run_in_executor(self._pool, decode_for_model, bytes(item), max_pixels, target)
            else:
                image = source = as_image(item)
                decoded = DecodedImage(image, image.shape[1], image.shape[0])
        return decoded, (time.perf_counter() - started) * 1000.0, source

    @staticmethod
    def _result(spec: ModelSpec, output: ItemResult, total_ms: float, source: BGRImage | None) -> ImageResult:
        decoded = output.image
        sx, sy = decoded.scale
        prediction = output.prediction if (sx, sy) == (1.0, 1.0) else output.prediction.scaled(sx, sy)
        stages = output.timings
        ms = (output.queue_ms, output.decode_ms, stages.preprocess_ms, stages.inference_ms, stages.postprocess_ms)
        timings = Timings(*ms, total_ms)
        size = (decoded.width, decoded.height)
        image = decoded.image if source is None else source
        return ImageResult(spec.name, spec.version, *size, prediction, timings, image, output.batch_size)
