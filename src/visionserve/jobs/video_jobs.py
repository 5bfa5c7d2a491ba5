"""The video side of the job service: checking a video job at submission, and reading its progress,
results and annotated MP4 back from the artifacts that :mod:`visionserve.jobs.video` writes."""

from __future__ import annotations

import json
from typing import Any

from visionserve.errors import InvalidParameterError, JobNotFoundError, WrongTaskError
from visionserve.jobs.model import Job, NewJob, check_job_id
from visionserve.jobs.store import ArtifactStore
from visionserve.jobs.video import probe_bytes, video_key
from visionserve.jobs.video_model import VideoInfo, VideoOptions
from visionserve.models.labels import Labels
from visionserve.models.spec import Task
from visionserve.streams.zones import Counting

API_PREFIX = "/v1/jobs"


class VideoJobs:
    """Video jobs over ``artifacts``; videos up to ``max_frames`` frames are taken."""

    def __init__(self, artifacts: ArtifactStore, max_frames: int) -> None:
        self._artifacts = artifacts
        self._max_frames = max_frames

    @staticmethod
    def check(new: NewJob, task: Task, labels: Labels) -> None:
        """A video job has one uploaded video, a model that finds boxes, and zones and lines that count
        (no degenerate shape, no class the model lacks); else :class:`InvalidParameterError` (or
        :class:`WrongTaskError`), before anything is stored."""
        if len(new.inputs) != 1 or new.inputs[0].url is not None:
            raise InvalidParameterError("a video job takes exactly one uploaded video (field 'video'), and no URL")
        if task is Task.CLASSIFY:
            raise WrongTaskError("video jobs need a model that finds boxes (detect, segment or pose), not a classifier")
        video = new.options.video
        if video is not None:
            Counting(video.zones, video.lines, labels)  # raises what the worker would raise later

    def accept(self, job_id: str, data: bytes, options: VideoOptions) -> VideoInfo:
        """Probe the stored video ``data`` of ``job_id`` and record its progress as not started.
        Raises :class:`~visionserve.errors.BadVideoError` when it is not a readable video, and
        :class:`InvalidParameterError` when it has more frames than the limit."""
        info = probe_bytes(data)
        if info.frames > self._max_frames:
            raise InvalidParameterError(f"the video has {info.frames} frames; the limit is {self._max_frames}")
        stride = options.stride(info.fps)
        expected = (info.frames + stride - 1) // stride
        self._put_json(video_key(job_id, "progress.json"), {"frames_done": 0, "frames_total": expected})
        return info

    def _put_json(self, key: str, document: dict[str, Any]) -> None:
        self._artifacts.put(key, json.dumps(document).encode())

    def _json(self, job_id: str, name: str) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self._artifacts.get(video_key(check_job_id(job_id), name)))
        return document

    def status(self, job: Job) -> dict[str, Any] | None:
        """``{"frames_done", "frames_total", ...}`` of a video job (None for an image job); once it has
        succeeded, with the video's info, tracks, counts and the links to its frames and MP4."""
        if job.options.video is None:
            return None
        try:
            status = self._json(job.id, "progress.json")
        except JobNotFoundError:
            status = {"frames_done": 0, "frames_total": None}
        try:
            status.update(self._json(job.id, "video.json"))
        except JobNotFoundError:
            return status
        status["frames_url"] = f"{API_PREFIX}/{job.id}/frames"
        status["annotated_url"] = f"{API_PREFIX}/{job.id}/video"
        return status

    def frames(self, job: Job, offset: int, limit: int) -> dict[str, Any]:
        """Processed frames ``offset`` to ``offset + limit`` with their detections (rows
        ``[track_id, class_id, score, x1, y1, x2, y2]``; track -1: no confirmed track), and the total.
        :class:`JobNotFoundError` when the job is not a video job or has no results (yet)."""
        frames: list[dict[str, Any]] = self._results(job, "frames.json")["frames"]
        return {
            "columns": ["track_id", "class_id", "score", "x1", "y1", "x2", "y2"],
            "frames": frames[offset : offset + limit],
            "total": len(frames),
        }

    def annotated(self, job: Job) -> bytes:
        """The annotated MP4 of a finished video job; :class:`JobNotFoundError` if there is none."""
        self._require(job)
        return self._artifacts.get(video_key(job.id, "annotated.mp4"))

    def _results(self, job: Job, name: str) -> dict[str, Any]:
        self._require(job)
        return self._json(job.id, name)

    @staticmethod
    def _require(job: Job) -> None:
        if job.options.video is None:
            raise JobNotFoundError(f"job {job.id} is not a video job")
