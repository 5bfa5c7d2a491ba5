"""A confidence threshold: one number for every class, or one per class (``conf=best``).

A per-class threshold is a mapping of class id to threshold whose ``-1`` entry (:data:`OTHER`) is the
threshold of the classes it does not list.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeAlias

import numpy as np

from visionserve.types import BoolArray, FloatArray, IntArray

#: The entry of a per-class threshold that holds the threshold of unlisted classes.
OTHER = -1

#: One threshold for all classes, or a threshold per class id (with an :data:`OTHER` entry).
Threshold: TypeAlias = float | Mapping[int, float]


def keep_mask(scores: FloatArray, class_ids: IntArray, threshold: Threshold) -> BoolArray:
    """Rows whose score reaches their class's threshold."""
    if not isinstance(threshold, Mapping):
        return np.asarray(scores >= threshold)
    other = threshold.get(OTHER, 0.0)
    per_row = np.array([threshold.get(int(c), other) for c in class_ids], np.float32).reshape(np.shape(scores))
    return np.asarray(scores >= per_row)


def floor_of(threshold: Threshold) -> float:
    """The lowest score any class keeps (what a decoder runs at before the per-class filter)."""
    return min(threshold.values()) if isinstance(threshold, Mapping) else float(threshold)
