"""Analysis modules: model folders written for other platforms, served unchanged.

A module is a folder whose ``main.py`` holds a class that loads its model in ``__init__`` (paths
relative to its folder) and answers ``inference_by_path(image_path)`` with
``[[(x, y, w, h), {label: probability, ...}], ...]``. :mod:`visionserve.models.module_specs` finds
them in the model repository; :mod:`.loader` imports and builds one inside its folder; :mod:`.answers`
turns answers into :class:`~visionserve.core.detections.Detections` (every proposed label kept as
candidates); :mod:`.model` serves one behind the predictor protocol.
"""

from visionserve.modules.model import ModuleModel, load_module_model, module_labels

__all__ = ["ModuleModel", "load_module_model", "module_labels"]
