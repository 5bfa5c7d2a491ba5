"""Zones (occupancy of a polygon by the boxes' bottom centres) and lines (crossings in and out)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence

import cv2
import numpy as np
import pytest

from visionserve.core.detections import Detections
from visionserve.errors import InvalidParameterError
from visionserve.models.labels import Labels
from visionserve.streams.spec import LineSpec, ZoneSpec
from visionserve.streams.tracking import Tracker, TrackerConfig
from visionserve.streams.zones import (
    Anchor,
    Counting,
    LineCounter,
    ZoneCounter,
    anchor_points,
    points_in_polygon,
)

LABELS = Labels.from_list(["person", "car", "dog"])
SQUARE = [(100.0, 100.0), (300.0, 100.0), (300.0, 300.0), (100.0, 300.0)]
#: A horizontal line drawn from left to right at y = 200, from x = 100 to x = 300.
GATE = LineSpec(name="gate", start=(100, 200), end=(300, 200))


def tracked(rows: Sequence[tuple[float, float, float, float, int, int]]) -> Detections:
    """Detections from ``(x1, y1, x2, y2, class_id, tracker_id)`` rows."""
    array = np.array(rows, np.float64).reshape(-1, 6)
    return Detections(
        array[:, :4], np.full(len(array), 0.9), array[:, 4].astype(np.int32), tracker_id=array[:, 5].astype(np.int32)
    )


def standing_at(x: float, y: float, class_id: int = 0, track: int = 1) -> tuple[float, float, float, float, int, int]:
    """A 40x80 box whose bottom centre is (x, y)."""
    return (x - 20, y - 80, x + 20, y, class_id, track)


# --- specs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("polygon", "message"),
    [
        ([(0, 0), (1, 1), (2, 2)], "zone 'z': the polygon has no area"),
        ([(0, 0), (1, float("nan")), (2, 0)], "zone 'z': coordinates must be finite"),
        ([(0, 0), (1, float("inf")), (2, 0)], "zone 'z': coordinates must be finite"),
    ],
)
def test_degenerate_zones_are_clear_errors(polygon: list[tuple[float, float]], message: str) -> None:
    with pytest.raises(InvalidParameterError, match=message):
        ZoneCounter(ZoneSpec(name="z", polygon=polygon), LABELS)


def test_degenerate_lines_are_clear_errors() -> None:
    with pytest.raises(InvalidParameterError, match="line 'l': start and end are the same point"):
        LineCounter(LineSpec(name="l", start=(5, 5), end=(5, 5)), LABELS)
    with pytest.raises(InvalidParameterError, match="line 'l': coordinates must be finite"):
        LineCounter(LineSpec(name="l", start=(5, float("nan")), end=(5, 5)), LABELS)


def test_unknown_class_and_repeated_names_are_clear_errors() -> None:
    with pytest.raises(InvalidParameterError, match="unknown class 'unicorn'"):
        ZoneCounter(ZoneSpec(name="z", polygon=SQUARE, classes=["unicorn"]), LABELS)
    with pytest.raises(InvalidParameterError, match="repeated: gate"):
        Counting([ZoneSpec(name="gate", polygon=SQUARE)], [GATE], LABELS)


# --- geometry ------------------------------------------------------------------------------------


def test_anchor_points() -> None:
    boxes = np.array([[10, 20, 30, 60]])
    np.testing.assert_array_equal(anchor_points(boxes), [[20, 60]])
    np.testing.assert_array_equal(anchor_points(boxes, Anchor.CENTER), [[20, 40]])


def test_points_in_polygon_agrees_with_opencv_on_a_concave_polygon() -> None:
    u_shape = np.array([[0, 0], [90, 0], [90, 90], [60, 90], [60, 30], [30, 30], [30, 90], [0, 90]], np.float64)
    points = np.random.default_rng(3).uniform(-10, 100, (2000, 2))
    contour = u_shape.astype(np.float32).reshape(-1, 1, 2)
    distance = np.array([cv2.pointPolygonTest(contour, (float(x), float(y)), True) for x, y in points])
    clear = np.abs(distance) > 1e-6  # points on an edge may fall either side
    np.testing.assert_array_equal(points_in_polygon(points, u_shape)[clear], distance[clear] > 0)
    assert not points_in_polygon(np.array([[45.0, 60.0]]), u_shape)[0]  # in the notch of the U
    assert points_in_polygon(np.zeros((0, 2)), u_shape).shape == (0,)


# --- zones ---------------------------------------------------------------------------------------


def test_zone_occupancy_by_class_counts_confirmed_tracks_only() -> None:
    zone = ZoneCounter(ZoneSpec(name="yard", polygon=SQUARE), LABELS)
    count = zone.update(
        tracked(
            [
                standing_at(150, 150, 0, 1),
                standing_at(250, 290, 0, 2),
                standing_at(200, 200, 1, 3),
                standing_at(200, 200, 0, -1),  # unconfirmed: not counted
                standing_at(50, 200, 2, 4),  # outside
                (150, 250, 190, 330, 2, 5),  # centre inside, feet (bottom centre) below the zone
            ]
        )
    )
    assert dict(count.occupancy) == {"person": 2, "car": 1} and count.total == 3


def test_zone_class_filter_by_name_or_id() -> None:
    rows = tracked([standing_at(150, 150, 0, 1), standing_at(200, 200, 1, 2), standing_at(250, 250, 2, 3)])
    for classes in (["person", "dog"], ["0", "2"]):
        zone = ZoneCounter(ZoneSpec(name="z", polygon=SQUARE, classes=classes), LABELS)
        assert dict(zone.update(rows).occupancy) == {"person": 1, "dog": 1}


def test_zone_without_tracking_counts_every_row() -> None:
    rows = tracked([standing_at(150, 150, 0, 1), standing_at(200, 200, 0, 2)])
    plain = Detections(rows.xyxy, rows.confidence, rows.class_id)
    assert ZoneCounter(ZoneSpec(name="z", polygon=SQUARE), LABELS).update(plain).total == 2


def test_zone_occupancy_follows_each_frame() -> None:
    zone = ZoneCounter(ZoneSpec(name="z", polygon=SQUARE), LABELS)
    assert zone.update(tracked([standing_at(150, 150)])).total == 1
    assert zone.update(tracked([standing_at(500, 150)])).total == 0
    assert zone.update(Detections.empty()).total == 0


# --- lines ---------------------------------------------------------------------------------------


def walk(counter: LineCounter, path: Sequence[tuple[float, float]], class_id: int = 0, track: int = 1) -> None:
    for x, y in path:
        counter.update(tracked([standing_at(x, y, class_id, track)]))


def test_moving_down_across_a_left_to_right_line_is_in_counted_once() -> None:
    line = LineCounter(GATE, LABELS)
    walk(line, [(200, y) for y in range(150, 260, 10)])
    assert dict(line.latest.crossed_in) == {"person": 1} and line.latest.total_out == 0
    walk(line, [(200, y) for y in range(260, 140, -10)])
    assert (line.latest.total_in, line.latest.total_out) == (1, 1)


def test_jitter_on_the_line_counts_each_direction_at_most_once() -> None:
    line = LineCounter(GATE, LABELS)
    walk(line, [(200, 190 if i % 2 else 210) for i in range(20)] + [(200, 200), (200, 230)])
    assert (line.latest.total_in, line.latest.total_out) == (1, 1)


def test_stopping_on_the_line_then_going_on_counts_once() -> None:
    line = LineCounter(GATE, LABELS)
    walk(line, [(200, 180), (200, 200), (200, 200), (200, 220)])
    assert (line.latest.total_in, line.latest.total_out) == (1, 0)


def test_passing_beyond_the_end_of_the_segment_does_not_count() -> None:
    line = LineCounter(GATE, LABELS)
    walk(line, [(350, y) for y in range(150, 260, 10)])
    walk(line, [(90, y) for y in range(150, 260, 10)], track=2)
    assert (line.latest.total_in, line.latest.total_out) == (0, 0)
    # A diagonal move that passes the end point exactly counts (ends are part of the segment).
    walk(line, [(280, 180), (320, 220)], track=3)
    assert line.latest.total_in == 1


def test_a_slanted_line_and_its_direction() -> None:
    # Drawn from bottom-left to top-right: moving right is moving to its right-hand side, so "in".
    line = LineCounter(LineSpec(name="l", start=(0, 400), end=(400, 0)), LABELS)
    walk(line, [(x, 200) for x in range(100, 320, 20)])
    assert (line.latest.total_in, line.latest.total_out) == (1, 0)


def test_lines_count_per_class_and_filter_classes() -> None:
    line = LineCounter(GATE, LABELS)
    cars_only = LineCounter(GATE.model_copy(update={"classes": ["car"]}), LABELS)
    for counter in (line, cars_only):
        walk(counter, [(150, 150), (150, 250)], class_id=0, track=1)
        walk(counter, [(250, 150), (250, 250)], class_id=1, track=2)
        walk(counter, [(200, 150), (200, 250)], class_id=1, track=3)
    assert dict(line.latest.crossed_in) == {"person": 1, "car": 2}
    assert dict(cars_only.latest.crossed_in) == {"car": 2}


def test_unconfirmed_tracks_and_untracked_rows_never_cross() -> None:
    line = LineCounter(GATE, LABELS)
    walk(line, [(200, 150), (200, 250)], track=-1)
    for y in (150, 250):
        rows = tracked([standing_at(200, y)])
        line.update(Detections(rows.xyxy, rows.confidence, rows.class_id))
    assert (line.latest.total_in, line.latest.total_out) == (0, 0)


def test_a_track_forgotten_after_memory_frames_is_not_counted() -> None:
    line = LineCounter(GATE, LABELS, memory_frames=5)
    walk(line, [(200, 150)])
    for _ in range(6):
        line.update(Detections.empty())
    walk(line, [(200, 250)])
    assert line.latest.total_in == 0


def test_tracker_and_counting_together_count_one_crossing() -> None:
    # A person walks down through the gate; the first frames are tentative (min_hits=3) and do not count.
    tracker, counting = (
        Tracker(TrackerConfig(min_hits=3)),
        Counting([ZoneSpec(name="z", polygon=SQUARE)], [GATE], LABELS),
    )
    for t in range(30):
        y = 120 + 6 * t
        counting.update(tracker.update(Detections(np.array([[180, y - 80, 220, y]]), np.array([0.9]), np.array([0]))))
    assert counting.snapshot.lines[0].total_in == 1 and counting.snapshot.lines[0].total_out == 0
    assert counting.snapshot.frame == 30


def test_a_crossing_during_the_tentative_frames_is_not_counted() -> None:
    tracker, counting = Tracker(TrackerConfig(min_hits=3)), Counting([], [GATE], LABELS)
    for y in (190, 210, 230, 250):  # crosses between frames 1 and 2, confirmed at frame 3
        counting.update(tracker.update(Detections(np.array([[180, y - 80, 220, y]]), np.array([0.9]), np.array([0]))))
    assert counting.snapshot.lines[0].total_in == 0


# --- snapshots -----------------------------------------------------------------------------------


def test_snapshot_is_frozen_and_json_friendly() -> None:
    counting = Counting([ZoneSpec(name="yard", polygon=SQUARE)], [GATE], LABELS)
    counting.update(tracked([standing_at(150, 150, 0, 1), standing_at(200, 150, 1, 2)]))
    snapshot = counting.update(tracked([standing_at(150, 250, 0, 1), standing_at(200, 150, 1, 2)]))
    assert json.loads(json.dumps(snapshot.to_dict())) == {
        "zones": [{"name": "yard", "total": 2, "by_class": {"person": 1, "car": 1}}],
        "lines": [{"name": "gate", "in": 1, "out": 0, "by_class": {"person": {"in": 1, "out": 0}}}],
    }
    with pytest.raises(dataclasses.FrozenInstanceError):
        snapshot.frame = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        snapshot.zones[0].occupancy["person"] = 5  # type: ignore[index]
    counting.reset()
    assert counting.snapshot.to_dict() == {
        "zones": [{"name": "yard", "total": 0, "by_class": {}}],
        "lines": [{"name": "gate", "in": 0, "out": 0, "by_class": {}}],
    }
