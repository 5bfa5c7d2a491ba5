"""Zones and lines: how many tracked objects are inside a polygon, how many crossed a line each way.

Both are configured in source pixels by the stream's :class:`~visionserve.streams.spec.ZoneSpec` and
:class:`~visionserve.streams.spec.LineSpec`, and fed each processed frame's detections after the
tracker. Only confirmed tracks count (rows with ``tracker_id >= 0``): a tentative track, often a false
positive, never does. Each object is reduced to one *anchor* point, by default the bottom centre
of its box, where it stands on the ground.

- A zone's occupancy is the number of confirmed tracks whose anchor is inside its polygon, per class.
  Detections without tracker ids at all (tracking off) count by row instead.
- A line counts a track when its anchor moves from one side of the segment ``start -> end`` to the
  other *through the segment* (going round an end does not count). From the left of ``start -> end``
  to its right, as seen on the image, is **in** (a line drawn from left to right: moving down is in);
  the other way is **out**. Each track counts at most once per direction per line, so a box jittering
  on the line adds nothing. Lines need tracks: without tracker ids nothing is counted.

Snapshots (:class:`CountsSnapshot`) are frozen and keyed by label name; :meth:`CountsSnapshot.to_dict`
gives their JSON form.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt

from visionserve.core.detections import Detections
from visionserve.errors import InvalidParameterError
from visionserve.models.labels import Labels
from visionserve.pipeline import resolve_classes
from visionserve.streams.spec import LineSpec, ZoneSpec

Float64Array = npt.NDArray[np.float64]


class Anchor(StrEnum):
    """The point of a box that zones and lines test."""

    BOTTOM_CENTER = "bottom_center"
    CENTER = "center"


def anchor_points(xyxy: npt.NDArray[np.floating], anchor: Anchor = Anchor.BOTTOM_CENTER) -> Float64Array:
    """``(N, 2)`` anchor points ``x, y`` of ``(N, 4)`` xyxy boxes."""
    boxes = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    x = (boxes[:, 0] + boxes[:, 2]) / 2
    y = boxes[:, 3] if anchor is Anchor.BOTTOM_CENTER else (boxes[:, 1] + boxes[:, 3]) / 2
    return np.stack([x, y], axis=1)


def points_in_polygon(points: Float64Array, polygon: Float64Array) -> npt.NDArray[np.bool_]:
    """Whether each of ``(N, 2)`` points is inside the ``(M, 2)`` polygon (even-odd rule, vectorised
    ray casting; a point on an edge may fall either side)."""
    x, y = points[:, 0:1], points[:, 1:2]
    x1, y1 = polygon[None, :, 0], polygon[None, :, 1]
    x2, y2 = np.roll(x1, -1, axis=1), np.roll(y1, -1, axis=1)
    straddles = (y1 > y) != (y2 > y)
    dy = np.broadcast_to(y2 - y1, straddles.shape)
    # Where an edge straddles the ray's height it is not horizontal, so dy is never 0 there.
    t = np.divide(y - y1, dy, out=np.zeros(straddles.shape), where=straddles)
    crossings = straddles & (x < x1 + t * (x2 - x1))
    inside: npt.NDArray[np.bool_] = crossings.sum(axis=1) % 2 == 1
    return inside


def _cross(o: Float64Array, a: Float64Array, b: Float64Array) -> Float64Array:
    """The z component of ``(a - o) x (b - o)`` over the last axis: > 0 when ``b`` is right of ``o -> a``
    on an image (y down)."""
    result: Float64Array = (a[..., 0] - o[..., 0]) * (b[..., 1] - o[..., 1]) - (a[..., 1] - o[..., 1]) * (
        b[..., 0] - o[..., 0]
    )
    return result


def _count_map(counts: Mapping[int, int], labels: Labels) -> Mapping[str, int]:
    return MappingProxyType({labels.name(c): n for c, n in sorted(counts.items())})


def _classes(spec: ZoneSpec | LineSpec, labels: Labels) -> frozenset[int] | None:
    if spec.classes is None:
        return None
    return resolve_classes(spec.classes, labels)


def _finite_points(what: str, points: Sequence[tuple[float, float]]) -> Float64Array:
    xy = np.array(points, dtype=np.float64).reshape(-1, 2)
    if not np.isfinite(xy).all():
        raise InvalidParameterError(f"{what}: coordinates must be finite numbers")
    return xy


def _allowed(detections: Detections, classes: frozenset[int] | None) -> npt.NDArray[np.bool_]:
    if classes is None:
        return np.ones(len(detections), dtype=bool)
    return np.isin(detections.class_id, np.fromiter(classes, dtype=np.int32, count=len(classes)))


@dataclass(frozen=True)
class ZoneCount:
    """Occupancy of one zone on one frame, per label name."""

    name: str
    occupancy: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def total(self) -> int:
        return sum(self.occupancy.values())

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "total": self.total, "by_class": dict(self.occupancy)}


@dataclass(frozen=True)
class LineCount:
    """Crossings of one line since the start (or the last reset), per label name."""

    name: str
    crossed_in: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    crossed_out: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def total_in(self) -> int:
        return sum(self.crossed_in.values())

    @property
    def total_out(self) -> int:
        return sum(self.crossed_out.values())

    def to_dict(self) -> dict[str, Any]:
        names = sorted(set(self.crossed_in) | set(self.crossed_out))
        by_class = {n: {"in": self.crossed_in.get(n, 0), "out": self.crossed_out.get(n, 0)} for n in names}
        return {"name": self.name, "in": self.total_in, "out": self.total_out, "by_class": by_class}


@dataclass(frozen=True)
class CountsSnapshot:
    """Every zone's occupancy and every line's crossings after frame number ``frame`` (from 1)."""

    frame: int = 0
    zones: tuple[ZoneCount, ...] = ()
    lines: tuple[LineCount, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"zones": [z.to_dict() for z in self.zones], "lines": [line.to_dict() for line in self.lines]}


class ZoneCounter:
    """The occupancy of one zone, recomputed on each frame.

    Raises :class:`InvalidParameterError` for a polygon without area or with coordinates that are not
    finite, and for an unknown class."""

    def __init__(self, spec: ZoneSpec, labels: Labels, anchor: Anchor = Anchor.BOTTOM_CENTER) -> None:
        self.spec = spec
        self.polygon = _finite_points(f"zone {spec.name!r}", spec.polygon)
        x, y = self.polygon[:, 0], self.polygon[:, 1]
        if abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))) <= 0:  # twice the shoelace area
            raise InvalidParameterError(f"zone {spec.name!r}: the polygon has no area")
        self._labels = labels
        self._classes = _classes(spec, labels)
        self._anchor = anchor
        self.reset()

    def reset(self) -> None:
        """Back to an empty zone (until the next frame)."""
        self.latest = ZoneCount(self.spec.name)

    def inside(self, detections: Detections) -> npt.NDArray[np.bool_]:
        """Which rows count in this zone: anchor inside, class allowed, a confirmed track (or any row
        when there are no tracker ids)."""
        keep = _allowed(detections, self._classes)
        if detections.tracker_id is not None:
            keep &= detections.tracker_id >= 0
        keep[keep] = points_in_polygon(anchor_points(detections.xyxy[keep], self._anchor), self.polygon)
        return keep

    def update(self, detections: Detections) -> ZoneCount:
        classes, counts = np.unique(detections.class_id[self.inside(detections)], return_counts=True)
        occupancy = dict(zip(classes.tolist(), counts.tolist(), strict=True))
        self.latest = ZoneCount(self.spec.name, _count_map(occupancy, self._labels))
        return self.latest


@dataclass
class _Seen:
    """Where a track's anchor was last seen off the line, and which directions it was counted in."""

    point: Float64Array
    side: int
    frame: int
    counted: set[str] = field(default_factory=set)


