"""What a stream is asked to do: :class:`StreamSpec`, the body of ``POST /v1/streams`` and an entry
of the ``streams:`` list of the settings file.

The spec is data only; :mod:`visionserve.streams.sources` checks the source, and the session turns
the rest into a model name, options, a tracker, zone/line counters and a motion gate.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Point = tuple[float, float]


class ZoneSpec(BaseModel):
    """A polygon zone in source pixels; a box is inside when its bottom centre is."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(..., min_length=1, max_length=100)
    polygon: list[Point] = Field(..., min_length=3, max_length=1000)
    classes: list[str] | None = None


class LineSpec(BaseModel):
    """A counting line from ``start`` to ``end`` in source pixels."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(..., min_length=1, max_length=100)
    start: Point
    end: Point
    classes: list[str] | None = None


class StreamSpec(BaseModel):
    """One stream. ``source``: ``rtsp://...``, ``http(s)://...``, a file name inside the video
    folder, or ``device:N``. ``classes``: label names or ids. ``max_fps``: most processed frames per
    second (None: as fast as the model goes). ``motion``: run the model only on frames where
    something moved (the last detections carry over otherwise). ``loop``: a file source starts
    again at its end instead of ending. ``name``: optional id (settings-file streams; else random).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str = Field(..., min_length=1, max_length=2000)
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    model: str | None = Field(None, max_length=200)
    conf: Annotated[float, Field(ge=0, le=1)] | Literal["best"] | None = None
    classes: list[str] | None = Field(None, max_length=1000)
    max_fps: float | None = Field(None, gt=0, le=240)
    track: bool = True
    motion: bool = False
    zones: list[ZoneSpec] = Field(default_factory=list, max_length=100)
    lines: list[LineSpec] = Field(default_factory=list, max_length=100)
    loop: bool = False

    @field_validator("zones", "lines")
    @classmethod
    def _unique_names(cls, value: list[ZoneSpec] | list[LineSpec]) -> list[ZoneSpec] | list[LineSpec]:
        names = [item.name for item in value]
        if len(set(names)) != len(names):
            raise ValueError("names must be unique")
        return value
