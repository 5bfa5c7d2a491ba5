"""The sweep: which steps run, in which order, with one progress display over all of them.

Against a server with ``--model-alone``, each concurrency level runs the server step and then the
model-alone step, so that a noisy machine affects both alike. In-process, each concurrency level
runs every batch size. Images come from the user's files or folders, or the bundled samples.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

from tqdm import tqdm

from visionserve.bench.answers import Answer, Tolerance, difference
from visionserve.bench.inprocess import InstancePool, ModelWorker
from visionserve.bench.loop import StepResult, Worker, run_step
from visionserve.bench.remote import HttpWorker, Target, default_model, prepare
from visionserve.bench.report import MODEL_ALONE, Row, with_ratios
from visionserve.bench.wire import CODECS, BenchImage
from visionserve.core.images import read_header
from visionserve.errors import ImageDecodeError, InvalidParameterError
from visionserve.models.spec import ModelSpec

#: The bundled sample photos (``visionserve/data``; licences in ``data/SAMPLES.md``).
Tick = Callable[[float], None]
SAMPLES = ("sample-astronaut.jpg", "sample-chelsea.jpg")


def load_images(paths: Sequence[Path]) -> list[BenchImage]:
    """``paths`` read as images (size from the header; nothing decoded), or the bundled samples."""
    if not paths:
        folder = resources.files("visionserve.data")
        return [_image(name, (folder / name).read_bytes()) for name in SAMPLES]
    images = []
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ImageDecodeError(f"cannot read {path}: {exc.strerror}") from exc
        images.append(_image(str(path), data))
    return images


def _image(name: str, data: bytes) -> BenchImage:
    try:
        header = read_header(data)
    except ImageDecodeError as exc:
        raise ImageDecodeError(f"{name}: {exc}") from exc
    return BenchImage(name, data, header.width, header.height)


@dataclass(frozen=True)
class Plan:
    """The steps' parameters: concurrency levels, batch sizes (in-process), seconds per step."""

    concurrency: tuple[int, ...]
    batches: tuple[int, ...] = (1,)
    duration: float = 10.0
    warmup: float = 2.0
    tolerance: Tolerance = field(default_factory=Tolerance)

    def __post_init__(self) -> None:
        if not self.concurrency or min(self.concurrency) < 1 or not self.batches or min(self.batches) < 1:
            raise InvalidParameterError("concurrency levels and batch sizes must be whole numbers of at least 1")
        if self.duration <= 0 or self.warmup < 0:
            raise InvalidParameterError("the duration must be positive and the warm-up not negative")


class Progress:
    """A bar over the seconds of the whole sweep on stderr (hidden when stderr is not a terminal)."""

    def __init__(self, steps: int, plan: Plan) -> None:
        self._per_step = plan.warmup + plan.duration
        shape = "{l_bar}{bar}| {n:.0f}/{total:.0f} s"
        self._bar = tqdm(
            total=round(steps * self._per_step, 1), file=sys.stderr, bar_format=shape, disable=None, leave=False
        )
        self._done = 0.0

    def step(self, label: str) -> Tick:
        """The tick function of the next step (``label`` shows beside the bar)."""
        self._bar.set_description(label)
        base = self._done
        self._done += self._per_step

        def tick(elapsed: float) -> None:
            self._bar.n = round(base + min(elapsed, self._per_step), 1)
            self._bar.refresh()

        return tick

    def close(self) -> None:
        self._bar.close()


def _alone_step(
    spec: ModelSpec, images: Sequence[BenchImage], refs: Sequence[Answer], c: int, b: int, plan: Plan, tick: Tick
) -> StepResult:
    """One in-process step: ``c`` threads sharing ``min(c, cores)`` instances, batches of ``b``."""
    pool = InstancePool(spec, min(c, os.cpu_count() or 1))

    def worker(i: int) -> Worker:
        return ModelWorker(pool, images, refs, b, i * b, plan.tolerance)

    try:
        return run_step(worker, c, plan.duration, plan.warmup, images_per_call=b, on_tick=tick)
    finally:
        pool.close()


def alone_references(spec: ModelSpec, images: Sequence[BenchImage]) -> list[Answer]:
    """Each image's answer alone, in-process (one instance, one image at a time)."""
    pool = InstancePool(spec, 1)
    try:
        return [pool.answers([image])[0] for image in images]
    finally:
        pool.close()


def run_inprocess(spec: ModelSpec, images: Sequence[BenchImage], plan: Plan, target: str = "in-process") -> list[Row]:
    """Every (concurrency, batch) step of the model in this process."""
    refs = alone_references(spec, images)
    progress = Progress(len(plan.concurrency) * len(plan.batches), plan)
    rows = []
    try:
        for c in plan.concurrency:
            for b in plan.batches:
                tick = progress.step(f"{target} c={c} b={b}")
                rows.append(Row(target, _alone_step(spec, images, refs, c, b, plan, tick)))
    finally:
        progress.close()
    return rows


@dataclass(frozen=True)
class ServerRun:
    """The rows of a server sweep, the model that answered, and what the run found worth saying."""

    rows: list[Row]
    model: str
    notes: list[str]


def run_server(target: Target, images: Sequence[BenchImage], plan: Plan, alone: ModelSpec | None) -> ServerRun:
    """The server at every concurrency level (each followed by the model alone when ``alone``)."""
    model = target.model or default_model(target, images[0])
    if CODECS[target.protocol].needs_model_name:
        target = replace(target, model=model)
    requests, refs = prepare(target, images)
    notes = []
    alone_refs = alone_references(alone, images) if alone is not None else []
    for image, ref, mine in zip(images, refs, alone_refs, strict=False):
        if difference(ref, mine, plan.tolerance) is not None:
            notes.append(f"the model alone answers {image.name} differently from the server: is it the same model?")
    label = f"server {target.protocol}"
    progress = Progress(len(plan.concurrency) * (2 if alone is not None else 1), plan)
    rows = []
    try:
        for c in plan.concurrency:

            def worker(i: int) -> Worker:
                return HttpWorker(target, images, requests, refs, i, plan.tolerance)

            tick = progress.step(f"{label} c={c}")
            rows.append(Row(label, run_step(worker, c, plan.duration, plan.warmup, on_tick=tick)))
            if alone is not None:
                tick = progress.step(f"{MODEL_ALONE} c={c}")
                rows.append(Row(MODEL_ALONE, _alone_step(alone, images, alone_refs, c, 1, plan, tick)))
    finally:
        progress.close()
    return ServerRun(with_ratios(rows), model, notes)
