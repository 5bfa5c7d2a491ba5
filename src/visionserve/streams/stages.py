"""The per-stream analysis steps between the model and the drawing, as small protocols.

A stream runs, per frame: the motion gate (is it worth running the model?), the model, the tracker
(stable ids), the zone and line counters, and the annotators. :class:`Stages` holds one stream's
instances; a :data:`StageFactory` builds them from its :class:`~visionserve.streams.spec.StreamSpec`
and the model's labels. Tracking, zones and motion live in their own modules; the session only
knows these protocols.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from visionserve.core.detections import Detections
from visionserve.models.labels import Labels
from visionserve.render.annotators import Annotator
from visionserve.streams.spec import StreamSpec
from visionserve.types import BGRImage


class Tracker(Protocol):
    def update(self, detections: Detections) -> Detections:
        """The detections of the next frame with ``tracker_id`` filled (-1: not a confirmed track)."""
        ...


class Counter(Protocol):
    def update(self, detections: Detections) -> dict[str, Any]:
        """Counts after this frame as JSON-ready data: ``{"zones": {...}, "lines": {...}}``."""
        ...


class Gate(Protocol):
    def update(self, frame: BGRImage) -> bool:
        """Whether something moved since the last frames (the model runs only then)."""
        ...


@dataclass
class Stages:
    """One stream's steps; None skips a step. ``annotators`` draw after the boxes and labels.
    ``detect_conf``: the score the model runs at for this stream (None: the stream's ``conf``); a
    tracker that wants low-score rows lowers it and filters its answer back to ``conf`` itself."""

    tracker: Tracker | None = None
    counter: Counter | None = None
    gate: Gate | None = None
    annotators: list[Annotator] = field(default_factory=list)
    detect_conf: float | None = None


StageFactory = Callable[[StreamSpec, Labels], Stages]
