"""ByteTrack-style multi-object tracking: stable ids for the detections of successive frames.

Why our own tracker (checked in May 2026 against our pins: numpy 2.4, opencv-python-headless, Python 3.11):

- ``trackers`` 2.6.1 (Roboflow's home of ByteTrack since supervision dropped it) requires ``opencv-python``,
  which installs a second ``cv2`` beside ``opencv-python-headless`` (the two overwrite each other's files and
  the GUI build needs libGL on a headless server).
- ``supervision`` 0.31.2 no longer ships a tracker; 0.19 to 0.26 ship ByteTrack but require ``opencv-python``.
  0.18.0 (January 2024, unmaintained line) does install beside our pins, but adds matplotlib and five other
  packages to the server for ~400 lines of tracker.
- ``boxmot`` 25.0.0 requires ``opencv-python``, torch, torchvision, timm and pandas; ``bytetracker`` 0.3.2
  pins torch 1.13, scipy 1.9 and lap 0.4 (unmaintained since 2023); ``norfair`` 2.3.0 requires numpy < 2 and is
  not ByteTrack.

So this module implements ByteTrack (Zhang et al., 2022) on numpy and ``scipy.optimize.linear_sum_assignment``:
a constant-velocity Kalman filter per track (:mod:`visionserve.streams.kalman`), IoU costs, and three
Hungarian associations per frame:

1. detections scoring at least ``high_thresh`` against confirmed tracks, tracked and lost;
2. the remaining confirmed tracks that were tracked last frame against the low-score detections
   (``low_thresh`` to ``high_thresh``): occluded or blurred objects keep their track instead of breaking it;
3. tentative tracks against the high-score detections left over.

A detection left after that, scoring at least ``new_track_thresh`` and not a near-duplicate of a matched one,
starts a tentative track; a tentative track is confirmed (and given the next id, from 1) after ``min_hits``
consecutive matches and dropped at its first miss. A confirmed track that misses frames is *lost*: it
keeps its id and is still matched for ``track_buffer`` frames, then forgotten.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

from visionserve.core.detections import Detections
from visionserve.errors import InvalidParameterError
from visionserve.streams import kalman
from visionserve.streams.kalman import Float64Array

IndexArray = npt.NDArray[np.intp]
#: Cost of a pair that must not be matched (finite: the solver needs a feasible full assignment).
_FORBIDDEN = 1e6


@dataclass(frozen=True)
class TrackerConfig:
    """How the tracker associates detections; scores and IoUs are in ``[0, 1]``.

    Attributes:
        high_thresh: detections at or above this take part in the first association.
        low_thresh: detections below this are ignored; between the two, they only extend tracks.
        new_track_thresh: an unmatched detection at or above this starts a tentative track.
        match_iou: least IoU of a high-score detection with a track's predicted box.
        low_match_iou: least IoU in the second (low-score) association.
        tentative_match_iou: least IoU of a tentative track with a detection.
        min_hits: consecutive matched frames before a track is confirmed and gets an id (1: at once).
        track_buffer: frames a lost track is kept (and can get its id back) before it is forgotten.
        per_class: associate detections only with tracks of the same class.
        duplicate_iou: a new track is not started on a detection overlapping a matched (or already
            started) detection of the same class by more than this IoU.

    Raises :class:`InvalidParameterError` naming the first value out of range.
    """

    high_thresh: float = 0.5
    low_thresh: float = 0.1
    new_track_thresh: float = 0.6
    match_iou: float = 0.2
    low_match_iou: float = 0.5
    tentative_match_iou: float = 0.3
    min_hits: int = 3
    track_buffer: int = 30
    per_class: bool = True
    duplicate_iou: float = 0.8

    def __post_init__(self) -> None:
        for name in ("high_thresh", "low_thresh", "new_track_thresh", "match_iou", "low_match_iou"):
            _check_unit(name, getattr(self, name))
        _check_unit("tentative_match_iou", self.tentative_match_iou)
        _check_unit("duplicate_iou", self.duplicate_iou)
        if self.low_thresh > self.high_thresh:
            raise InvalidParameterError(
                f"low_thresh ({self.low_thresh}) must not exceed high_thresh ({self.high_thresh})"
            )
        if self.min_hits < 1:
            raise InvalidParameterError(f"min_hits must be at least 1, got {self.min_hits}")
        if self.track_buffer < 0:
            raise InvalidParameterError(f"track_buffer must be at least 0, got {self.track_buffer}")

    @classmethod
    def for_fps(cls, fps: float, lost_seconds: float = 1.0, **overrides: float | int | bool) -> TrackerConfig:
        """A config for a source processed at ``fps`` frames per second: lost tracks are kept
        ``lost_seconds``, and tracks are confirmed after ``round(fps / 10)`` frames, between 1 and 3
        (at once below 5 fps, where three frames would be most of a second)."""
        if not fps > 0 or not lost_seconds >= 0:
            raise InvalidParameterError(
                f"fps must be positive and lost_seconds not negative, got {fps}, {lost_seconds}"
            )
        values: dict[str, float | int | bool] = {
            "min_hits": min(3, max(1, round(fps / 10))),
            "track_buffer": max(1, round(fps * lost_seconds)),
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


def _check_unit(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise InvalidParameterError(f"{name} must be between 0 and 1, got {value}")


class TrackState(StrEnum):
    TENTATIVE = "tentative"  # not yet matched min_hits times in a row; no id
    TRACKED = "tracked"  # confirmed and matched in the last frame
    LOST = "lost"  # confirmed, unmatched for up to track_buffer frames


@dataclass(eq=False)
class _Track:
    mean: Float64Array
    covariance: Float64Array
    class_id: int
    last_frame: int
    state: TrackState = TrackState.TENTATIVE
    hits: int = 1
    track_id: int = -1


def iou_matrix(a: npt.NDArray[np.floating], b: npt.NDArray[np.floating]) -> Float64Array:
    """``(len(a), len(b))`` intersection over union of ``(N, 4)`` and ``(M, 4)`` xyxy boxes (0 for empty boxes)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    left_top = np.maximum(a[:, None, :2], b[None, :, :2])
    right_bottom = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(right_bottom - left_top, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    iou: Float64Array = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    return iou


def match(iou: Float64Array, min_iou: float, allowed: npt.NDArray[np.bool_] | None = None) -> list[tuple[int, int]]:
    """The pairs ``(row, column)`` of the assignment maximising the summed IoU, among pairs with
    ``iou >= min_iou`` (and ``allowed`` where given); each row and column is used at most once."""
    if iou.size == 0:
        return []
    feasible = iou >= min_iou
    if allowed is not None:
        feasible &= allowed
    cost = np.where(feasible, 1.0 - iou, _FORBIDDEN)
    rows, cols = linear_sum_assignment(cost)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if feasible[r, c]]


