"""Annotators: small objects with one ``annotate(frame, prediction)`` method that draw in place.

:func:`render` copies the frame once and runs a list of annotators over the copy. Box annotators
draw nothing for a classification and the class banner nothing for boxes, so one list serves any
task; :func:`annotators_for` builds the lists of the four render modes.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

import cv2
import numpy as np

from visionserve.core.classifications import Classifications
from visionserve.core.detections import Detections
from visionserve.core.prediction import Prediction
from visionserve.models.labels import Labels
from visionserve.render.palette import color_for, text_color_on
from visionserve.types import BGRImage

_FONT = cv2.FONT_HERSHEY_SIMPLEX
#: Keypoint k is drawn in palette colour k + this (away from class 0's red, which boxes of people use).
_KEYPOINT_COLOURS = 3


class Annotator(Protocol):
    def annotate(self, frame: BGRImage, prediction: Prediction) -> None:
        """Draw on ``frame`` (BGR, modified in place); ``prediction`` is in ``frame``'s pixels."""
        ...


class RenderMode(StrEnum):
    """What an annotated image shows (the four modes of a defect-inspection page)."""

    BOXES_MASKS = "boxes_masks"  # boxes, labels, scores and masks (the default)
    BOXES = "boxes"  # boxes, labels and scores, no masks
    MASKS = "masks"  # labels and masks, no boxes
    MASK_ONLY = "mask_only"  # the masks alone, on black


def line_thickness(frame: BGRImage) -> int:
    """The line width in pixels that reads at ``frame``'s size (1 px per 400 px of its longer side)."""
    return max(1, round(int(max(frame.shape[:2])) / 400))


@dataclass(frozen=True)
class BoxAnnotator:
    """A rectangle per detection, coloured by class."""

    def annotate(self, frame: BGRImage, prediction: Prediction) -> None:
        if not isinstance(prediction, Detections):
            return
        thickness = line_thickness(frame)
        for (x1, y1, x2, y2), class_id in zip(prediction.xyxy.round().astype(int), prediction.class_id, strict=True):
            cv2.rectangle(frame, (x1, y1), (x2, y2), color_for(int(class_id)), thickness, cv2.LINE_AA)


@dataclass(frozen=True)
class LabelAnnotator:
    """``label score`` on a filled tag at each box's top-left corner (inside the image), as
    ``#id label score`` for a row of a confirmed track (``tracker_id >= 0``)."""

    labels: Labels

    def annotate(self, frame: BGRImage, prediction: Prediction) -> None:
        if not isinstance(prediction, Detections):
            return
        scale = text_scale(frame)
        ids = prediction.tracker_id if prediction.tracker_id is not None else np.full(len(prediction), -1)
        rows = zip(prediction.xyxy, prediction.confidence, prediction.class_id, ids, strict=True)
        for box, score, class_id, track_id in rows:
            text = f"{self.labels.name(int(class_id))} {score:.2f}"
            if track_id >= 0:
                text = f"#{track_id} {text}"
            draw_tag(frame, text, (int(box[0]), int(box[1])), color_for(int(class_id)), scale)


@dataclass(frozen=True)
class MaskAnnotator:
    """Each instance mask filled with its class colour at ``opacity`` (1 paints it solid)."""

    opacity: float = 0.45

    def annotate(self, frame: BGRImage, prediction: Prediction) -> None:
        if not isinstance(prediction, Detections) or prediction.masks is None:
            return
        height, width = frame.shape[:2]
        for i in np.argsort(-prediction.confidence, kind="stable")[::-1]:  # best drawn last, on top
            patch = prediction.mask_patch(int(i), height, width)
            h, w = patch.mask.shape
            region = frame[patch.y : patch.y + h, patch.x : patch.x + w]
            color = np.array(color_for(int(prediction.class_id[i])), np.float32)
            pixels = region[patch.mask].astype(np.float32)
            region[patch.mask] = (pixels * (1 - self.opacity) + color * self.opacity).astype(np.uint8)


@dataclass(frozen=True)
class KeypointAnnotator:
    """Keypoints scoring at least ``min_score`` as white dots with a coloured rim, joined by the
    skeleton of ``labels``; each bone and keypoint has its own colour (by keypoint index), so that
    left and right limbs read apart on any background."""

    labels: Labels
    min_score: float = 0.2

    def annotate(self, frame: BGRImage, prediction: Prediction) -> None:
        if not isinstance(prediction, Detections) or prediction.keypoints is None:
            return
        thickness = line_thickness(frame) + 1
        radius = max(3, thickness * 2)
        for points in prediction.keypoints:
            visible = points[:, 2] >= self.min_score
            xy = [(int(x), int(y)) for x, y in points[:, :2].round()]
            for a, b in self.labels.skeleton:
                if a < len(points) and b < len(points) and visible[a] and visible[b]:
                    cv2.line(frame, xy[a], xy[b], color_for(b + _KEYPOINT_COLOURS), thickness, cv2.LINE_AA)
            for k, (centre, seen) in enumerate(zip(xy, visible, strict=True)):
                if seen:
                    cv2.circle(frame, centre, radius, (255, 255, 255), cv2.FILLED, cv2.LINE_AA)
                    cv2.circle(frame, centre, radius, color_for(k + _KEYPOINT_COLOURS), 2, cv2.LINE_AA)


