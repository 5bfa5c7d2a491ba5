"""``visionserve detect --url``: the same command against a running server, through the Python client."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from visionserve.client import Client, DetectionResult
from visionserve.core.detections import Detections
from visionserve.core.images import load_image
from visionserve.errors import AuthenticationError, RemoteError, VisionServeError, WrongTaskError
from visionserve.models.labels import Labels
from visionserve.render.json import detections_to_json
from visionserve.types import BGRImage


@dataclass(frozen=True)
class RemoteOptions:
    """What to ask the server for each image (None keeps the model's default)."""

    model: str | None = None
    conf: float | Literal["best"] | None = None
    iou: float | None = None
    classes: Sequence[str] | None = None
    max_det: int | None = None


def result_labels(result: DetectionResult) -> Labels:
    """The class names that the server gave for the ids in ``result``."""
    return Labels(dict(zip((int(c) for c in result.detections.class_id), result.labels, strict=True)))


def run_remote(
    client: Client, paths: list[Path], options: RemoteOptions, keep_images: bool
) -> Iterator[tuple[Path, dict[str, Any], tuple[BGRImage, Detections, Labels] | None, DetectionResult | None]]:
    """For each path: its JSON result (as the offline command prints it), and with ``keep_images``
    the image, detections and labels to draw. An image the server rejects becomes an ``error``
    entry; an unreachable server, a refused key or a classifier stops the run (the error is raised)."""
    for path in paths:
        try:
            result = client.detect(
                path,
                options.model,
                conf=options.conf,
                iou=options.iou,
                classes=options.classes,
                max_det=options.max_det,
            )
        except (RemoteError, AuthenticationError, WrongTaskError):
            raise
        except VisionServeError as exc:
            yield path, {"image": str(path), "error": str(exc)}, None, None
            continue
        labels = result_labels(result)
        document = {
            "image": str(path),
            "width": result.width,
            "height": result.height,
            "detections": detections_to_json(result.detections, labels),
        }
        drawing = (load_image(path).image, result.detections, labels) if keep_images else None
        yield path, document, drawing, result