class LineCounter:
    """Crossings of one line by confirmed tracks; tracks unseen for ``memory_frames`` are forgotten.

    Raises :class:`InvalidParameterError` when start and end are the same point or not finite, and
    for an unknown class."""

    def __init__(
        self, spec: LineSpec, labels: Labels, anchor: Anchor = Anchor.BOTTOM_CENTER, memory_frames: int = 900
    ) -> None:
        self.spec = spec
        self.start, self.end = _finite_points(f"line {spec.name!r}", [spec.start, spec.end])
        if np.array_equal(self.start, self.end):
            raise InvalidParameterError(f"line {spec.name!r}: start and end are the same point")
        self._labels = labels
        self._classes = _classes(spec, labels)
        self._anchor = anchor
        self._memory = memory_frames
        self.reset()

    def reset(self) -> None:
        """Zero the counts and forget every track."""
        self._seen: dict[int, _Seen] = {}
        self._counts: dict[str, dict[int, int]] = {"in": {}, "out": {}}
        self._frame = 0
        self.latest = LineCount(self.spec.name)

    def update(self, detections: Detections) -> LineCount:
        self._frame += 1
        if detections.tracker_id is not None:
            keep = _allowed(detections, self._classes) & (detections.tracker_id >= 0)
            points = anchor_points(detections.xyxy[keep], self._anchor)
            sides = np.sign(_cross(self.start, self.end, points)).astype(int)
            rows = zip(
                detections.tracker_id[keep].tolist(), detections.class_id[keep].tolist(), points, sides, strict=True
            )
            for track_id, class_id, point, side in rows:
                self._follow(track_id, class_id, point, int(side))
        self._seen = {t: s for t, s in self._seen.items() if self._frame - s.frame <= self._memory}
        self.latest = LineCount(
            self.spec.name, _count_map(self._counts["in"], self._labels), _count_map(self._counts["out"], self._labels)
        )
        return self.latest

    def _follow(self, track_id: int, class_id: int, point: Float64Array, side: int) -> None:
        seen = self._seen.get(track_id)
        if seen is None:
            if side:
                self._seen[track_id] = _Seen(point, side, self._frame)
            return
        seen.frame = self._frame
        if not side:  # on the line: wait to see which side it leaves to
            return
        if side != seen.side and self._through_segment(seen.point, point):
            direction = "in" if side > 0 else "out"
            if direction not in seen.counted:
                seen.counted.add(direction)
                self._counts[direction][class_id] = self._counts[direction].get(class_id, 0) + 1
        seen.point, seen.side = point, side

    def _through_segment(self, before: Float64Array, after: Float64Array) -> bool:
        """Whether the move ``before -> after`` (whose ends are on opposite sides of the line) passes
        between ``start`` and ``end``, ends included."""
        a, b = _cross(before, after, self.start), _cross(before, after, self.end)
        return bool(a * b <= 0)


