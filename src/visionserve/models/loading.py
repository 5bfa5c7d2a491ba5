"""Turn a spec into a ready :class:`~visionserve.pipeline.Predictor`."""

from __future__ import annotations

from pathlib import Path

from visionserve.backends.registry import open_session
from visionserve.errors import ModelLoadError, VisionServeError
from visionserve.models.keypoints import keypoint_spec
from visionserve.models.labels import LabelBook, Labels, read_labels_file
from visionserve.models.spec import BackendKind, ModelSpec
from visionserve.modules import load_module_model, module_labels
from visionserve.pipeline import NetworkModel, Predictor
from visionserve.plugins import Plugin, PluginModel, import_decoder_module, import_plugin


def spec_labels(spec: ModelSpec) -> Labels:
    """The names of ``spec``: its label map (inline list or mapping, or a file relative to the spec)
    and, for pose models, its keypoint names and skeleton (COCO's when it names none). For an
    analysis module, the process's :class:`LabelBook` of it (its labels grow as it answers)."""
    if isinstance(spec.labels, Path):
        labels = read_labels_file(spec.path(spec.labels))
    elif isinstance(spec.labels, dict):
        labels = Labels(spec.labels)
    else:
        labels = Labels.from_list(spec.labels)
    points = keypoint_spec(spec)
    labels = labels if points is None else labels.with_keypoints(points.names, points.skeleton)
    if spec.backend is BackendKind.MODULE:
        return module_labels(spec, labels)
    return labels


def load_model(spec: ModelSpec) -> Predictor:
    """Load one instance of ``spec``. Raises :class:`~visionserve.errors.ModelLoadError` (also for any
    exception a plugin raises while its module is imported, its class built or its ``load`` runs) or
    :class:`~visionserve.errors.ModelSpecError` for an unreadable labels file."""
    labels = spec_labels(spec)
    if spec.backend is BackendKind.MODULE and isinstance(labels, LabelBook):
        return load_module_model(spec, labels)
    if spec.backend is BackendKind.PLUGIN:
        return PluginModel(spec, _load_plugin(spec), labels)
    if spec.decoder is not None and spec.decoder.module is not None:
        import_decoder_module(spec.decoder.module, search_path=str(spec.root), namespace=spec.name)
    return NetworkModel(spec, open_session(spec), labels)


def _load_plugin(spec: ModelSpec) -> Plugin:
    """Import, build and load the plugin of ``spec``; third-party code, so any exception it raises
    becomes :class:`~visionserve.errors.ModelLoadError` (visionserve's own errors pass unchanged)."""
    try:
        plugin = import_plugin(spec.plugin or "", search_path=str(spec.root), namespace=spec.name)
        plugin.load(spec)
    except VisionServeError:
        raise
    except Exception as exc:
        raise ModelLoadError(f"plugin {spec.plugin!r} failed to load: {type(exc).__name__}: {exc}") from exc
    return plugin
