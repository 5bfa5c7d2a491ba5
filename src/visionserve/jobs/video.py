"""Processing a recorded video: frames read in order, inferred in small batches, tracked, counted,
drawn into an annotated MP4, and stored as three artifacts beside the input.

One worker processes the whole video (see :mod:`visionserve.jobs.video_model` for why). Results are
JSON artifacts, not rows: a 10-minute 30 fps video is 18,000 frames, which one compact document per
job holds in a few megabytes (each detection is one row ``[track_id, class_id, score, x1, y1, x2,
y2]``), where a row per detection would add tens of thousands of database rows per job.

- ``frames.json``: ``{"frames": [{"frame": i, "time_s": t, "detections": [[...], ...]}, ...]}``;
- ``video.json``: the video's info, frames processed, tracks summary, the counts after the last frame
  (line crossings over the whole video, zone occupancy on the last frame) and each zone's peak
  occupancy;
- ``annotated.mp4``: the processed frames drawn (boxes, labels with track ids, zones, lines);
- ``progress.json``: ``{"frames_done", "frames_total"}``, rewritten every :data:`PROGRESS_EVERY` frames.

Every key derives from the job id, so a redelivered item rewrites the same artifacts.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from visionserve.core.detections import Detections
from visionserve.errors import BadVideoError, JobStateError, WrongTaskError
from visionserve.jobs.detectors import ItemDetector
from visionserve.jobs.model import Claim, ItemOutput, ItemTimings, job_prefix
from visionserve.jobs.store import ArtifactStore
from visionserve.jobs.video_model import VideoInfo, VideoOptions, open_video, probe_video
from visionserve.models.labels import Labels
from visionserve.render.annotators import Annotator, annotators_for, render
from visionserve.streams.analysis import build_stages
from visionserve.streams.spec import StreamSpec
from visionserve.streams.stages import Stages
from visionserve.types import BGRImage

#: Frames per inference call: enough to share forward passes, few enough to keep memory small.
BATCH_FRAMES = 8
#: How often (in processed frames) the progress artifact is rewritten.
PROGRESS_EVERY = 30
_FOURCC = "mp4v"
_DECIMALS = 2


def video_key(job_id: str, name: str) -> str:
    """Where artifact ``name`` (``frames.json``, ``video.json``, ``annotated.mp4``, ``progress.json``) of
    a video job is kept."""
    return f"{job_prefix(job_id)}video/{name}"


def write_temp(data: bytes, folder: Path) -> Path:
    """``data`` in a file of ``folder`` (OpenCV reads videos from files only)."""
    path = folder / "input.video"
    path.write_bytes(data)
    return path


def probe_bytes(data: bytes) -> VideoInfo:
    """:func:`probe_video` of video bytes. Raises :class:`BadVideoError`."""
    with tempfile.TemporaryDirectory(prefix="visionserve-video-") as folder:
        return probe_video(write_temp(data, Path(folder)))


def frame_row(detections: Detections, index: int) -> list[Any]:
    """Detection ``index`` as ``[track_id, class_id, score, x1, y1, x2, y2]`` (track -1: none)."""
    track = -1 if detections.tracker_id is None else int(detections.tracker_id[index])
    box = [round(float(v), _DECIMALS) for v in detections.xyxy[index]]
    return [track, int(detections.class_id[index]), round(float(detections.confidence[index]), 4), *box]


@dataclass
class TrackSummary:
    """One confirmed track: its class, first and last frame, and in how many frames it was seen."""

    class_id: int
    first_frame: int
    last_frame: int
    frames: int = 1

    def to_dict(self, track_id: int, labels: Labels) -> dict[str, Any]:
        return {
            "id": track_id,
            "class_id": self.class_id,
            "label": labels.name(self.class_id),
            "first_frame": self.first_frame,
            "last_frame": self.last_frame,
            "frames": self.frames,
        }


@dataclass
class _Results:
    frames: list[dict[str, Any]] = field(default_factory=list)
    tracks: dict[int, TrackSummary] = field(default_factory=dict)
    counts: dict[str, Any] = field(default_factory=dict)
    zone_peaks: dict[str, int] = field(default_factory=dict)
    detections: int = 0
    labels: Labels = field(default_factory=lambda: Labels({}))

    def add(self, index: int, time_s: float, detections: Detections, counts: dict[str, Any] | None) -> None:
        rows = [frame_row(detections, k) for k in range(len(detections))]
        self.frames.append({"frame": index, "time_s": round(time_s, 3), "detections": rows})
        self.detections += len(rows)
        if counts is not None:
            self.counts = counts
            for zone in counts["zones"]:
                self.zone_peaks[zone["name"]] = max(self.zone_peaks.get(zone["name"], 0), int(zone["total"]))
        for track, class_id, *_ in rows:
            if track < 0:
                continue
            seen = self.tracks.get(track)
            if seen is None:
                self.tracks[track] = TrackSummary(class_id, index, index)
            else:
                seen.last_frame, seen.frames = index, seen.frames + 1


def read_frames(capture: cv2.VideoCapture, stride: int, limit: int) -> Iterator[tuple[int, BGRImage]]:
    """``(index, frame)`` for every ``stride``-th frame, at most ``limit`` frames read in all."""
    index = 0
    while index < limit:
        ok = capture.grab()
        if not ok:
            return
        if index % stride == 0:
            ok, frame = capture.retrieve()
            if not ok or frame is None:
                return
            yield index, np.asarray(frame, dtype=np.uint8)
        index += 1


class VideoProcessor:
    """Runs one video item; ``max_frames`` caps the frames read, ``batch_frames`` the frames of one
    inference call. ``active(job_id)`` is asked at every progress update whether the job still wants
    the result (it was not cancelled); when it does not, processing stops with :class:`JobStateError`."""

    def __init__(
        self,
        artifacts: ArtifactStore,
        models: ItemDetector,
        max_frames: int = 108_000,
        batch_frames: int = BATCH_FRAMES,
        active: Callable[[str], bool] = lambda job_id: True,
    ) -> None:
        self._artifacts = artifacts
        self._models = models
        self._max_frames = max_frames
        self._batch = batch_frames
        self._active = active

    def run(self, claim: Claim, data: bytes, fetch_ms: float) -> ItemOutput:
        """Process the video ``data`` of ``claim``; the item's output. Raises :class:`BadVideoError`
        for a video that does not decode, :class:`WrongTaskError` for a model without boxes."""
        options = claim.options.video or VideoOptions()
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="visionserve-video-") as folder:
            source = write_temp(data, Path(folder))
            info = probe_video(source)
            output = Path(folder) / "annotated.mp4"
            results, inference_ms = self._process(claim, info, options, source, output)
            self._artifacts.put(video_key(claim.job_id, "annotated.mp4"), output.read_bytes())
        self._store(claim.job_id, info, options.stride(info.fps), results)
        total_ms = (time.perf_counter() - started) * 1000.0 + fetch_ms
        timings = ItemTimings(fetch_ms=fetch_ms, inference_ms=inference_ms, total_ms=total_ms)
        return ItemOutput(info.width, info.height, (), timings)

    def _process(
        self, claim: Claim, info: VideoInfo, options: VideoOptions, source: Path, output: Path
    ) -> tuple[_Results, float]:
        stride = options.stride(info.fps)
        total = min(info.frames, self._max_frames) if info.frames else self._max_frames
        expected = (total + stride - 1) // stride
        fps = info.fps or 25.0
        writer = cv2.VideoWriter(str(output), cv2.VideoWriter.fourcc(*_FOURCC), fps / stride, (info.width, info.height))
        capture = open_video(source)
        results, inference_ms = _Results(), 0.0
        run = _FrameRun(claim, options, fps / stride, writer, results)
        try:
            batch: list[tuple[int, BGRImage]] = []
            for index, frame in read_frames(capture, stride, total):
                batch.append((index, frame))
                if len(batch) == self._batch:
                    inference_ms += self._flush(run, batch, fps, expected)
                    batch = []
            if batch:
                inference_ms += self._flush(run, batch, fps, expected)
        finally:
            capture.release()
            writer.release()
        if not results.frames:
            raise BadVideoError("the video has no frame that decodes")
        self._progress(claim.job_id, len(results.frames), len(results.frames))
        return results, inference_ms

    def _flush(self, run: _FrameRun, batch: list[tuple[int, BGRImage]], fps: float, expected: int) -> float:
        images = [frame for _, frame in batch]
        found = self._models.detect_frames(run.claim.model, images, run.claim.options.predict_options())
        before = len(run.results.frames) // PROGRESS_EVERY
        for (index, frame), prediction in zip(batch, found.predictions, strict=True):
            if not isinstance(prediction, Detections):
                raise WrongTaskError("video jobs need a model that finds boxes (detect, segment or pose)")
            run.frame(index, index / fps, frame, prediction, found.labels)
        if len(run.results.frames) // PROGRESS_EVERY != before:
            if not self._active(run.claim.job_id):
                raise JobStateError(f"job {run.claim.job_id} ended while its video was processed")
            self._progress(run.claim.job_id, len(run.results.frames), max(expected, len(run.results.frames)))
        return found.inference_ms

    def _progress(self, job_id: str, done: int, total: int) -> None:
        document = {"frames_done": done, "frames_total": total}
        self._artifacts.put(video_key(job_id, "progress.json"), json.dumps(document).encode())

    def _store(self, job_id: str, info: VideoInfo, stride: int, results: _Results) -> None:
        labels = results.labels
        frames = json.dumps({"frames": results.frames}, separators=(",", ":")).encode()
        self._artifacts.put(video_key(job_id, "frames.json"), frames)
        summary = {
            "info": info.to_dict(),
            "frame_stride": stride,
            "frames_processed": len(results.frames),
            "detections": results.detections,
            "tracks": [track.to_dict(k, labels) for k, track in sorted(results.tracks.items())],
            "counts": results.counts,
            "zone_peaks": results.zone_peaks,
        }
        self._artifacts.put(video_key(job_id, "video.json"), json.dumps(summary).encode())


class _FrameRun:
    """The per-frame state of one video: stages (built on the first batch, once the labels are known),
    the writer and the results."""

    def __init__(
        self, claim: Claim, options: VideoOptions, fps: float, writer: cv2.VideoWriter, results: _Results
    ) -> None:
        self.claim, self.options, self.fps = claim, options, fps
        self.writer, self.results = writer, results
        self._stages: Stages | None = None
        self._annotators: list[Annotator] = []

    def stages(self, labels: Labels) -> Stages:
        if self._stages is None:
            # A stream's spec builds the same tracker, counters and overlays (the source is not used).
            spec = StreamSpec(
                source="video-job",
                name=None,
                model=None,
                classes=None,
                conf=self.claim.options.conf,
                max_fps=min(240.0, self.fps),
                track=self.options.track,
                zones=list(self.options.zones),
                lines=list(self.options.lines),
            )
            self._stages = build_stages(spec, labels)
            self._annotators = [*annotators_for(labels), *self._stages.annotators]
            self.results.labels = labels
        return self._stages

    def frame(self, index: int, time_s: float, image: BGRImage, found: Detections, labels: Labels) -> None:
        stages = self.stages(labels)
        tracked = stages.tracker.update(found) if stages.tracker is not None else found
        counts = stages.counter.update(tracked) if stages.counter is not None else None
        self.results.add(index, time_s, tracked, counts)
        self.writer.write(render(image, tracked, self._annotators))
