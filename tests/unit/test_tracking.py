"""The ByteTrack-style tracker on synthetic scenes: boxes moving at constant velocity, crossing paths,
occlusion gaps, low-score frames, duplicates."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from visionserve.core.detections import Detections
from visionserve.errors import InvalidParameterError
from visionserve.streams import kalman
from visionserve.streams.tracking import Tracker, TrackerConfig, iou_matrix, match

Box = tuple[float, float, float, float]


def dets(
    boxes: Sequence[Box], scores: Sequence[float] | None = None, classes: Sequence[int] | None = None
) -> Detections:
    n = len(boxes)
    return Detections(
        np.array(boxes, np.float32).reshape(n, 4),
        np.array(scores if scores is not None else [0.9] * n, np.float32),
        np.array(classes if classes is not None else [0] * n, np.int32),
    )


def moving(x0: float, y0: float, vx: float, vy: float, t: int, size: Box = (0, 0, 40, 80)) -> Box:
    """A 40x80 box whose top-left corner starts at (x0, y0) and moves (vx, vy) pixels per frame."""
    x, y = x0 + vx * t, y0 + vy * t
    return (x + size[0], y + size[1], x + size[2], y + size[3])


def run(tracker: Tracker, frames: Sequence[Detections]) -> list[list[int]]:
    """The tracker ids of each frame's rows."""
    out = []
    for frame in frames:
        result = tracker.update(frame)
        assert result.tracker_id is not None
        out.append(result.tracker_id.tolist())
    return out


# --- configuration -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"high_thresh": 1.5}, "high_thresh must be between 0 and 1"),
        ({"match_iou": -0.1}, "match_iou must be between 0 and 1"),
        ({"duplicate_iou": 2}, "duplicate_iou must be between 0 and 1"),
        ({"low_thresh": 0.6, "high_thresh": 0.5}, "low_thresh .* must not exceed high_thresh"),
        ({"min_hits": 0}, "min_hits must be at least 1"),
        ({"track_buffer": -1}, "track_buffer must be at least 0"),
    ],
)
def test_config_rejects_values_out_of_range(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(InvalidParameterError, match=message):
        TrackerConfig(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(("fps", "min_hits", "buffer"), [(30, 3, 30), (15, 2, 15), (4, 1, 4), (0.5, 1, 1)])
def test_config_for_fps_confirms_at_once_at_low_frame_rates(fps: float, min_hits: int, buffer: int) -> None:
    config = TrackerConfig.for_fps(fps)
    assert (config.min_hits, config.track_buffer) == (min_hits, buffer)
    assert TrackerConfig.for_fps(30, lost_seconds=2, per_class=False).track_buffer == 60
    with pytest.raises(InvalidParameterError, match="fps must be positive"):
        TrackerConfig.for_fps(0)


# --- building blocks -----------------------------------------------------------------------------


def test_iou_matrix_values_and_empty_shapes() -> None:
    a = np.array([[0, 0, 10, 10], [0, 0, 0, 0]])
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]])
    np.testing.assert_allclose(iou_matrix(a, b), [[1, 50 / 150, 0], [0, 0, 0]])
    assert iou_matrix(np.zeros((0, 4)), b).shape == (0, 3)
    assert iou_matrix(a, np.zeros((0, 4))).shape == (2, 0)


def test_match_maximises_total_iou_within_the_gates() -> None:
    iou = np.array([[0.9, 0.8], [0.85, 0.1]])
    # Greedy would take (0, 0) then leave row 1 with 0.1; the optimum is (0, 1) + (1, 0).
    assert sorted(match(iou, 0.05)) == [(0, 1), (1, 0)]
    assert sorted(match(iou, 0.5)) == [(0, 1), (1, 0)]
    assert match(iou, 0.95) == []
    assert match(iou, 0.05, allowed=np.array([[True, False], [False, False]])) == [(0, 0)]
    assert match(np.zeros((0, 2)), 0.1) == []


def test_kalman_filter_learns_a_constant_velocity() -> None:
    means, covariances = kalman.initiate(kalman.xyxy_to_xyah(np.array([moving(0, 0, 5, 2, 0)])))
    for t in range(1, 15):
        means, covariances = kalman.predict(means, covariances)
        means, covariances = kalman.update(means, covariances, kalman.xyxy_to_xyah(np.array([moving(0, 0, 5, 2, t)])))
    means, _ = kalman.predict(means, covariances)
    np.testing.assert_allclose(kalman.xyah_to_xyxy(means)[0], moving(0, 0, 5, 2, 15), atol=0.5)
    np.testing.assert_allclose(means[0, 4:6], [5, 2], atol=0.2)


