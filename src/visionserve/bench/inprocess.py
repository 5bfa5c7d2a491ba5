"""The model with no server: encoded bytes in, :class:`Answer` out, as the server's instances do it.

Each call decodes its images the way the server does (a large JPEG at reduced size, never below
what the model needs: :func:`~visionserve.serving.instances.decode_for_model`), runs one forward
pass over the batch on an instance borrowed from an :class:`InstancePool`, and maps the boxes back
to the image's pixels. A pool holds ``min(concurrency, cores)`` instances; with OpenCV DNN models a
lone caller gets every core and several callers one OpenCV thread each (the server's thread
governor makes the same choice, see :mod:`visionserve.serving.threads`); LiteRT instances get an
equal share of the cores when they are built.
"""

from __future__ import annotations

import contextlib
import os
import queue
from collections.abc import Callable, Iterator, Sequence

from visionserve.bench.answers import Answer, Tolerance, answer_of, difference
from visionserve.bench.wire import BenchImage
from visionserve.core.images import DEFAULT_MAX_PIXELS
from visionserve.models.loading import load_model
from visionserve.models.spec import ModelSpec
from visionserve.pipeline import Predictor
from visionserve.serving.instances import decode_for_model, warmup_image
from visionserve.serving.manager import session_threads, uses_opencv_threads
from visionserve.serving.threads import set_opencv_threads

WRONG_ANSWER = "wrong answer"


class InstancePool:
    """``count`` loaded and warmed-up instances of ``spec`` that threads borrow one at a time."""

    def __init__(self, spec: ModelSpec, count: int, load: Callable[[ModelSpec], Predictor] = load_model) -> None:
        cores = os.cpu_count() or 1
        self.spec = spec
        if uses_opencv_threads(spec):
            set_opencv_threads(cores if count == 1 else 1)
        self._free: queue.SimpleQueue[Predictor] = queue.SimpleQueue()
        self._all: list[Predictor] = []
        try:
            for _ in range(count):
                predictor = load(session_threads(spec, count, cores))
                self._all.append(predictor)
                predictor.infer([warmup_image(spec)])  # the first pass allocates: keep it out of the figures
                self._free.put(predictor)
        except BaseException:
            self.close()
            raise

    @contextlib.contextmanager
    def borrow(self) -> Iterator[Predictor]:
        predictor = self._free.get()
        try:
            yield predictor
        finally:
            self._free.put(predictor)

    def answers(self, images: Sequence[BenchImage]) -> list[Answer]:
        """One :class:`Answer` per image, all in one forward pass."""
        decoded = [decode_for_model(image.data, DEFAULT_MAX_PIXELS, self.spec.input) for image in images]
        with self.borrow() as predictor:
            result = predictor.infer([d.image for d in decoded])
            labels = predictor.labels
        return [answer_of(p.scaled(*d.scale), labels) for p, d in zip(result.predictions, decoded, strict=True)]

    def close(self) -> None:
        for predictor in self._all:
            predictor.close()
        self._all.clear()


class ModelWorker:
    """A :class:`~visionserve.bench.loop.Worker` that runs batches of ``batch`` images (taken in
    turn, starting at ``offset``) and checks each answer against ``references`` (one per image)."""

    def __init__(
        self,
        pool: InstancePool,
        images: Sequence[BenchImage],
        references: Sequence[Answer],
        batch: int,
        offset: int,
        tolerance: Tolerance,
    ) -> None:
        self._pool, self._images, self._references = pool, images, references
        self._batch, self._next, self._tolerance = batch, offset, tolerance

    def __call__(self) -> str | None:
        indices = [(self._next + k) % len(self._images) for k in range(self._batch)]
        self._next = (self._next + self._batch) % len(self._images)
        answers = self._pool.answers([self._images[i] for i in indices])
        for index, answer in zip(indices, answers, strict=True):
            if difference(self._references[index], answer, self._tolerance) is not None:
                return WRONG_ANSWER
        return None

    def close(self) -> None:
        """Nothing to release: the pool owns the instances."""
