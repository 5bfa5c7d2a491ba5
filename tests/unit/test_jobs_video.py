"""Video jobs in the job service (embedded runner, SQLite): options, submission checks, progress in
frames, and cancellation of a video in progress."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.factories import classifier_model_folder
from tests.jobs_support import PLUGIN_MODEL, wait_for
from tests.streams_support import write_moving_video
from tests.unit.test_jobs_service import Setup, ended, make_setup

from visionserve.errors import BadVideoError, ImageTooLargeError, InvalidParameterError, WrongTaskError
from visionserve.jobs.model import ItemState, JobInput, JobOptions, JobQuery, JobState, NewJob
from visionserve.jobs.service import JobLimits
from visionserve.jobs.video_model import VideoOptions, probe_video
from visionserve.models.repository import ModelRepository
from visionserve.streams.spec import LineSpec, ZoneSpec

LINE = LineSpec(name="middle", start=(160, 0), end=(160, 240))
ZONE = ZoneSpec(name="left", polygon=[(0, 0), (160, 0), (160, 240)])


@pytest.fixture
def slow(tmp_path: Path) -> Iterator[Setup]:
    made = make_setup(tmp_path, delay_s=0.02)
    yield made
    for service in made.services:
        service.stop()


def video_job(path: Path, **options: object) -> NewJob:
    video = VideoOptions(**options)  # type: ignore[arg-type]
    return NewJob(PLUGIN_MODEL, [JobInput(path.name, data=path.read_bytes())], JobOptions(video=video))


def test_video_options_survive_the_database_and_old_jobs_have_none() -> None:
    options = JobOptions(conf=0.3, video=VideoOptions(3, True, (ZONE,), (LINE,), max_fps=7.5))
    assert JobOptions.from_dict(options.to_dict()) == options
    old = options.to_dict()
    del old["video"]
    assert JobOptions.from_dict(old).video is None


@pytest.mark.parametrize(
    "changes",
    [{"frame_stride": 0}, {"max_fps": 0.0}, {"track": False, "lines": (LINE,)}, {"zones": (ZONE, ZONE)}],
    ids=["stride", "max-fps", "lines-untracked", "duplicate-names"],
)
def test_bad_video_options_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(InvalidParameterError):
        VideoOptions(**changes)  # type: ignore[arg-type]


def test_probe_tells_a_video_from_a_truncated_one(tmp_path: Path) -> None:
    path = write_moving_video(tmp_path / "moving.mp4", 12, 6.0)
    info = probe_video(path)
    assert (info.frames, info.fps, info.width, info.height) == (12, 6.0, 320, 240)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(BadVideoError):
        probe_video(cut)


def test_bad_and_oversized_videos_store_nothing(tmp_path: Path, slow: Setup) -> None:
    service = slow.service(limits=JobLimits(max_video_bytes=2000, max_video_frames=10))
    garbage = tmp_path / "notes.mp4"
    garbage.write_text("not a video")
    small = write_moving_video(tmp_path / "small.mp4", 8, 4.0, 160, 120)
    with pytest.raises(BadVideoError):
        service.submit(video_job(garbage))
    with pytest.raises(ImageTooLargeError):
        service.submit(video_job(write_moving_video(tmp_path / "big.mp4", 8, 4.0)))
    service = slow.service(limits=JobLimits(max_video_frames=5))
    with pytest.raises(InvalidParameterError, match="limit is 5"):
        service.submit(video_job(small))
    with pytest.raises(InvalidParameterError, match="exactly one"):
        service.submit(NewJob(PLUGIN_MODEL, [JobInput("a", data=b"x")] * 2, JobOptions(video=VideoOptions())))
    assert service.list_jobs(JobQuery()).total == 0
    assert not list((slow.config.data_dir / "artifacts").rglob("*.*"))


def test_progress_is_in_frames_and_a_cancel_stops_the_video(tmp_path: Path, slow: Setup) -> None:
    service = slow.service(workers=1)
    job = service.submit(video_job(write_moving_video(tmp_path / "long.mp4", 150, 15.0)))
    assert service.videos.status(job) == {"frames_done": 0, "frames_total": 150}
    wait_for(lambda: (service.videos.status(service.get(job.id)) or {})["frames_done"] >= 30)
    service.cancel(job.id)
    after = service.submit(video_job(write_moving_video(tmp_path / "short.mp4", 4, 4.0)))
    ended(service, after.id)  # the one job thread has left the cancelled video behind
    final = service.get(job.id)
    status = service.videos.status(final)
    assert final.state is JobState.CANCELLED and status is not None
    assert 30 <= status["frames_done"] < 90 and "tracks" not in status
    assert service.items(job.id)[0].state is ItemState.CANCELLED


def test_a_video_job_succeeds_with_its_summary(tmp_path: Path, slow: Setup) -> None:
    service = slow.service()
    job = service.submit(video_job(write_moving_video(tmp_path / "moving.mp4", 20, 10.0), frame_stride=2))
    ended(service, job.id)
    final = service.get(job.id)
    assert final.state is JobState.SUCCEEDED
    status = service.videos.status(final)
    assert status is not None and status["frames_done"] == status["frames_total"] == 10
    assert service.videos.frames(final, 0, 3)["total"] == 10
    assert service.results(job.id)["video"]["frames_processed"] == 10


def test_a_classifier_cannot_run_a_video_job(tmp_path: Path, slow: Setup) -> None:
    classifier_model_folder(tmp_path / "models", "tiny-cls")
    setup = dataclasses.replace(slow, repository=ModelRepository.scan(tmp_path / "models"))
    service = setup.service()
    video = write_moving_video(tmp_path / "moving.mp4", 4, 4.0)
    new = dataclasses.replace(video_job(video), model="tiny-cls")
    with pytest.raises(WrongTaskError, match="classifier"):
        service.submit(new)
    assert service.list_jobs(JobQuery()).total == 0


@pytest.mark.parametrize(
    ("stride", "max_fps", "fps", "expected"),
    [
        (1, None, 30.0, 1),
        (1, 10.0, 30.0, 3),
        (1, 7.0, 30.0, 5),
        (4, 10.0, 30.0, 4),
        (1, 60.0, 30.0, 1),
        (2, 5.0, 0.0, 2),
    ],
)
def test_the_stride_is_the_larger_of_frame_stride_and_max_fps(
    stride: int, max_fps: float | None, fps: float, expected: int
) -> None:
    assert VideoOptions(frame_stride=stride, max_fps=max_fps).stride(fps) == expected
