"""Model instances: one loaded predictor each, with a thread of its own.

A ``cv2.dnn.Net`` (like most runtime sessions) must not run two forward passes at once, so each
instance owns its predictor and a single worker thread; parallelism comes from several instances.
Their forward passes release the GIL, so instances of one process run in parallel.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from visionserve.core.geometry import ResizeMode, plan_fit
from visionserve.core.images import DecodedImage, ImageHeader, decode_image, read_header, reduction_factor
from visionserve.core.prediction import Prediction
from visionserve.errors import InferenceError, InputError
from visionserve.models.devices import spec_for_instance
from visionserve.models.spec import InputSpec, ModelSpec
from visionserve.pipeline import PredictOptions, Predictor, StageTimings
from visionserve.types import BGRImage

#: Side of the blank image that warms up models without an input size (plugins).
_WARMUP_SIDE = 64


@dataclass(frozen=True)
class Encoded:
    """Image bytes that the instance's thread decodes (see :func:`decode_for_model`)."""

    data: bytes
    max_pixels: int
    target: InputSpec | None


@dataclass(frozen=True)
class BatchItem:
    """One image for a batch.

    ``image`` is the decoded image as the model should see it (``decode_ms`` says how long that
    took), or :class:`Encoded` bytes to decode first; ``submitted`` is the
    :func:`time.perf_counter` reading when it was queued (the start of its queue time).
    """

    image: DecodedImage | Encoded
    options: PredictOptions
    submitted: float
    decode_ms: float = 0.0


@dataclass(frozen=True)
class ItemResult:
    """What the batch did for one :class:`BatchItem`.

    ``prediction`` is in pixels of ``image.image`` (the decoded image); ``decode_ms`` is the time
    spent decoding it (by the instance, or before, as the item said); ``timings`` are those of the forward
    pass the item shared with ``batch_size - 1`` others; ``queue_ms`` is the time from submission to
    the start of the batch (waiting for company, a free instance and a CPU lane).
    """

    image: DecodedImage
    prediction: Prediction
    timings: StageTimings
    queue_ms: float
    batch_size: int
    decode_ms: float = 0.0


def decode_for_model(data: bytes, max_pixels: int, target: InputSpec | None) -> DecodedImage:
    """Decode ``data`` keeping at least the pixels that ``target`` resizes to (large JPEGs decode at
    1/2, 1/4 or 1/8 scale); all of them when ``target`` is None. Raises
    :class:`~visionserve.errors.ImageDecodeError` or :class:`~visionserve.errors.ImageTooLargeError`."""
    if target is None:
        return decode_image(data, max_pixels)
    if target.resize is ResizeMode.STRETCH:  # the resized size is the input size, whatever the image
        return decode_image(data, max_pixels, min_size=(target.width, target.height))
    return decode_image(data, max_pixels, min_size=_min_size(read_header(data, max_pixels), target))


