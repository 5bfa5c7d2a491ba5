"""A stream's analysis stages built from its spec: tracker, zone and line counters, motion gate, overlays.

:func:`build_stages` is a :data:`~visionserve.streams.stages.StageFactory`. The tracker's score
thresholds follow the stream's ``conf`` (the model's default when None): the session hands it
detections already filtered at that score, so every one of them may start or extend a track. Its
frame-based timings follow ``max_fps`` when the stream sets one (see :meth:`TrackerConfig.for_fps`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from visionserve.core.detections import Detections
from visionserve.errors import InvalidParameterError
from visionserve.models.labels import Labels
from visionserve.models.spec import Thresholds
from visionserve.streams.motion import MotionGate
from visionserve.streams.overlays import counting_annotators
from visionserve.streams.spec import StreamSpec
from visionserve.streams.stages import Stages
from visionserve.streams.tracking import Tracker, TrackerConfig
from visionserve.streams.zones import Counting


class CountingStage:
    """:class:`Counting` as the session's counter: each update answers the snapshot's JSON form."""

    def __init__(self, counting: Counting) -> None:
        self.counting = counting

    def update(self, detections: Detections) -> dict[str, Any]:
        return self.counting.update(detections).to_dict()


def tracker_config(spec: StreamSpec) -> TrackerConfig:
    """The tracker settings of ``spec`` (module docstring)."""
    conf = spec.conf if spec.conf is not None else Thresholds().conf
    base = TrackerConfig.for_fps(spec.max_fps) if spec.max_fps is not None else TrackerConfig()
    return dataclasses.replace(base, high_thresh=conf, new_track_thresh=conf, low_thresh=min(conf, base.low_thresh))


def build_stages(spec: StreamSpec, labels: Labels) -> Stages:
    """The stages ``spec`` asks for. Raises :class:`InvalidParameterError` for lines without tracking
    (a crossing is a track's move), unknown classes in zones or lines, and degenerate shapes."""
    if spec.lines and not spec.track:
        raise InvalidParameterError('lines count tracked objects: they need "track": true')
    counting = Counting(spec.zones, spec.lines, labels) if spec.zones or spec.lines else None
    return Stages(
        tracker=Tracker(tracker_config(spec)) if spec.track else None,
        counter=CountingStage(counting) if counting is not None else None,
        gate=MotionGate() if spec.motion else None,
        annotators=counting_annotators(counting) if counting is not None else [],
    )
