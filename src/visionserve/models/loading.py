"""Turn a spec into a ready :class:`~visionserve.pipeline.Predictor`."""

from __future__ import annotations

from pathlib import Path

from visionserve.backends.registry import open_session
from visionserve.models.labels import Labels, read_labels_file
from visionserve.models.spec import BackendKind, ModelSpec
from visionserve.pipeline import NetworkModel, Predictor
from visionserve.plugins import PluginModel, import_plugin


def spec_labels(spec: ModelSpec) -> Labels:
    """The label map of ``spec``: inline list or mapping, or a file relative to the spec."""
    if isinstance(spec.labels, Path):
        return read_labels_file(spec.path(spec.labels))
    if isinstance(spec.labels, dict):
        return Labels(spec.labels)
    return Labels.from_list(spec.labels)


def load_model(spec: ModelSpec) -> Predictor:
    """Load one instance of ``spec``. Raises :class:`~visionserve.errors.ModelLoadError`."""
    labels = spec_labels(spec)
    if spec.backend is BackendKind.PLUGIN:
        plugin = import_plugin(spec.plugin or "", search_path=str(spec.root))
        plugin.load(spec)
        return PluginModel(spec, plugin, labels)
    return NetworkModel(spec, open_session(spec), labels)