@dataclass(frozen=True)
class ClassBannerAnnotator:
    """The top classes of a classification, one ``label score`` line each, from the top-left corner."""

    labels: Labels
    lines: int = 3

    def annotate(self, frame: BGRImage, prediction: Prediction) -> None:
        if not isinstance(prediction, Classifications):
            return
        scale = text_scale(frame) * 1.2
        y = 0
        for class_id, score in list(zip(prediction.class_id, prediction.confidence, strict=True))[: self.lines]:
            text = f"{self.labels.name(int(class_id))} {score:.2f}"
            y = draw_tag(frame, text, (0, y), color_for(int(class_id)), scale, below=True)


@dataclass(frozen=True)
class BlackoutAnnotator:
    """Paints the whole frame black (the background of the ``mask_only`` render mode)."""

    def annotate(self, frame: BGRImage, prediction: Prediction) -> None:
        frame[...] = 0


def text_scale(frame: BGRImage) -> float:
    """The OpenCV font scale that reads at ``frame``'s size."""
    return max(0.4, float(max(frame.shape[:2])) / 1500)


def draw_tag(
    frame: BGRImage, text: str, corner: tuple[int, int], color: tuple[int, int, int], scale: float, below: bool = False
) -> int:
    """``text`` on a filled tag of ``color`` whose bottom-left (top-left with ``below``, or when there
    is no room above) is ``corner``; returns the y just under the tag."""
    thickness = line_thickness(frame)
    (w, h), baseline = cv2.getTextSize(text, _FONT, scale, thickness)
    x, y = corner
    top = y if below or y - h - baseline - 2 < 0 else y - h - baseline - 2
    cv2.rectangle(frame, (x, top), (x + w + 2, top + h + baseline + 2), color, cv2.FILLED)
    cv2.putText(frame, text, (x + 1, top + h + 1), _FONT, scale, text_color_on(color), thickness, cv2.LINE_AA)
    return top + h + baseline + 2


@dataclass
class FPSAnnotator:
    """Frames per second over the last ``window`` frames, drawn at the top-left corner."""

    window: int = 30
    _stamps: deque[float] = field(default_factory=deque, repr=False)

    def annotate(self, frame: BGRImage, prediction: Prediction) -> None:
        self._stamps.append(time.monotonic())
        while len(self._stamps) > self.window:
            self._stamps.popleft()
        span = self._stamps[-1] - self._stamps[0]
        fps = (len(self._stamps) - 1) / span if span > 0 else 0.0
        cv2.putText(frame, f"FPS {fps:.1f}", (10, 30), _FONT, 0.8, (0, 0, 0), 4, cv2.LINE_AA)
        cv2.putText(frame, f"FPS {fps:.1f}", (10, 30), _FONT, 0.8, (255, 255, 255), 2, cv2.LINE_AA)


def annotators_for(labels: Labels, mode: RenderMode = RenderMode.BOXES_MASKS) -> list[Annotator]:
    """The annotators of ``mode``, for any task (keypoints and class banners are drawn in every mode
    but ``mask_only``)."""
    extras: list[Annotator] = [KeypointAnnotator(labels), ClassBannerAnnotator(labels)]
    if mode is RenderMode.BOXES:
        return [BoxAnnotator(), *extras, LabelAnnotator(labels)]
    if mode is RenderMode.MASKS:
        return [MaskAnnotator(), *extras, LabelAnnotator(labels)]
    if mode is RenderMode.MASK_ONLY:
        return [BlackoutAnnotator(), MaskAnnotator(opacity=1.0)]
    return [MaskAnnotator(), BoxAnnotator(), *extras, LabelAnnotator(labels)]


def default_annotators(labels: Labels) -> list[Annotator]:
    """The annotators of the default render mode (boxes, masks, keypoints, labels)."""
    return annotators_for(labels)


def render(frame: BGRImage, prediction: Prediction, annotators: Sequence[Annotator]) -> BGRImage:
    """A copy of ``frame`` with every annotator applied in order."""
    canvas = frame.copy()
    for annotator in annotators:
        annotator.annotate(canvas, prediction)
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
