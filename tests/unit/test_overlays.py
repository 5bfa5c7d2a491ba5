"""Zone and line annotators with their live counts, and track ids in labels."""

from __future__ import annotations

import cv2
import numpy as np
from skimage import data

from visionserve.core.detections import Detections
from visionserve.models.labels import Labels
from visionserve.render.annotators import LabelAnnotator, annotators_for, render
from visionserve.streams.overlays import LineAnnotator, ZoneAnnotator, counting_annotators
from visionserve.streams.spec import LineSpec, ZoneSpec
from visionserve.streams.zones import Counting, LineCounter, ZoneCounter

LABELS = Labels.from_list(["person", "car"])
SQUARE = [(100.0, 100.0), (300.0, 100.0), (300.0, 300.0), (100.0, 300.0)]


def black(width: int = 640, height: int = 480) -> np.ndarray:
    return np.zeros((height, width, 3), np.uint8)


def person(x: float, y: float, track: int) -> Detections:
    """A 40x80 person box whose bottom centre is (x, y)."""
    return Detections(
        np.array([[x - 20, y - 80, x + 20, y]]), np.array([0.9]), np.array([0]), tracker_id=np.array([track])
    )


def test_labels_show_the_track_id_of_confirmed_tracks_only() -> None:
    box = person(200, 200, 7)
    plain = Detections(box.xyxy, box.confidence, box.class_id)
    drawn = {}
    for name, value in {"plain": plain, "tracked": box, "tentative": person(200, 200, -1)}.items():
        frame = black()
        LabelAnnotator(LABELS).annotate(frame, value)
        drawn[name] = frame
    assert np.array_equal(drawn["plain"], drawn["tentative"])
    # "#7 person 0.90" is a wider tag than "person 0.90".
    assert np.count_nonzero(drawn["tracked"].any(axis=2)) > np.count_nonzero(drawn["plain"].any(axis=2))


def test_zone_is_filled_translucent_and_tagged_with_its_count() -> None:
    zone = ZoneCounter(ZoneSpec(name="yard", polygon=SQUARE), LABELS)
    annotator = ZoneAnnotator(zone, color=(0, 0, 200), opacity=0.25)
    empty = black()
    annotator.annotate(empty, Detections.empty())
    assert tuple(empty[200, 200]) == (0, 0, 50)  # inside: a quarter of the colour over black
    assert not empty[400, 500].any()  # outside
    zone.update(person(150, 150, 1))
    occupied = black()
    annotator.annotate(occupied, Detections.empty())
    assert not np.array_equal(empty, occupied)  # the tag reads "yard 1" now
    assert np.array_equal(empty[150:, :], occupied[150:, :])  # ... and nothing else changed


def test_a_zone_partly_outside_the_frame_is_clipped() -> None:
    zone = ZoneCounter(ZoneSpec(name="edge", polygon=[(-50, -50), (100, -50), (100, 100), (-50, 100)]), LABELS)
    frame = black(200, 150)
    ZoneAnnotator(zone).annotate(frame, Detections.empty())
    assert frame[50, 50].any() and not frame[140, 190].any()


def test_line_with_its_in_arrow_and_counts() -> None:
    line = LineCounter(LineSpec(name="gate", start=(100, 240), end=(500, 240)), LABELS)
    annotator = LineAnnotator(line, color=(0, 255, 0))
    before = black()
    annotator.annotate(before, Detections.empty())
    assert before[240, 150, 1] > 0 and before[240, 450, 1] > 0  # the segment
    assert before[240 + 20, 300, 1] > 0  # the arrow points below: the in side of a left-to-right line
    assert not before[240 - 20, 295].any()  # nothing on the out side (left of the tag)
    line.update(person(300, 220, 1))
    line.update(person(300, 260, 1))
    after = black()
    annotator.annotate(after, Detections.empty())
    assert line.latest.total_in == 1 and not np.array_equal(before, after)


def test_counting_overlays_render_on_a_photo_with_the_default_annotators() -> None:
    frame = np.ascontiguousarray(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    counting = Counting(
        [ZoneSpec(name="a", polygon=SQUARE), ZoneSpec(name="b", polygon=[(0, 0), (60, 0), (0, 60)])],
        [LineSpec(name="gate", start=(0, 400), end=(511, 400))],
        LABELS,
    )
    detections = person(200, 250, 3)
    counting.update(detections)
    overlays = counting_annotators(counting)
    assert [type(a) for a in overlays] == [ZoneAnnotator, ZoneAnnotator, LineAnnotator]
    out = render(frame, detections, [*annotators_for(LABELS), *overlays])
    assert out.shape == frame.shape and out.dtype == np.uint8
    assert not np.array_equal(out, frame)
    assert np.array_equal(frame, np.ascontiguousarray(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)))
