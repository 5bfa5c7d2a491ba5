"""Keypoint names and skeletons: the 17 COCO keypoints unless a ``model.yaml`` names its own."""

from __future__ import annotations

from typing import Any

from visionserve.models.spec import KeypointSpec, ModelSpec, Task

COCO_KEYPOINTS = (
    *("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder"),
    *("left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip"),
    *("left_knee", "right_knee", "left_ankle", "right_ankle"),
)
#: Pairs of COCO keypoint indices joined when a skeleton is drawn (COCO's own skeleton, 0-based).
COCO_SKELETON = (
    *((15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8)),
    *((7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6)),
)
COCO = KeypointSpec(names=COCO_KEYPOINTS, skeleton=COCO_SKELETON)


def keypoint_spec(spec: ModelSpec) -> KeypointSpec | None:
    """The keypoints a model names: its own, the COCO 17 for a pose model that names none, else None."""
    if spec.keypoints is not None:
        return spec.keypoints
    return COCO if spec.task is Task.POSE else None


def keypoints_document(spec: ModelSpec) -> dict[str, Any] | None:
    """``{"names": [...], "skeleton": [[a, b], ...]}`` of a model that names keypoints, else None
    (the form ``GET /v1/models/{name}`` and ``visionserve models info`` show)."""
    points = keypoint_spec(spec)
    if points is None:
        return None
    return {"names": list(points.names), "skeleton": [list(pair) for pair in points.skeleton]}