@dataclass
class _Frame:
    """One frame's detections as the tracker sees them, and the ids given so far."""

    boxes: npt.NDArray[np.float32]
    scores: npt.NDArray[np.float32]
    classes: npt.NDArray[np.int32]
    ids: npt.NDArray[np.int32]
    matched: list[int] = field(default_factory=list)


class Tracker:
    """Gives the detections of successive frames of one video stable track ids.

    Not thread-safe: one tracker per stream, updated with each processed frame in order. Ids are
    unique for the tracker's whole life (:meth:`reset` does not reuse them). The second association
    needs the low-score detections: run the model with ``conf`` at most ``low_thresh`` and apply the
    user's threshold to the tracker's output, not its input.
    """

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        self._tracks: list[_Track] = []
        self._frame = 0
        self._next_id = 1

    def reset(self) -> None:
        """Forget every track (after a cut or a seek); ids keep counting up."""
        self._tracks = []
        self._frame = 0

    def update(self, detections: Detections) -> Detections:
        """Associates this frame's ``detections`` (boxes in the frame's pixels) with the tracks.

        Returns the same rows in the same order with ``tracker_id`` filled: the id of the confirmed
        track a row belongs to, ``-1`` for rows of tentative tracks, unmatched rows and rows scoring
        below ``low_thresh``. ``result[result.tracker_id >= 0]`` keeps the tracked objects.
        """
        self._frame += 1
        frame = _Frame(
            detections.xyxy, detections.confidence, detections.class_id, np.full(len(detections), -1, np.int32)
        )
        high = np.flatnonzero(frame.scores >= self.config.high_thresh)
        low = np.flatnonzero((frame.scores >= self.config.low_thresh) & (frame.scores < self.config.high_thresh))
        self._predict()
        confirmed = [t for t in self._tracks if t.state is not TrackState.TENTATIVE]
        tentative = [t for t in self._tracks if t.state is TrackState.TENTATIVE]
        left_tracks, left_high = self._associate(frame, confirmed, high, self.config.match_iou)
        recent = [t for t in left_tracks if t.state is TrackState.TRACKED]
        unmatched, _ = self._associate(frame, recent, low, self.config.low_match_iou)
        for track in unmatched:
            track.state = TrackState.LOST
        failed, left_high = self._associate(frame, tentative, left_high, self.config.tentative_match_iou)
        self._tracks = [
            t for t in self._tracks if t not in failed and self._frame - t.last_frame <= self.config.track_buffer
        ]
        self._start_tracks(frame, left_high)
        return dataclasses.replace(detections, tracker_id=frame.ids)

    def _predict(self) -> None:
        if not self._tracks:
            return
        means = np.stack([t.mean for t in self._tracks])
        # A lost track keeps moving but stops growing or shrinking (ByteTrack's choice).
        means[[t.state is not TrackState.TRACKED for t in self._tracks], 7] = 0.0
        means, covariances = kalman.predict(means, np.stack([t.covariance for t in self._tracks]))
        for track, mean, covariance in zip(self._tracks, means, covariances, strict=True):
            track.mean, track.covariance = mean, covariance

    def _associate(
        self, frame: _Frame, tracks: list[_Track], candidates: IndexArray, min_iou: float
    ) -> tuple[list[_Track], IndexArray]:
        """Matches ``tracks`` with the detections ``candidates`` (indices into ``frame``), updates the
        matched tracks, and returns the tracks and candidates left over."""
        if not tracks or not len(candidates):
            return tracks, candidates
        boxes = kalman.xyah_to_xyxy(np.stack([t.mean for t in tracks]))
        allowed = None
        if self.config.per_class:
            allowed = np.array([t.class_id for t in tracks])[:, None] == frame.classes[candidates][None, :]
        pairs = match(iou_matrix(boxes, frame.boxes[candidates]), min_iou, allowed)
        if pairs:
            self._hit(frame, [tracks[r] for r, _ in pairs], candidates[[c for _, c in pairs]])
        used_rows, used_cols = {r for r, _ in pairs}, {c for _, c in pairs}
        left = [t for i, t in enumerate(tracks) if i not in used_rows]
        return left, np.array([d for i, d in enumerate(candidates) if i not in used_cols], dtype=np.intp)

    def _hit(self, frame: _Frame, tracks: list[_Track], rows: IndexArray) -> None:
        measured = kalman.xyxy_to_xyah(frame.boxes[rows])
        means, covariances = kalman.update(
            np.stack([t.mean for t in tracks]), np.stack([t.covariance for t in tracks]), measured
        )
        for track, row, mean, covariance in zip(tracks, rows, means, covariances, strict=True):
            track.mean, track.covariance = mean, covariance
            track.class_id, track.last_frame = int(frame.classes[row]), self._frame
            track.hits += 1
            self._promote(track)
            frame.ids[row] = track.track_id
            frame.matched.append(int(row))

    def _promote(self, track: _Track) -> None:
        """A tentative track with enough hits is confirmed with the next id; a lost one is tracked again."""
        if track.state is TrackState.TENTATIVE and track.hits < self.config.min_hits:
            return
        if track.track_id < 0:
            track.track_id = self._next_id
            self._next_id += 1
        track.state = TrackState.TRACKED

    def _start_tracks(self, frame: _Frame, candidates: IndexArray) -> None:
        """Tentative tracks on the best unmatched detections that are not duplicates."""
        taken = list(frame.matched)
        for row in sorted(candidates, key=lambda r: -float(frame.scores[r])):
            if frame.scores[row] < self.config.new_track_thresh or self._duplicate(frame, int(row), taken):
                continue
            mean, covariance = kalman.initiate(kalman.xyxy_to_xyah(frame.boxes[row][None, :]))
            track = _Track(mean[0], covariance[0], int(frame.classes[row]), self._frame)
            self._promote(track)
            frame.ids[row] = track.track_id
            self._tracks.append(track)
            taken.append(int(row))

    def _duplicate(self, frame: _Frame, row: int, taken: list[int]) -> bool:
        if not taken:
            return False
        others = np.array(taken)
        if self.config.per_class:
            others = others[frame.classes[others] == frame.classes[row]]
        overlap = iou_matrix(frame.boxes[row][None, :], frame.boxes[others])
        return bool(overlap.size and overlap.max() > self.config.duplicate_iou)
