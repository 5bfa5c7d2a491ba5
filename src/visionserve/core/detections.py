"""The boxes-with-extras value of detect, segment and pose models, from decoder to renderer to JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from visionserve.core.candidates import CandidateLabels
from visionserve.core.masks import InstanceMasks, MaskPatch
from visionserve.core.thresholds import Threshold, keep_mask
from visionserve.types import FloatArray, IntArray


def _frozen(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
    array = np.ascontiguousarray(array)
    array.flags.writeable = False
    return array


@dataclass(frozen=True, eq=False)
class Detections:
    """An immutable set of N detections on one image.

    Attributes:
        xyxy: ``(N, 4) float32`` boxes as ``x1, y1, x2, y2`` in pixels of the source image.
        confidence: ``(N,) float32`` scores in ``[0, 1]``.
        class_id: ``(N,) int32`` class ids, as the model's label map numbers them.
        masks: optional :class:`InstanceMasks`, compact (one small bitmap per instance over a region
            in the same pixels as the boxes); :meth:`mask_patch` rasterises one.
        keypoints: optional ``(N, K, 3) float32`` keypoints as ``x, y, score`` in the boxes' pixels.
        tracker_id: optional ``(N,) int32`` track ids.
        candidates: optional :class:`CandidateLabels`, every label proposed for each box with its
            score (analysis modules); ``class_id`` and ``confidence`` hold the best of them.

    Construction validates shapes and raises ``ValueError`` naming the wrong one. The arrays are
    read-only; methods that filter or transform return a new value.
    """

    xyxy: FloatArray
    confidence: FloatArray
    class_id: IntArray
    masks: InstanceMasks | None = None
    keypoints: FloatArray | None = None
    tracker_id: IntArray | None = None
    candidates: CandidateLabels | None = None
    _n: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        xyxy = np.asarray(self.xyxy, dtype=np.float32)
        if xyxy.size == 0:
            xyxy = xyxy.reshape(0, 4)
        if xyxy.ndim != 2 or xyxy.shape[1] != 4:
            raise ValueError(f"xyxy must have shape (N, 4), got {xyxy.shape}")
        n = xyxy.shape[0]
        values: dict[str, npt.NDArray[Any] | None] = {
            "xyxy": xyxy,
            "confidence": self._column("confidence", self.confidence, np.float32, (n,)),
            "class_id": self._column("class_id", self.class_id, np.int32, (n,)),
            "keypoints": self._optional("keypoints", self.keypoints, np.float32, n, 3),
            "tracker_id": self._optional("tracker_id", self.tracker_id, np.int32, n, 1),
        }
        for name, value in values.items():
            object.__setattr__(self, name, None if value is None else _frozen(value))
        if self.masks is not None and len(self.masks) != n:
            raise ValueError(f"masks must have {n} instances, got {len(self.masks)}")
        if self.candidates is not None and len(self.candidates) != n:
            raise ValueError(f"candidates must have {n} rows, got {len(self.candidates)}")
        object.__setattr__(self, "_n", n)

    @staticmethod
    def _column(name: str, value: Any, dtype: type, shape: tuple[int, ...]) -> npt.NDArray[Any]:
        array: npt.NDArray[Any] = np.asarray(value, dtype=dtype)
        if array.shape != shape:
            raise ValueError(f"{name} must have shape {shape}, got {np.shape(value)}")
        return array

    @staticmethod
    def _optional(name: str, value: Any, dtype: type, n: int, ndim: int) -> npt.NDArray[Any] | None:
        if value is None:
            return None
        array: npt.NDArray[Any] = np.asarray(value, dtype=dtype)
        if array.ndim != ndim or array.shape[0] != n:
            raise ValueError(f"{name} must have {ndim} dimensions and {n} rows, got shape {array.shape}")
        return array

    @classmethod
    def empty(cls) -> Detections:
        """A value with no detections."""
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32))

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, index: slice | npt.NDArray[np.bool_] | npt.NDArray[np.integer[Any]]) -> Detections:
        """Select rows by slice, boolean mask or index array; returns a new value."""

        def pick(array: npt.NDArray[Any] | None) -> npt.NDArray[Any] | None:
            return None if array is None else array[index]

        return Detections(
            self.xyxy[index],
            self.confidence[index],
            self.class_id[index],
            masks=None if self.masks is None else self.masks[index],
            keypoints=pick(self.keypoints),
            tracker_id=pick(self.tracker_id),
            candidates=None if self.candidates is None else self.candidates[index],
        )

    def sorted_by_confidence(self) -> Detections:
        """The same detections, highest confidence first (stable for ties)."""
        return self[np.argsort(-self.confidence, kind="stable")]

    def filter(
        self,
        min_confidence: Threshold = 0.0,
        classes: frozenset[int] | None = None,
        max_det: int | None = None,
    ) -> Detections:
        """Keep detections at or above ``min_confidence``, of ``classes`` (all when None), the
        ``max_det`` most confident (all when None)."""
        keep = keep_mask(self.confidence, self.class_id, min_confidence)
        if classes is not None:
            keep &= np.isin(self.class_id, np.fromiter(classes, dtype=np.int32, count=len(classes)))
        result = self[keep]
        if max_det is not None and len(result) > max_det:
            result = result.sorted_by_confidence()[:max_det]
        return result

    def scaled(self, sx: float, sy: float) -> Detections:
        """Boxes, mask regions and keypoints multiplied by ``sx`` along x and ``sy`` along y."""
        factors = np.array([sx, sy, sx, sy], dtype=np.float32)
        keypoints = None
        if self.keypoints is not None:
            keypoints = self.keypoints * np.array([sx, sy, 1.0], dtype=np.float32)
        masks = None if self.masks is None else self.masks.with_regions(self.masks.regions * factors)
        return Detections(
            self.xyxy * factors,
            self.confidence,
            self.class_id,
            masks=masks,
            keypoints=keypoints,
            tracker_id=self.tracker_id,
            candidates=self.candidates,
        )

    def mask_patch(self, index: int, height: int, width: int) -> MaskPatch:
        """The mask of detection ``index`` rasterised on a ``width x height`` image (boxes must be in
        that image's pixels), limited to its box. Raises ``ValueError`` when there are no masks."""
        if self.masks is None:
            raise ValueError("these detections have no masks")
        return self.masks.patch(index, self.xyxy[index], height, width)
