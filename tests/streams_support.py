"""Stream test helpers: a video of a real photo moving across frames, and fake captures.

:func:`write_moving_video` writes ``astronaut()`` (scaled to ``object_size``) sliding left to right
over a grey background with OpenCV's ``mp4v`` writer; :func:`object_box` says where it is in a frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from skimage import data

from visionserve.types import BGRImage

BACKGROUND = 60


def astronaut_bgr(size: int) -> BGRImage:
    image: BGRImage = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)


def object_box(index: int, frames: int, width: int, height: int, size: int) -> tuple[int, int, int, int]:
    """The box ``x1, y1, x2, y2`` of the photo in frame ``index`` of :func:`moving_frames`."""
    x = round(index * (width - size) / max(1, frames - 1))
    y = (height - size) // 2
    return x, y, x + size, y + size


def moving_frames(frames: int, width: int = 320, height: int = 240, size: int = 96) -> list[BGRImage]:
    photo = astronaut_bgr(size)
    result = []
    for i in range(frames):
        frame = np.full((height, width, 3), BACKGROUND, np.uint8)
        x1, y1, x2, y2 = object_box(i, frames, width, height, size)
        frame[y1:y2, x1:x2] = photo
        result.append(frame)
    return result


def write_video(path: Path, images: Sequence[BGRImage], fps: float) -> Path:
    height, width = images[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (width, height))
    for image in images:
        writer.write(image)
    writer.release()
    return path


def write_moving_video(path: Path, frames: int = 40, fps: float = 10.0, width: int = 320, height: int = 240) -> Path:
    return write_video(path, moving_frames(frames, width, height), fps)


class FakeCapture:
    """A capture that gives ``images`` and then fails (or blocks nothing: a read past the end is a
    failed read, as OpenCV's); counts releases."""

    def __init__(self, images: Sequence[BGRImage], fps: float = 0.0) -> None:
        self.images = list(images)
        self.fps = fps
        self.position = 0
        self.released = False

    def read(self) -> tuple[bool, BGRImage | None]:
        if self.position >= len(self.images):
            return False, None
        image = self.images[self.position]
        self.position += 1
        return True, image

    def get(self, prop: int) -> float:
        if prop == cv2.CAP_PROP_FPS:
            return self.fps
        if prop == cv2.CAP_PROP_POS_MSEC:
            return 1000.0 * self.position / self.fps if self.fps else 0.0
        return 0.0

    def release(self) -> None:
        self.released = True