# --- tracking ------------------------------------------------------------------------------------


def test_a_moving_box_gets_one_id_once_confirmed() -> None:
    ids = run(Tracker(TrackerConfig(min_hits=3)), [dets([moving(10, 10, 8, 3, t)]) for t in range(40)])
    assert ids[:2] == [[-1], [-1]]  # tentative: not counted, no id
    assert ids[2:] == [[1]] * 38


def test_min_hits_one_confirms_in_the_first_frame() -> None:
    assert run(Tracker(TrackerConfig(min_hits=1)), [dets([moving(0, 0, 5, 0, t)]) for t in range(3)]) == [[1]] * 3


def test_a_short_lived_detection_never_gets_an_id_nor_uses_one() -> None:
    flicker = [dets([(500, 500, 540, 580)]) for _ in range(2)]
    later = [dets([moving(0, 0, 5, 0, t)]) for t in range(5)]
    ids = run(Tracker(TrackerConfig(min_hits=3)), [*flicker, dets([]), *later])
    assert ids[:3] == [[-1], [-1], []]
    assert ids[-1] == [1]  # the flicker did not consume id 1


def test_a_tentative_track_that_misses_a_frame_starts_over() -> None:
    box = [dets([moving(0, 0, 4, 0, t)]) for t in range(7)]
    ids = run(Tracker(TrackerConfig(min_hits=3)), [box[0], box[1], dets([]), box[3], box[4], box[5], box[6]])
    assert ids == [[-1], [-1], [], [-1], [-1], [1], [1]]


def test_several_objects_get_distinct_stable_ids() -> None:
    frames = [dets([moving(0, 100 * k, 6, 1, t) for k in range(5)]) for t in range(30)]
    ids = run(Tracker(TrackerConfig(min_hits=2)), frames)
    assert sorted(ids[1]) == [1, 2, 3, 4, 5]
    assert all(row == ids[1] for row in ids[1:])


def test_crossing_paths_keep_their_ids() -> None:
    # Two walkers pass each other; their boxes overlap for several frames (IoU up to ~0.7).
    frames = [dets([moving(0, 100, 10, 0, t), moving(400, 110, -10, 0, t)]) for t in range(41)]
    ids = run(Tracker(TrackerConfig(min_hits=2)), frames)
    assert ids[1] == [1, 2]
    assert all(row == [1, 2] for row in ids[1:])


def test_crossing_paths_with_rows_in_changing_order() -> None:
    frames = []
    for t in range(41):
        a, b = moving(0, 100, 10, 0, t), moving(400, 110, -10, 0, t)
        frames.append(dets([a, b] if t % 2 else [b, a], classes=[0, 0]))
    ids = run(Tracker(TrackerConfig(min_hits=1)), frames)
    walker_a = [row[1] if t % 2 == 0 else row[0] for t, row in enumerate(ids)]
    assert set(walker_a) == {walker_a[0]}


def test_full_overlap_of_different_classes_never_swaps_ids() -> None:
    frames = [dets([moving(0, 100, 10, 0, t), moving(400, 100, -10, 0, t)], classes=[0, 1]) for t in range(41)]
    ids = run(Tracker(TrackerConfig(min_hits=1)), frames)
    assert all(row == [1, 2] for row in ids)


def test_an_occluded_object_gets_its_id_back_after_a_gap() -> None:
    frames = [dets([moving(0, 0, 7, 2, t)]) if not 15 <= t < 21 else dets([]) for t in range(35)]
    ids = run(Tracker(TrackerConfig(min_hits=3, track_buffer=10)), frames)
    assert ids[14] == [1] and ids[21:] == [[1]] * 14


def test_a_gap_longer_than_the_buffer_gives_a_new_id() -> None:
    frames = [dets([moving(0, 0, 7, 2, t)]) if not 10 <= t < 20 else dets([]) for t in range(30)]
    ids = run(Tracker(TrackerConfig(min_hits=1, track_buffer=5)), frames)
    assert ids[9] == [1] and ids[20:] == [[2]] * 10


