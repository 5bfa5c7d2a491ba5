"""What a stream draws on its frames, besides the model's boxes and labels: an honest FPS.

:class:`RateMeter` counts *processed* frames (those that went through the model and were drawn)
over a sliding time window, not the source's frame rate: when the model is slower than the camera
the overlay shows what the viewer really gets. The session's ``processed_fps`` statistic is the
same meter.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import cv2

from visionserve.core.prediction import Prediction
from visionserve.types import BGRImage

_FONT = cv2.FONT_HERSHEY_SIMPLEX


class RateMeter:
    """Events per second over the last ``window`` seconds (``clock``: monotonic seconds)."""

    def __init__(self, window: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self._clock = clock
        self._stamps: deque[float] = deque()

    def tick(self) -> None:
        self._stamps.append(self._clock())
        self._trim()

    @property
    def rate(self) -> float:
        """Events per second: the events of the window over the time they span (0 with fewer than two)."""
        self._trim()
        if len(self._stamps) < 2:
            return 0.0
        span = self._stamps[-1] - self._stamps[0]
        return (len(self._stamps) - 1) / span if span > 0 else 0.0

    def _trim(self) -> None:
        horizon = self._clock() - self.window
        while self._stamps and self._stamps[0] < horizon:
            self._stamps.popleft()


@dataclass(frozen=True)
class ProcessedFpsAnnotator:
    """``FPS 12.3`` (processed frames per second of ``meter``) at the top-right corner."""

    meter: RateMeter

    def annotate(self, frame: BGRImage, prediction: Prediction) -> None:
        text = f"FPS {self.meter.rate:.1f}"
        scale = max(0.5, float(max(frame.shape[:2])) / 1200)
        (width, height), _ = cv2.getTextSize(text, _FONT, scale, 2)
        corner = (max(0, frame.shape[1] - width - 10), height + 10)
        cv2.putText(frame, text, corner, _FONT, scale, (0, 0, 0), 4, cv2.LINE_AA)
        cv2.putText(frame, text, corner, _FONT, scale, (255, 255, 255), 2, cv2.LINE_AA)
