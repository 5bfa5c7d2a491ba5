"""Decoders: pure functions from raw network outputs to per-image candidates (boxes, masks, keypoints) or class scores.

Each module registers its :class:`~visionserve.models.spec.OutputLayout` names; see :mod:`.base`.
"""

import importlib

_BUILTIN = ("ssd", "yolo_ultralytics", "yolo_region", "darknet_yolo", "yolo_seg", "mask_rcnn", "pose", "classify")


def load_builtin() -> None:
    """Import the built-in decoder modules so that they register themselves."""
    for name in _BUILTIN:
        importlib.import_module(f"visionserve.decoders.{name}")
