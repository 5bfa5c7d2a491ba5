"""Class-aware non-maximum suppression."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from visionserve.types import FloatArray, IntArray


def class_aware_nms(xyxy: FloatArray, scores: FloatArray, class_ids: IntArray, iou: float) -> npt.NDArray[np.intp]:
    """Indices of the boxes kept by NMS run separately per class, highest score first.

    ``xyxy`` is ``(N, 4)`` float32; ``scores`` ``(N,)``; ``class_ids`` ``(N,)``. Boxes of different
    classes never suppress each other. ``iou`` is the overlap above which the lower score is dropped.
    """
    if len(xyxy) == 0:
        return np.zeros(0, dtype=np.intp)
    xywh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)
    kept = cv2.dnn.NMSBoxesBatched(
        xywh.astype(np.float32).tolist(),
        scores.astype(np.float32).tolist(),
        class_ids.astype(np.int32).tolist(),
        score_threshold=0.0,
        nms_threshold=float(iou),
    )
    keep: npt.NDArray[np.intp] = np.asarray(kept, dtype=np.intp).reshape(-1)
    order: npt.NDArray[np.intp] = keep[np.argsort(-scores[keep], kind="stable")]
    return order
