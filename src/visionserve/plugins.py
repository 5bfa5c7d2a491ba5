"""Plain Python plugins: any class with ``load`` and ``predict`` named in ``model.yaml``.

``model.yaml``::

    name: my-detector
    backend: plugin
    plugin: my_package.detector:MyDetector
    labels: [widget, gadget]
    options: {sensitivity: 3}

The class is built with no arguments; ``load(spec)`` gets the validated spec (``spec.root`` is the
folder of the yaml, ``spec.options`` the free-form options) and ``predict(images)`` gets a list of
``(H, W, 3) uint8`` BGR images and returns one prediction per image: a :class:`Detections` (boxes in
its pixels, with masks or keypoints if it has them) or a :class:`Classifications`. Thresholds, class
filter and ``max_det`` (or ``top_k`` for classes) are applied by visionserve afterwards.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Protocol, runtime_checkable

from visionserve.core.classifications import Classifications
from visionserve.core.detections import Detections
from visionserve.core.prediction import Prediction
from visionserve.errors import InferenceError, ModelLoadError
from visionserve.models.labels import Labels
from visionserve.models.spec import ModelSpec
from visionserve.pipeline import BatchResult, PredictOptions, StageTimings, class_thresholds
from visionserve.types import BGRImage

#: Held while a plugin module runs its import (see :func:`_exec_from_file`).
_LOADING = threading.RLock()


@runtime_checkable
class Plugin(Protocol):
    def load(self, spec: ModelSpec) -> None: ...

    def predict(self, images: list[BGRImage]) -> list[Prediction]: ...


def _load_module(module_name: str, search_path: str | None, namespace: str) -> ModuleType:
    """The plugin's module, imported without touching ``sys.path``.

    When the first part of ``module_name`` is a file (``name.py``) or a package folder
    (``name/__init__.py``) in ``search_path`` (the model's folder), it is loaded from there by
    location under a name of its own (``visionserve_plugins.<namespace>.<name>``): two models whose
    plugins share a name never share code, and a file of the model's folder (a ``yaml.py``, say)
    never shadows an installed module. Inside such a package, modules import each other relatively
    (``from . import helpers``). Anything else is imported as usual, from the installed packages.
    """
    head, dot, rest = module_name.partition(".")
    folder = Path(search_path) if search_path else None
    unique = f"visionserve_plugins.{namespace}.{head}"
    if folder is not None and (folder / head / "__init__.py").is_file():
        package = _exec_from_file(unique, folder / head / "__init__.py", folder / head)
        return importlib.import_module(f"{unique}.{rest}") if dot else package
    if folder is not None and not dot and (folder / f"{head}.py").is_file():
        return _exec_from_file(unique, folder / f"{head}.py", None)
    return importlib.import_module(module_name)


def _exec_from_file(unique: str, file: Path, package_dir: Path | None) -> ModuleType:
    """Load ``file`` as the module ``unique`` (a package searching ``package_dir`` for its
    submodules when given), registered in ``sys.modules`` so that its submodules can import it.
    Each call runs the file afresh (a model loaded again after an edit gets the new code), dropping
    the submodules that an earlier load left; loads run one at a time, because the instances of a
    model load in parallel threads and code run at import (dataclasses) looks itself up in
    ``sys.modules``."""
    locations = None if package_dir is None else [str(package_dir)]
    module_spec = importlib.util.spec_from_file_location(unique, file, submodule_search_locations=locations)
    if module_spec is None or module_spec.loader is None:
        raise ModelLoadError(f"cannot load plugin module {file}")
    with _LOADING:
        for name in [name for name in sys.modules if name.startswith(f"{unique}.")]:
            del sys.modules[name]
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[unique] = module
        module_spec.loader.exec_module(module)
    return module


def import_plugin(dotted: str, search_path: str | None = None, namespace: str = "default") -> Plugin:
    """Import ``package.module:ClassName`` (a one-file module from ``search_path``, see
    :func:`_load_module`) and build an instance. Any failure is a :class:`ModelLoadError`."""
    module_name, _, class_name = dotted.partition(":")
    try:
        cls = getattr(_load_module(module_name, search_path, namespace), class_name)
        instance = cls()
    except ModelLoadError:
        raise
    except Exception as exc:  # a plugin's import or constructor may raise anything
        raise ModelLoadError(f"cannot import plugin {dotted!r}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(instance, Plugin):
        raise ModelLoadError(f"plugin {dotted!r} must define load(spec) and predict(images)")
    return instance


def import_decoder_module(module_name: str, search_path: str | None = None, namespace: str = "default") -> None:
    """Import the module that registers a model's own decoder layout (see
    :func:`visionserve.decoders.base.register`). Any failure is a :class:`ModelLoadError`."""
    try:
        _load_module(module_name, search_path, f"{namespace}.decoders")
    except ModelLoadError:
        raise
    except Exception as exc:  # third-party code may raise anything on import
        raise ModelLoadError(f"cannot import decoder module {module_name!r}: {type(exc).__name__}: {exc}") from exc


class PluginModel:
    """A plugin behind the :class:`~visionserve.pipeline.Predictor` protocol."""

    def __init__(self, spec: ModelSpec, plugin: Plugin, labels: Labels) -> None:
        self._spec = spec
        self._plugin = plugin
        self._labels = labels

    @property
    def spec(self) -> ModelSpec:
        return self._spec

    @property
    def labels(self) -> Labels:
        return self._labels

    def infer(self, images: Sequence[BGRImage], options: PredictOptions | None = None) -> BatchResult:
        options = options or PredictOptions()
        start = time.perf_counter()
        found = self._plugin.predict(list(images))
        elapsed = (time.perf_counter() - start) * 1000.0
        if len(found) != len(images) or not all(isinstance(d, Detections | Classifications) for d in found):
            raise InferenceError(
                f"plugin {self._spec.plugin!r} must return one Detections or Classifications per image "
                f"({len(images)} images, got {len(found)} results)"
            )
        return BatchResult([self._filter(p, options) for p in found], StageTimings(inference_ms=elapsed))

    def _filter(self, prediction: Prediction, options: PredictOptions) -> Prediction:
        thresholds = self._spec.thresholds
        conf = class_thresholds(self._spec, self._labels, options.conf)
        if isinstance(prediction, Classifications):
            return prediction.filter(conf, options.classes, options.top_k or thresholds.top_k)
        return prediction.filter(conf, options.classes, options.max_det or thresholds.max_det)

    def predict(self, images: Sequence[BGRImage], options: PredictOptions | None = None) -> list[Prediction]:
        return self.infer(images, options).predictions

    def close(self) -> None:
        close = getattr(self._plugin, "close", None)
        if callable(close):
            close()
