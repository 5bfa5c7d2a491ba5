"""Annotators of zones and lines, drawn with their live counts (see :mod:`visionserve.render.annotators`).

Each holds the stateful counter it draws and reads its latest counts when called, so a stream updates
:class:`~visionserve.streams.zones.Counting` with a frame's detections, then renders the frame with
:func:`counting_annotators` after the usual box and label annotators (which show ``#id`` for tracked
rows). Frames and counters must be in the same (source) pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from visionserve.core.prediction import Prediction
from visionserve.render.annotators import Annotator, draw_tag, line_thickness, text_scale
from visionserve.render.palette import color_for
from visionserve.streams.zones import Counting, LineCounter, ZoneCounter
from visionserve.types import BGRImage

Colour = tuple[int, int, int]


@dataclass(frozen=True)
class ZoneAnnotator:
    """The zone's polygon filled at ``opacity`` and outlined in ``color``, with ``name count`` on a tag at
    its top vertex (the count of the last update)."""

    zone: ZoneCounter
    color: Colour = (255, 160, 0)
    opacity: float = 0.25

    def annotate(self, frame: BGRImage, prediction: Prediction) -> None:
        polygon = self.zone.polygon.round().astype(np.int32)
        height, width = frame.shape[:2]
        left, top = np.clip(polygon.min(axis=0), 0, [width, height])
        right, bottom = np.clip(polygon.max(axis=0) + 1, 0, [width, height])
        if right > left and bottom > top:
            # Blend only the polygon's bounding box: a full-frame blend would cost a 1080p copy per zone.
            region = frame[top:bottom, left:right]
            filled = region.copy()
            cv2.fillPoly(filled, [polygon - [left, top]], self.color, cv2.LINE_AA)
            cv2.addWeighted(filled, self.opacity, region, 1 - self.opacity, 0, dst=region)
        cv2.polylines(frame, [polygon], True, self.color, line_thickness(frame), cv2.LINE_AA)
        x, y = polygon[np.argmin(polygon[:, 1])]
        corner = (int(np.clip(x, 0, width - 1)), int(np.clip(y, 0, height - 1)))
        draw_tag(frame, f"{self.zone.spec.name} {self.zone.latest.total}", corner, self.color, text_scale(frame))


@dataclass(frozen=True)
class LineAnnotator:
    """The line's segment with dots at its ends, an arrow from its middle towards its *in* side, and
    ``name in N out M`` on a tag at its middle."""

    line: LineCounter
    color: Colour = (255, 255, 255)

    def annotate(self, frame: BGRImage, prediction: Prediction) -> None:
        thickness = line_thickness(frame)
        start, end = self.line.start, self.line.end
        a, b = tuple(start.round().astype(int)), tuple(end.round().astype(int))
        cv2.line(frame, a, b, self.color, thickness + 1, cv2.LINE_AA)
        for point in (a, b):
            cv2.circle(frame, point, 2 * thickness + 2, self.color, cv2.FILLED, cv2.LINE_AA)
        middle = (start + end) / 2
        direction = end - start
        # The right-hand normal on an image (y down): where "in" crossings go.
        normal = np.array([-direction[1], direction[0]]) / float(np.hypot(*direction))
        tip = middle + normal * max(15.0, 0.1 * float(np.hypot(*direction)))
        middle_px = (round(float(middle[0])), round(float(middle[1])))
        cv2.arrowedLine(frame, middle_px, tuple(tip.round().astype(int)), self.color, thickness, cv2.LINE_AA, 0, 0.3)
        count = self.line.latest
        text = f"{self.line.spec.name} in {count.total_in} out {count.total_out}"
        height, width = frame.shape[:2]
        corner = (min(max(middle_px[0], 0), width - 1), min(max(middle_px[1], 0), height - 1))
        draw_tag(frame, text, corner, self.color, text_scale(frame))


def counting_annotators(counting: Counting) -> list[Annotator]:
    """One annotator per zone (each in its own palette colour) and per line, zones first."""
    zones: list[Annotator] = [ZoneAnnotator(zone, color_for(2 * i + 1)) for i, zone in enumerate(counting.zones)]
    return [*zones, *(LineAnnotator(line) for line in counting.lines)]
