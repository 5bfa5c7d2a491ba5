"""A stream's analysis stages built from its spec: tracker, zone and line counters, motion gate, overlays.

:func:`build_stages` is a :data:`~visionserve.streams.stages.StageFactory`. The tracker's high and
new-track thresholds are the stream's ``conf`` (the manager fills in the model's default when None).
ByteTrack's second association extends tracks with detections between ``low_thresh`` and that
``conf``, so a tracking stream asks the model for rows down to ``low_thresh`` (``Stages.detect_conf``)
and :class:`TrackingStage` answers only the rows at or above ``conf`` plus the lower ones the tracker
kept on a confirmed track. Frame-based timings follow ``max_fps`` when the stream sets one (see
:meth:`TrackerConfig.for_fps`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from visionserve.core.detections import Detections
from visionserve.core.thresholds import Threshold, keep_mask
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


class TrackingStage:
    """:class:`Tracker` as the session's tracker: it sees every row the model gave (down to its
    ``low_thresh``); :meth:`update` answers the rows scoring at least ``conf`` and, below that, only
    those the tracker matched to a confirmed track (an occluded or blurred object keeping its box).
    ``conf`` may be per-class thresholds (``conf=best``; the manager sets them after building): then
    the answer holds only the rows at their class's threshold (the tracker still gives them ids), as
    the tracker's own thresholds are one number (the lowest of the classes')."""

    def __init__(self, tracker: Tracker, conf: Threshold) -> None:
        self.tracker = tracker
        self.conf = conf

    def update(self, detections: Detections) -> Detections:
        tracked = self.tracker.update(detections)
        ids = tracked.tracker_id if tracked.tracker_id is not None else np.full(len(tracked), -1)
        keep = keep_mask(tracked.confidence, tracked.class_id, self.conf)
        if isinstance(self.conf, Mapping):  # per-class: a track started below its class's threshold must not show
            return tracked[keep]
        return tracked[keep | (ids >= 0)]


def tracker_config(spec: StreamSpec) -> TrackerConfig:
    """The tracker settings of ``spec`` (module docstring); per-class thresholds (``best``) must have
    been replaced by a number (the manager gives the lowest of them)."""
    conf = spec.conf if isinstance(spec.conf, float | int) else Thresholds().conf
    base = TrackerConfig.for_fps(spec.max_fps) if spec.max_fps is not None else TrackerConfig()
    return dataclasses.replace(base, high_thresh=conf, new_track_thresh=conf, low_thresh=min(conf, base.low_thresh))


def build_stages(spec: StreamSpec, labels: Labels) -> Stages:
    """The stages ``spec`` asks for. Raises :class:`InvalidParameterError` for lines without tracking
    (a crossing is a track's move), unknown classes in zones or lines, and degenerate shapes."""
    if spec.lines and not spec.track:
        raise InvalidParameterError('lines count tracked objects: they need "track": true')
    counting = Counting(spec.zones, spec.lines, labels) if spec.zones or spec.lines else None
    config = tracker_config(spec)
    return Stages(
        tracker=TrackingStage(Tracker(config), config.high_thresh) if spec.track else None,
        counter=CountingStage(counting) if counting is not None else None,
        gate=MotionGate() if spec.motion else None,
        annotators=counting_annotators(counting) if counting is not None else [],
        detect_conf=config.low_thresh if spec.track else None,
    )
