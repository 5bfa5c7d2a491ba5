"""The stage factory: a stream spec's tracker, counters, motion gate and overlays, as the session uses them."""

from __future__ import annotations

import numpy as np
import pytest

from visionserve.core.detections import Detections
from visionserve.errors import InvalidParameterError
from visionserve.models.labels import Labels
from visionserve.streams.analysis import TrackingStage, build_stages, tracker_config
from visionserve.streams.motion import MotionGate
from visionserve.streams.overlays import LineAnnotator, ZoneAnnotator
from visionserve.streams.spec import StreamSpec
from visionserve.streams.tracking import Tracker

LABELS = Labels.from_list(["person", "car"])
ZONE = {"name": "yard", "polygon": [[0, 0], [400, 0], [400, 400], [0, 400]]}
LINE = {"name": "gate", "start": [0, 200], "end": [400, 200], "classes": ["person"]}


def spec(**fields: object) -> StreamSpec:
    return StreamSpec.model_validate({"source": "walk.mp4", **fields})


def test_a_plain_stream_tracks_and_nothing_else() -> None:
    stages = build_stages(spec(), LABELS)
    assert isinstance(stages.tracker, TrackingStage) and isinstance(stages.tracker.tracker, Tracker)
    assert stages.counter is None and stages.gate is None and stages.annotators == []
    assert build_stages(spec(track=False), LABELS).tracker is None


def test_motion_zones_and_lines() -> None:
    stages = build_stages(spec(motion=True, zones=[ZONE], lines=[LINE]), LABELS)
    assert isinstance(stages.gate, MotionGate)
    assert [type(a) for a in stages.annotators] == [ZoneAnnotator, LineAnnotator]
    assert stages.tracker is not None and stages.counter is not None
    counts: dict[str, object] = {}
    for y in range(150, 260, 10):  # a person walking down through the gate, at the model's default conf
        box = Detections(np.array([[180, y - 80, 220, y]]), np.array([0.45]), np.array([0]))
        counts = stages.counter.update(stages.tracker.update(box))
    assert counts == {
        "zones": [{"name": "yard", "total": 1, "by_class": {"person": 1}}],
        "lines": [{"name": "gate", "in": 1, "out": 0, "by_class": {"person": {"in": 1, "out": 0}}}],
    }


def test_bad_analysis_requests_are_clear_errors() -> None:
    with pytest.raises(InvalidParameterError, match='they need "track": true'):
        build_stages(spec(track=False, lines=[LINE]), LABELS)
    with pytest.raises(InvalidParameterError, match="unknown class 'unicorn'"):
        build_stages(spec(zones=[{**ZONE, "classes": ["unicorn"]}]), LABELS)
    with pytest.raises(InvalidParameterError, match="zone 'flat': the polygon has no area"):
        build_stages(spec(zones=[{"name": "flat", "polygon": [[0, 0], [1, 1], [2, 2]]}]), LABELS)
    with pytest.raises(InvalidParameterError, match="repeated: yard"):
        build_stages(spec(zones=[ZONE], lines=[{**LINE, "name": "yard"}]), LABELS)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, (0.4, 0.4, 0.1, 3, 30)),  # the model's default conf; ByteTrack's frame counts
        ({"conf": 0.25, "max_fps": 4}, (0.25, 0.25, 0.1, 1, 4)),  # at 4 fps: confirmed at once, lost after 1 s
        ({"conf": 0.05, "max_fps": 30}, (0.05, 0.05, 0.05, 3, 30)),
    ],
)
def test_tracker_thresholds_follow_the_stream(fields: dict[str, float], expected: tuple[float, ...]) -> None:
    config = tracker_config(spec(**fields))
    assert (config.high_thresh, config.new_track_thresh, config.low_thresh, config.min_hits, config.track_buffer) == (
        pytest.approx(expected[0]),
        pytest.approx(expected[1]),
        pytest.approx(expected[2]),
        expected[3],
        expected[4],
    )


def box(x: float, score: float, y: float = 100.0) -> tuple[list[float], float]:
    return [x, y, x + 40, y + 80], score


def frame(*rows: tuple[list[float], float]) -> Detections:
    return Detections(np.array([r[0] for r in rows]), np.array([r[1] for r in rows]), np.zeros(len(rows)))


def test_a_tracking_stream_runs_the_model_at_the_low_threshold_and_answers_rows_at_conf_or_tracked() -> None:
    stages = build_stages(spec(conf=0.5), LABELS)
    assert stages.detect_conf == 0.1  # the tracker's low_thresh: its second association needs those rows
    assert build_stages(spec(conf=0.05), LABELS).detect_conf == 0.05
    assert build_stages(spec(conf=0.5, track=False), LABELS).detect_conf is None
    tracker = stages.tracker
    assert tracker is not None
    for x in range(0, 40, 10):  # confirmed after min_hits frames at 0.9
        answered = tracker.update(frame(box(x, 0.9)))
    assert answered.tracker_id is not None
    track_id = int(answered.tracker_id[0])
    assert track_id >= 1
    # The object fades to 0.3 (occluded): its row stays on its track; a lone 0.3 elsewhere is dropped.
    for x in range(40, 80, 10):
        answered = tracker.update(frame(box(x, 0.3), box(600, 0.3, y=400)))
        assert answered.confidence.tolist() == pytest.approx([0.3])
        assert answered.tracker_id is not None and answered.tracker_id.tolist() == [track_id]
    # Back at full score, it still has its id; a new 0.6 object is answered (untracked yet, id -1).
    answered = tracker.update(frame(box(80, 0.9), box(600, 0.6, y=400)))
    assert answered.tracker_id is not None and answered.tracker_id.tolist() == [track_id, -1]
