"""An analysis module behind the :class:`~visionserve.pipeline.Predictor` protocol.

Each image of a batch is written to a private temporary file (a folder of the instance's own, mode
0700; the file is deleted as soon as the module has answered) and handed to ``inference_by_path`` in
the instance's thread. Boxes come back in that picture's pixels, which are the pixels of the image
visionserve decoded, so they map to the source like any model's.

Class ids: the labels the spec declares (``labels`` in ``model.yaml``, or a ``labels.txt`` beside
``main.py``) keep their ids; other labels get ids in order of first appearance, in a
:class:`~visionserve.models.labels.LabelBook` shared by every instance of the model in this process
(and kept across reloads), so that an id never changes while the process lives. Processes (Celery
workers) number undeclared labels on their own: declare the labels when ids must agree.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2

from visionserve.core.prediction import Prediction
from visionserve.core.thresholds import Threshold
from visionserve.errors import InferenceError, ModelSpecError, VisionServeError
from visionserve.models.labels import LabelBook, Labels
from visionserve.models.spec import ModelSpec, ModuleSection
from visionserve.modules.answers import to_detections
from visionserve.modules.loader import build_module
from visionserve.pipeline import BatchResult, PredictOptions, StageTimings, class_thresholds
from visionserve.types import BGRImage

_BOOKS: dict[tuple[str, str, tuple[tuple[int, str], ...]], LabelBook] = {}
_BOOKS_LOCK = threading.Lock()


def module_labels(spec: ModelSpec, declared: Labels) -> LabelBook:
    """The label book of the module of ``spec`` in this process: one per folder, name and declared
    labels, so that the manager, every instance and a reload all number labels alike. It holds
    names only (never a model), at most :class:`LabelBook`'s limit of them."""
    key = (str(spec.root.resolve()), spec.name, tuple(sorted(declared.as_dict().items())))
    with _BOOKS_LOCK:
        book = _BOOKS.get(key)
        if book is None:
            book = _BOOKS[key] = LabelBook(declared)
        return book


def _section(spec: ModelSpec) -> ModuleSection:
    if spec.module is None or spec.module.class_name is None:
        raise ModelSpecError(f"{spec.source}: an analysis module needs its class (module: {{class: Name}})")
    return spec.module


def load_module_model(spec: ModelSpec, labels: LabelBook) -> ModuleModel:
    """Import and build the module of ``spec`` (on ``spec.devices[0]`` when the spec names a device,
    see :func:`~visionserve.modules.loader.device_arguments`). Raises :class:`ModelLoadError` or
    :class:`ModelSpecError`."""
    section = _section(spec)
    device = spec.devices[0] if spec.devices else None
    class_name = section.class_name or ""
    instance = build_module(spec.root, section.file, class_name, spec.name, spec.options, device)
    return ModuleModel(spec, instance, labels)


class ModuleModel:
    """One built module; serves one caller at a time (each instance runs in its own thread)."""

    def __init__(self, spec: ModelSpec, module: Any, labels: LabelBook) -> None:
        self._spec = spec
        self._module = module
        self._labels = labels
        self._suffix = "." + _section(spec).image_format.value
        self._folder = Path(tempfile.mkdtemp(prefix=f"visionserve-{spec.name}-"))
        self._source = f"analysis module {spec.name!r}"

    @property
    def spec(self) -> ModelSpec:
        return self._spec

    @property
    def labels(self) -> Labels:
        return self._labels

    def infer(self, images: Sequence[BGRImage], options: PredictOptions | None = None) -> BatchResult:
        options = options or PredictOptions()
        start = time.perf_counter()
        found = [self._one(image).filter(*self._limits(options)) for image in images]
        predictions: list[Prediction] = list(found)
        return BatchResult(predictions, StageTimings(inference_ms=(time.perf_counter() - start) * 1000.0))

    def predict(self, images: Sequence[BGRImage], options: PredictOptions | None = None) -> list[Prediction]:
        return self.infer(images, options).predictions

    def _limits(self, options: PredictOptions) -> tuple[Threshold, frozenset[int] | None, int]:
        conf = class_thresholds(self._spec, self._labels, options.conf)  # conf=best: the saved per-class ones
        return conf, options.classes, options.max_det or self._spec.thresholds.max_det

    def _one(self, image: BGRImage) -> Any:
        ok, encoded = cv2.imencode(self._suffix, image)
        if not ok:
            raise InferenceError(f"{self._source}: cannot write the picture as {self._suffix}")
        path = self._folder / f"{uuid.uuid4().hex}{self._suffix}"
        try:
            path.write_bytes(encoded.tobytes())
            answer = self._module.inference_by_path(str(path))
        except VisionServeError:
            raise
        except Exception as exc:  # the module's own code may raise anything
            raise InferenceError(f"{self._source} failed: {type(exc).__name__}: {exc}") from exc
        finally:
            path.unlink(missing_ok=True)
        return to_detections(answer, self._labels.id_for, self._source)

    def close(self) -> None:
        """Call the module's ``close()`` when it has one, and remove the temporary folder."""
        try:
            close = getattr(self._module, "close", None)
            if callable(close):
                close()
        finally:
            shutil.rmtree(self._folder, ignore_errors=True)
