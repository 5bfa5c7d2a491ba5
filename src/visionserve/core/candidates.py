"""Candidate labels of each detection: every label a model proposed for a box, with its score.

Analysis modules (see :mod:`visionserve.modules`) answer several labels per box; the detection's
class is the best of them and the others are kept here, so that the native answer can list them all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from visionserve.types import FloatArray, IntArray

#: The class id of an empty slot (a row with fewer candidates than the widest row).
NO_CLASS = -1


@dataclass(frozen=True, eq=False)
class CandidateLabels:
    """``N`` rows of up to ``K`` candidate labels.

    Attributes:
        class_id: ``(N, K) int32`` class ids, each row highest score first; :data:`NO_CLASS` pads the
            rows that have fewer than ``K`` candidates (always at the end of the row).
        score: ``(N, K) float32`` the scores of those classes (0 in padded slots).

    Construction validates the shapes (``ValueError`` naming the wrong one); the arrays are read-only.
    """

    class_id: IntArray
    score: FloatArray
    _n: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        ids = np.asarray(self.class_id, dtype=np.int32)
        scores = np.asarray(self.score, dtype=np.float32)
        if ids.size == 0:
            ids = ids.reshape(len(ids), 0)
        if scores.size == 0:
            scores = scores.reshape(len(scores), 0)
        if ids.ndim != 2 or scores.shape != ids.shape:
            raise ValueError(f"class_id and score must both have shape (N, K), got {ids.shape} and {scores.shape}")
        for name, value in (("class_id", ids), ("score", scores)):
            frozen: npt.NDArray[Any] = np.ascontiguousarray(value)
            frozen.flags.writeable = False
            object.__setattr__(self, name, frozen)
        object.__setattr__(self, "_n", ids.shape[0])

    @classmethod
    def from_rows(cls, rows: Sequence[Sequence[tuple[int, float]]]) -> CandidateLabels:
        """Rows of ``(class_id, score)`` pairs, each sorted here highest score first (ties keep
        their order) and padded to the widest row."""
        width = max((len(row) for row in rows), default=0)
        ids = np.full((len(rows), width), NO_CLASS, np.int32)
        scores = np.zeros((len(rows), width), np.float32)
        for i, row in enumerate(rows):
            ordered = sorted(row, key=lambda pair: -pair[1])
            ids[i, : len(ordered)] = [pair[0] for pair in ordered]
            scores[i, : len(ordered)] = [pair[1] for pair in ordered]
        return cls(ids, scores)

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, index: slice | npt.NDArray[np.bool_] | npt.NDArray[np.integer[Any]]) -> CandidateLabels:
        """Select rows by slice, boolean mask or index array; returns a new value."""
        return CandidateLabels(self.class_id[index], self.score[index])

    def row(self, index: int) -> list[tuple[int, float]]:
        """The ``(class_id, score)`` candidates of row ``index``, highest score first, no padding."""
        return [
            (int(c), float(s)) for c, s in zip(self.class_id[index], self.score[index], strict=True) if c != NO_CLASS
        ]
