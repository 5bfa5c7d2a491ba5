from __future__ import annotations

import numpy as np
import pytest

from visionserve.core.detections import Detections
from visionserve.core.masks import InstanceMasks


def make(n: int = 3) -> Detections:
    xyxy = np.array([[0, 0, 10, 10], [5, 5, 20, 20], [1, 2, 3, 4]][:n], dtype=np.float32)
    return Detections(xyxy, np.array([0.9, 0.3, 0.6][:n]), np.array([1, 2, 1][:n]))


def test_arrays_are_typed_and_read_only() -> None:
    d = make()
    assert d.xyxy.dtype == np.float32 and d.confidence.dtype == np.float32 and d.class_id.dtype == np.int32
    with pytest.raises(ValueError, match="read-only"):
        d.xyxy[0, 0] = 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"xyxy": np.zeros((2, 3))}, r"xyxy must have shape \(N, 4\)"),
        ({"confidence": np.zeros(3)}, r"confidence must have shape \(2,\)"),
        ({"class_id": np.zeros((2, 1))}, r"class_id must have shape \(2,\)"),
        ({"keypoints": np.zeros((3, 17, 3))}, "keypoints must have 3 dimensions and 2 rows"),
        ({"masks": InstanceMasks.from_dense(np.ones((3, 4, 4), bool))}, "masks must have 2 instances, got 3"),
        ({"tracker_id": np.zeros(1)}, "tracker_id must have 1 dimensions and 2 rows"),
    ],
)
def test_wrong_shapes_are_named(kwargs: dict[str, np.ndarray], message: str) -> None:
    base = {"xyxy": np.zeros((2, 4)), "confidence": np.zeros(2), "class_id": np.zeros(2)}
    with pytest.raises(ValueError, match=message):
        Detections(**{**base, **kwargs})


def test_empty() -> None:
    d = Detections.empty()
    assert len(d) == 0 and d.xyxy.shape == (0, 4)
    assert len(Detections([], [], [])) == 0


def test_filter_returns_new_value() -> None:
    d = make()
    kept = d.filter(min_confidence=0.5)
    assert len(d) == 3 and kept.confidence.tolist() == pytest.approx([0.9, 0.6])
    assert d.filter(classes=frozenset({2})).class_id.tolist() == [2]
    assert d.filter(max_det=1).confidence.tolist() == pytest.approx([0.9])


def test_sorted_and_scaled() -> None:
    d = make().sorted_by_confidence()
    assert d.confidence.tolist() == pytest.approx([0.9, 0.6, 0.3])
    scaled = d.scaled(2.0, 0.5)
    assert scaled.xyxy[0].tolist() == [0, 0, 20, 5]
    assert d.xyxy[0].tolist() == [0, 0, 10, 10]
