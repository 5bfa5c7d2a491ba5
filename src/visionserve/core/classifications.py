"""The value of classify models: the top classes of one image, highest confidence first."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from visionserve.core.thresholds import Threshold, keep_mask
from visionserve.types import FloatArray, IntArray


@dataclass(frozen=True, eq=False)
class Classifications:
    """K classes of one image: ``class_id (K,) int32`` and ``confidence (K,) float32``, sorted highest
    confidence first on construction (stable for ties). Immutable; raises ``ValueError`` naming the
    wrong shape."""

    class_id: IntArray
    confidence: FloatArray

    def __post_init__(self) -> None:
        class_id = np.asarray(self.class_id, np.int32)
        confidence = np.asarray(self.confidence, np.float32)
        class_id = class_id.reshape(0) if class_id.size == 0 else class_id
        confidence = confidence.reshape(0) if confidence.size == 0 else confidence
        if class_id.ndim != 1:
            raise ValueError(f"class_id must have shape (K,), got {class_id.shape}")
        if confidence.shape != class_id.shape:
            raise ValueError(f"confidence must have shape {class_id.shape}, got {confidence.shape}")
        order = np.argsort(-confidence, kind="stable")
        for name, column in (("class_id", class_id[order]), ("confidence", confidence[order])):
            frozen = np.ascontiguousarray(column)
            frozen.flags.writeable = False
            object.__setattr__(self, name, frozen)

    @classmethod
    def from_scores(cls, scores: FloatArray) -> Classifications:
        """Every class of a ``(C,)`` score vector, class ``i`` having ``scores[i]``."""
        vector = np.asarray(scores, np.float32).reshape(-1)
        return cls(np.arange(len(vector), dtype=np.int32), vector)

    @classmethod
    def empty(cls) -> Classifications:
        return cls(np.zeros(0, np.int32), np.zeros(0, np.float32))

    def __len__(self) -> int:
        return len(self.class_id)

    def filter(
        self, min_confidence: Threshold = 0.0, classes: frozenset[int] | None = None, top_k: int | None = None
    ) -> Classifications:
        """Classes at or above ``min_confidence``, among ``classes`` (all when None), at most ``top_k``."""
        keep = keep_mask(self.confidence, self.class_id, min_confidence)
        if classes is not None:
            keep &= np.isin(self.class_id, np.fromiter(classes, dtype=np.int32, count=len(classes)))
        class_id, confidence = self.class_id[keep], self.confidence[keep]
        return Classifications(class_id[:top_k], confidence[:top_k])

    def scaled(self, sx: float, sy: float) -> Classifications:
        """The same value: classes do not depend on the image size (so any prediction can be scaled)."""
        return self

    @property
    def top(self) -> tuple[int, float] | None:
        """``(class_id, confidence)`` of the best class, None when empty."""
        return (int(self.class_id[0]), float(self.confidence[0])) if len(self) else None
