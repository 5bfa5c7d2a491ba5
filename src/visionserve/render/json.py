"""The JSON form of detections shared by the CLI and the native HTTP API."""

from __future__ import annotations

from typing import Any

from visionserve.core.detections import Detections
from visionserve.models.labels import Labels


def detections_to_json(detections: Detections, labels: Labels, decimals: int = 2) -> list[dict[str, Any]]:
    """``[{"label", "class_id", "score", "box": {"x1", "y1", "x2", "y2"}}]`` in source pixels,
    highest score first."""
    ordered = detections.sorted_by_confidence()
    return [
        {
            "label": labels.name(int(class_id)),
            "class_id": int(class_id),
            "score": round(float(score), 4),
            "box": dict(zip(("x1", "y1", "x2", "y2"), (round(float(v), decimals) for v in box), strict=True)),
        }
        for box, score, class_id in zip(ordered.xyxy, ordered.confidence, ordered.class_id, strict=True)
    ]
