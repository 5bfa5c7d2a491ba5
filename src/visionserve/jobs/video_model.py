"""What a recorded-video job asks for (:class:`VideoOptions`), what a video is (:class:`VideoInfo`),
and :func:`probe_video`, which tells a readable video from anything else.

A video job is one job with one item, the video, processed end to end by one worker: the tracker
needs the frames in order, and splitting the video into frame ranges would restart track ids (and
line crossings) at every range border. Nothing here runs a model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2

from visionserve.errors import BadVideoError, InvalidParameterError
from visionserve.streams.spec import LineSpec, ZoneSpec


@dataclass(frozen=True)
class VideoOptions:
    """Every ``frame_stride``-th frame is processed (1: all of them), and at most ``max_fps`` frames
    per second of video (None: no cap; the larger of the two strides wins, see :meth:`stride`);
    ``track`` gives stable track ids; ``zones`` and ``lines`` count objects as a stream's do (lines
    need ``track``)."""

    frame_stride: int = 1
    track: bool = True
    zones: tuple[ZoneSpec, ...] = ()
    lines: tuple[LineSpec, ...] = ()
    max_fps: float | None = None

    def stride(self, fps: float) -> int:
        """The stride for a video of ``fps`` frames per second (0: unknown, ``max_fps`` is then ignored)."""
        if self.max_fps is None or fps <= 0:
            return self.frame_stride
        return max(self.frame_stride, math.ceil(fps / self.max_fps - 1e-9))

    def __post_init__(self) -> None:
        if not 1 <= self.frame_stride <= 10_000:
            raise InvalidParameterError(f"frame_stride must be between 1 and 10000, got {self.frame_stride}")
        if self.max_fps is not None and not 0 < self.max_fps <= 1000:
            raise InvalidParameterError(f"max_fps must be above 0 and at most 1000, got {self.max_fps}")
        if self.lines and not self.track:
            raise InvalidParameterError("lines count tracked objects: they need track=true")
        for kind, shapes in (("zones", self.zones), ("lines", self.lines)):
            names = [shape.name for shape in shapes]
            if len(set(names)) != len(names):
                raise InvalidParameterError(f"{kind} names must be unique")

    def to_dict(self) -> dict[str, Any]:
        return {
            "frame_stride": self.frame_stride,
            "track": self.track,
            "zones": [zone.model_dump() for zone in self.zones],
            "lines": [line.model_dump() for line in self.lines],
            "max_fps": self.max_fps,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VideoOptions:
        return cls(
            frame_stride=int(data.get("frame_stride", 1)),
            track=bool(data.get("track", True)),
            zones=tuple(ZoneSpec.model_validate(zone) for zone in data.get("zones", ())),
            lines=tuple(LineSpec.model_validate(line) for line in data.get("lines", ())),
            max_fps=None if data.get("max_fps") is None else float(data["max_fps"]),
        )


@dataclass(frozen=True)
class VideoInfo:
    """``frames`` as the container declares it (0 when it does not), ``fps`` (0 when unknown), and the
    size of the first frame."""

    frames: int
    fps: float
    width: int
    height: int

    def to_dict(self) -> dict[str, Any]:
        return {"frames": self.frames, "fps": round(self.fps, 3), "width": self.width, "height": self.height}


def open_video(path: Path) -> cv2.VideoCapture:
    """An opened capture of the file at ``path``; :class:`BadVideoError` if OpenCV cannot open it."""
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        raise BadVideoError("the upload is not a readable video")
    return capture


def probe_video(path: Path) -> VideoInfo:
    """The :class:`VideoInfo` of the video file at ``path``, after decoding its first frame.
    Raises :class:`BadVideoError` when it is not a video or its first frame does not decode."""
    capture = open_video(path)
    try:
        ok, frame = capture.read()
        if not ok or frame is None:
            raise BadVideoError("the upload is not a readable video: its first frame does not decode")
        frames = max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT)))
        fps = float(capture.get(cv2.CAP_PROP_FPS))
        fps = fps if 0 < fps < 1000 else 0.0
        return VideoInfo(frames, fps, int(frame.shape[1]), int(frame.shape[0]))
    finally:
        capture.release()