class Counting:
    """All zones and lines of one stream, updated together.

    Raises :class:`InvalidParameterError` when two zones or lines share a name, or for any error of
    :class:`ZoneCounter` and :class:`LineCounter`.
    """

    def __init__(
        self,
        zones: Sequence[ZoneSpec],
        lines: Sequence[LineSpec],
        labels: Labels,
        anchor: Anchor = Anchor.BOTTOM_CENTER,
    ) -> None:
        names = [zone.name for zone in zones] + [line.name for line in lines]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise InvalidParameterError(f"zone and line names must be unique, repeated: {', '.join(duplicates)}")
        self.zones = tuple(ZoneCounter(spec, labels, anchor) for spec in zones)
        self.lines = tuple(LineCounter(spec, labels, anchor) for spec in lines)
        self._frame = 0
        self.snapshot = self._snapshot()

    def update(self, detections: Detections) -> CountsSnapshot:
        """Counts after this frame's ``detections`` (in source pixels, tracker ids filled)."""
        self._frame += 1
        for zone in self.zones:
            zone.update(detections)
        for line in self.lines:
            line.update(detections)
        self.snapshot = self._snapshot()
        return self.snapshot

    def reset(self) -> None:
        """Zero every count and forget every track (a looping file starting over)."""
        for zone in self.zones:
            zone.reset()
        for line in self.lines:
            line.reset()
        self._frame = 0
        self.snapshot = self._snapshot()

    def _snapshot(self) -> CountsSnapshot:
        return CountsSnapshot(
            self._frame, tuple(z.latest for z in self.zones), tuple(line.latest for line in self.lines)
        )
