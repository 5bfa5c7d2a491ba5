"""Annotators: small objects with one ``annotate(frame, detections)`` method that draw in place.

:func:`render` copies the frame once and runs a list of annotators over the copy.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import cv2

from visionserve.core.detections import Detections
from visionserve.models.labels import Labels
from visionserve.render.palette import color_for, text_color_on
from visionserve.types import BGRImage

_FONT = cv2.FONT_HERSHEY_SIMPLEX


class Annotator(Protocol):
    def annotate(self, frame: BGRImage, detections: Detections) -> None:
        """Draw on ``frame`` (BGR, modified in place)."""
        ...


def _thickness(frame: BGRImage) -> int:
    return max(1, round(int(max(frame.shape[:2])) / 400))


@dataclass(frozen=True)
class BoxAnnotator:
    """A rectangle per detection, coloured by class."""

    def annotate(self, frame: BGRImage, detections: Detections) -> None:
        thickness = _thickness(frame)
        for (x1, y1, x2, y2), class_id in zip(detections.xyxy.round().astype(int), detections.class_id, strict=True):
            cv2.rectangle(frame, (x1, y1), (x2, y2), color_for(int(class_id)), thickness, cv2.LINE_AA)


@dataclass(frozen=True)
class LabelAnnotator:
    """``label score`` on a filled tag at each box's top-left corner (inside the image)."""

    labels: Labels

    def annotate(self, frame: BGRImage, detections: Detections) -> None:
        scale = max(0.4, max(frame.shape[:2]) / 1500)
        thickness = _thickness(frame)
        for box, score, class_id in zip(detections.xyxy, detections.confidence, detections.class_id, strict=True):
            text = f"{self.labels.name(int(class_id))} {score:.2f}"
            (w, h), baseline = cv2.getTextSize(text, _FONT, scale, thickness)
            x, y = int(box[0]), int(box[1])
            top = y - h - baseline - 2 if y - h - baseline - 2 >= 0 else y
            color = color_for(int(class_id))
            cv2.rectangle(frame, (x, top), (x + w + 2, top + h + baseline + 2), color, cv2.FILLED)
            cv2.putText(frame, text, (x + 1, top + h + 1), _FONT, scale, text_color_on(color), thickness, cv2.LINE_AA)


@dataclass
class FPSAnnotator:
    """Frames per second over the last ``window`` frames, drawn at the top-left corner."""

    window: int = 30
    _stamps: deque[float] = field(default_factory=deque, repr=False)

    def annotate(self, frame: BGRImage, detections: Detections) -> None:
        self._stamps.append(time.monotonic())
        while len(self._stamps) > self.window:
            self._stamps.popleft()
        span = self._stamps[-1] - self._stamps[0]
        fps = (len(self._stamps) - 1) / span if span > 0 else 0.0
        cv2.putText(frame, f"FPS {fps:.1f}", (10, 30), _FONT, 0.8, (0, 0, 0), 4, cv2.LINE_AA)
        cv2.putText(frame, f"FPS {fps:.1f}", (10, 30), _FONT, 0.8, (255, 255, 255), 2, cv2.LINE_AA)


def default_annotators(labels: Labels) -> list[Annotator]:
    return [BoxAnnotator(), LabelAnnotator(labels)]


def render(frame: BGRImage, detections: Detections, annotators: Sequence[Annotator]) -> BGRImage:
    """A copy of ``frame`` with every annotator applied in order."""
    canvas = frame.copy()
    for annotator in annotators:
        annotator.annotate(canvas, detections)
    return canvas


def crops(frame: BGRImage, detections: Detections) -> list[BGRImage]:
    """One copy of the pixels inside each box (at least 1x1, clipped to the frame)."""
    height, width = frame.shape[:2]
    result = []
    for x1, y1, x2, y2 in detections.xyxy:
        left, top = min(max(int(x1), 0), width - 1), min(max(int(y1), 0), height - 1)
        right, bottom = max(left + 1, min(round(float(x2)), width)), max(top + 1, min(round(float(y2)), height))
        result.append(frame[top:bottom, left:right].copy())
    return result