def decoded_pixels(data: bytes, max_pixels: int, target: InputSpec | None) -> int:
    """How many pixels :func:`decode_for_model` with the same arguments holds (an upper bound), from
    the header alone: nothing is decoded. Raises what :func:`~visionserve.core.images.read_header` raises."""
    header = read_header(data, max_pixels)
    factor = 1 if target is None else reduction_factor(header, *_min_size(header, target))
    return -(-header.width // factor) * -(-header.height // factor)


def _min_size(header: ImageHeader, target: InputSpec) -> tuple[int, int]:
    """The fewest pixels (width, height) an image of ``header``'s size must keep for ``target``."""
    if target.resize is ResizeMode.STRETCH:
        return target.width, target.height
    fit = plan_fit(header.width, header.height, target.width, target.height, target.resize)
    return fit.resized_width, fit.resized_height


def decode_with_source(data: bytes, max_pixels: int, target: InputSpec | None) -> tuple[DecodedImage, BGRImage]:
    """:func:`decode_for_model` and the full-size image: the model sees exactly the pixels it sees
    on every other path (a reduced-size JPEG decode differs from a resized full one, enough to move
    scores and boxes), while crops and drawings are cut from the full-size image. Decodes once when
    the model's decode is already at full size. Raises what :func:`decode_for_model` raises."""
    for_model = decode_for_model(data, max_pixels, target)
    if for_model.scale == (1.0, 1.0):
        return for_model, for_model.image
    return for_model, decode_image(data, max_pixels).image


def _decode_items(items: list[BatchItem]) -> tuple[dict[int, DecodedImage], dict[int, InputError], list[float]]:
    """The decoded image of each item by index, the :class:`InputError` of each item whose bytes do
    not decode, and the ms spent decoding each item (here, or before as the item says)."""
    decoded: dict[int, DecodedImage] = {}
    failed: dict[int, InputError] = {}
    spent: list[float] = []
    for index, item in enumerate(items):
        if not isinstance(item.image, Encoded):
            decoded[index] = item.image
            spent.append(item.decode_ms)
            continue
        started = time.perf_counter()
        try:
            decoded[index] = decode_for_model(item.image.data, item.image.max_pixels, item.image.target)
        except InputError as exc:
            failed[index] = exc
        spent.append((time.perf_counter() - started) * 1000.0)
    return decoded, failed, spent


def run_items(predictor: Predictor, items: list[BatchItem]) -> list[ItemResult | InputError]:
    """Decode the items that came encoded, then run them on ``predictor``, one forward pass per
    distinct :class:`PredictOptions` (items with equal options, the common case, share one pass).
    Blocking: call it in the instance's thread.

    A item whose bytes do not decode gets its :class:`InputError` as its result (the others run).
    Raises :class:`InferenceError` when the predictor returns a wrong number of results.
    """
    started = time.perf_counter()
    decoded, failed, decode_ms = _decode_items(items)
    groups: dict[PredictOptions, list[int]] = {}
    for index in decoded:
        groups.setdefault(items[index].options, []).append(index)
    results: dict[int, ItemResult | InputError] = dict(failed)
    for options, indices in groups.items():
        batch = predictor.infer([decoded[i].image for i in indices], options)
        if len(batch.predictions) != len(indices):
            raise InferenceError(
                f"model {predictor.spec.name!r} returned {len(batch.predictions)} results for {len(indices)} images"
            )
        for index, found in zip(indices, batch.predictions, strict=True):
            queue_ms = max(0.0, (started - items[index].submitted) * 1000.0)
            results[index] = ItemResult(decoded[index], found, batch.timings, queue_ms, len(indices), decode_ms[index])
    return [results[i] for i in range(len(items))]


def warmup_image(spec: ModelSpec) -> BGRImage:
    """A mid-grey image of the model's input size (64x64 for models without one)."""
    width, height = (spec.input.width, spec.input.height) if spec.input else (_WARMUP_SIDE, _WARMUP_SIDE)
    return np.full((height, width, 3), 114, np.uint8)


class ModelInstance:
    """A predictor and the one thread that runs it. Build it with :meth:`open`."""

    def __init__(self, predictor: Predictor, executor: ThreadPoolExecutor, index: int) -> None:
        self.predictor = predictor
        self.index = index
        self._executor = executor

    @classmethod
    async def open(cls, spec: ModelSpec, index: int, load: Callable[[ModelSpec], Predictor]) -> ModelInstance:
        """Load instance ``index`` of ``spec`` with ``load`` in the instance's own thread, on its
        device when the spec lists ``devices`` (see :func:`~visionserve.models.devices.spec_for_instance`).

        Raises whatever ``load`` raises (:class:`~visionserve.errors.ModelLoadError` and kin).
        """
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{spec.name}-{index}")
        try:
            on_device = spec_for_instance(spec, index)
            predictor = await asyncio.get_running_loop().run_in_executor(executor, load, on_device)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(predictor, executor, index)

    async def run(self, items: list[BatchItem]) -> list[ItemResult | InputError]:
        """:func:`run_items` in this instance's thread."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, run_items, self.predictor, items)

    async def warm_up(self) -> None:
        """One forward pass on a blank image, so that the first request does not pay for lazy
        initialisation (OpenCV allocates its layers on the first forward)."""
        image = warmup_image(self.predictor.spec)
        item = BatchItem(DecodedImage(image, image.shape[1], image.shape[0]), PredictOptions(), time.perf_counter())
        await self.run([item])

    async def close(self) -> None:
        """Release the predictor in its thread, then stop the thread."""
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self.predictor.close)
        finally:
            self._executor.shutdown(wait=False)
