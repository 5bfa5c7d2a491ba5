"""Decoders: pure functions from raw network outputs to per-image candidate boxes.

Each module registers one :class:`~visionserve.models.spec.OutputLayout`; see :mod:`.base`.
"""

import importlib

_BUILTIN = ("ssd", "yolo_ultralytics", "yolo_region", "darknet_yolo")


def load_builtin() -> None:
    """Import the built-in decoder modules so that they register themselves."""
    for name in _BUILTIN:
        importlib.import_module(f"visionserve.decoders.{name}")