def test_a_low_score_frame_is_recovered_by_the_second_association() -> None:
    scores = [0.9] * 10 + [0.3, 0.25] + [0.9] * 5
    frames = [dets([moving(0, 0, 6, 0, t)], [s]) for t, s in enumerate(scores)]
    ids = run(Tracker(TrackerConfig(min_hits=2, high_thresh=0.5, low_thresh=0.1)), frames)
    assert ids[10:12] == [[1], [1]]
    assert ids[12:] == [[1]] * 5
    # Without the second association the low-score frames are not tracked (the track is lost).
    ids = run(Tracker(TrackerConfig(min_hits=2, high_thresh=0.5, low_thresh=0.5)), frames)
    assert ids[10:12] == [[-1], [-1]]


def test_low_score_detections_never_start_tracks() -> None:
    frames = [dets([moving(0, 0, 6, 0, t)], [0.4]) for t in range(10)]
    assert run(Tracker(TrackerConfig(min_hits=1, new_track_thresh=0.6)), frames) == [[-1]] * 10


def test_below_low_thresh_is_ignored_even_next_to_a_track() -> None:
    frames = [dets([moving(0, 0, 6, 0, t)], [0.9 if t < 5 else 0.05]) for t in range(8)]
    ids = run(Tracker(TrackerConfig(min_hits=1, low_thresh=0.1)), frames)
    assert ids[:5] == [[1]] * 5 and ids[5:] == [[-1]] * 3


def test_duplicate_detections_of_one_object_make_one_track() -> None:
    frames = []
    for t in range(20):
        x1, y1, x2, y2 = moving(0, 0, 5, 1, t)
        frames.append(dets([(x1, y1, x2, y2), (x1 + 1, y1 + 1, x2 + 1, y2 + 2)], [0.9, 0.85]))
    ids = run(Tracker(TrackerConfig(min_hits=2)), frames)
    assert {i for row in ids for i in row} == {-1, 1}
    assert all(row == [1, -1] for row in ids[1:])


def test_duplicate_new_detections_in_one_frame_start_one_track() -> None:
    frames = [dets([(10, 10, 50, 90), (10, 10, 50, 90)], [0.8, 0.9]) for _ in range(3)]
    ids = run(Tracker(TrackerConfig(min_hits=1)), frames)
    assert ids[0] == [-1, 1]  # the track starts on the better-scored of the two
    assert all(sorted(row) == [-1, 1] for row in ids)  # later either may continue it, never both


def test_per_class_association_can_be_turned_off() -> None:
    frames = [dets([moving(0, 0, 5, 0, t)], classes=[0 if t < 5 else 1]) for t in range(10)]
    assert run(Tracker(TrackerConfig(min_hits=1)), frames)[5:] == [[2]] * 5
    assert run(Tracker(TrackerConfig(min_hits=1, per_class=False)), frames)[5:] == [[1]] * 5


def test_rows_keep_their_order_and_other_columns() -> None:
    keypoints = np.arange(2 * 3 * 3, dtype=np.float32).reshape(2, 3, 3)
    base = dets([(0, 0, 10, 10), (100, 100, 140, 180)], [0.95, 0.7], [2, 3])
    frame = Detections(base.xyxy, base.confidence, base.class_id, keypoints=keypoints, tracker_id=np.array([7, 7]))
    out = Tracker(TrackerConfig(min_hits=1)).update(frame)
    np.testing.assert_array_equal(out.xyxy, frame.xyxy)
    np.testing.assert_array_equal(out.class_id, [2, 3])
    np.testing.assert_array_equal(out.keypoints, keypoints)  # type: ignore[arg-type]
    assert out.tracker_id is not None and out.tracker_id.dtype == np.int32
    assert out.tracker_id.tolist() == [1, 2]


def test_reset_forgets_tracks_but_never_reuses_ids() -> None:
    tracker = Tracker(TrackerConfig(min_hits=1))
    run(tracker, [dets([moving(0, 0, 5, 0, t)]) for t in range(3)])
    tracker.reset()
    assert run(tracker, [dets([moving(0, 0, 5, 0, t)]) for t in range(3, 6)]) == [[2]] * 3


def test_empty_frames_and_empty_tracker() -> None:
    tracker = Tracker()
    out = tracker.update(Detections.empty())
    assert len(out) == 0 and out.tracker_id is not None and out.tracker_id.shape == (0,)
