"""Recorded-video jobs against a real server process: a generated video of a real photo moving across
the frame, submitted to POST /v1/jobs as a video, run on the embedded pool with the blob model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import pytest
from tests.integration.conftest import ServerProcess, running_server
from tests.integration.streams_server import BLOB, wait_for, write_blob_model
from tests.streams_support import write_moving_video

FRAMES, FPS, WIDTH, HEIGHT = 40, 10.0, 320, 240
LINE = {"name": "middle", "start": [WIDTH / 2, 0], "end": [WIDTH / 2, HEIGHT]}
ZONE = {"name": "right", "polygon": [[WIDTH / 2, 0], [WIDTH, 0], [WIDTH, HEIGHT], [WIDTH / 2, HEIGHT]]}


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = write_moving_video(tmp_path_factory.mktemp("video") / "moving.mp4", FRAMES, FPS, WIDTH, HEIGHT)
    return path.read_bytes()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    repository = tmp_path_factory.mktemp("models")
    write_blob_model(repository)
    args = ("--models", str(repository), "--preload", BLOB)
    env = {"VISIONSERVE_JOBS_MAX_VIDEO_FRAMES": "100"}
    with running_server(args, env, log_dir=tmp_path_factory.mktemp("logs")) as running:
        yield running


@pytest.fixture
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60.0) as client:
        yield client


def submit(http: httpx.Client, data: bytes, **fields: Any) -> httpx.Response:
    files = [("video", ("moving.mp4", data, "video/mp4"))]
    return http.post("/v1/jobs", files=files, data={"model": BLOB, **fields})


def finished(http: httpx.Client, answer: httpx.Response) -> dict[str, Any]:
    assert answer.status_code == 202, answer.text
    url = f"/v1/jobs/{answer.json()['id']}"
    wait_for(lambda: http.get(url).json()["state"] not in ("queued", "running"), 60)
    document: dict[str, Any] = http.get(url).json()
    assert document["state"] == "succeeded", document
    return document


def test_a_video_job_tracks_counts_and_draws_the_moving_photo(http: httpx.Client, tmp_path: Path, video: bytes) -> None:

    answer = submit(http, video, lines=json.dumps([LINE]), zones=json.dumps([ZONE]))
    assert answer.json()["options"]["video"]["lines"][0]["name"] == "middle"
    job = finished(http, answer)
    status = job["video"]
    assert (status["frames_done"], status["frames_total"], status["frames_processed"]) == (FRAMES, FRAMES, FRAMES)
    assert status["info"] == {"frames": FRAMES, "fps": FPS, "width": WIDTH, "height": HEIGHT}
    (track,) = status["tracks"]
    assert track["label"] == "person" and track["frames"] >= FRAMES - 3 and track["last_frame"] == FRAMES - 1
    (line,) = status["counts"]["lines"]
    assert line["in"] + line["out"] == 1
    assert status["zone_peaks"] == {"right": 1}

    page = http.get(status["frames_url"], params={"limit": 15, "offset": 5}).json()
    assert page["total"] == FRAMES and [f["frame"] for f in page["frames"]] == list(range(5, 20))
    assert page["page"]["next"] is not None
    assert {row[0] for frame in page["frames"] for row in frame["detections"]} == {track["id"]}

    mp4 = http.get(status["annotated_url"])
    assert mp4.status_code == 200 and mp4.headers["content-type"] == "video/mp4"
    (tmp_path / "annotated.mp4").write_bytes(mp4.content)
    capture = cv2.VideoCapture(str(tmp_path / "annotated.mp4"))
    decoded = 0
    while capture.read()[0]:
        decoded += 1
    capture.release()
    assert decoded == FRAMES


@pytest.mark.parametrize("fields", [{"frame_stride": "4"}, {"max_fps": "2.5"}, {"max_fps": "3", "frame_stride": "4"}])
def test_frame_stride_and_max_fps_process_every_nth_frame(
    http: httpx.Client, video: bytes, fields: dict[str, str]
) -> None:
    job = finished(http, submit(http, video, track="false", **fields))
    assert job["video"]["frames_total"] == FRAMES // 4 and job["video"]["frame_stride"] == 4
    assert job["video"]["frames_processed"] == FRAMES // 4
    page = http.get(job["video"]["frames_url"]).json()
    assert [f["frame"] for f in page["frames"]] == list(range(0, FRAMES, 4))
    assert all(row[0] == -1 for f in page["frames"] for row in f["detections"])


@pytest.mark.parametrize(
    ("data", "code"),
    [(b"this is not a video at all", "bad_video"), (None, "bad_video")],
    ids=["text", "truncated"],
)
def test_unreadable_videos_are_refused_at_submission(
    http: httpx.Client, video: bytes, data: bytes | None, code: str
) -> None:
    before = http.get("/v1/jobs").json()["total"]
    answer = submit(http, data if data is not None else video[: len(video) // 3])
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == code
    assert http.get("/v1/jobs").json()["total"] == before


def test_bad_video_parameters_are_clear_422s(http: httpx.Client, video: bytes) -> None:

    cases = [
        submit(http, video, lines=json.dumps([LINE]), track="false"),
        submit(http, video, zones="not json"),
        submit(http, video, lines=json.dumps([{**LINE, "end": LINE["start"]}])),
        submit(http, video, zones=json.dumps([{**ZONE, "classes": ["unicorn"]}])),
        submit(http, video, frame_stride="0"),
        submit(http, video, max_fps="0"),
        http.post(
            "/v1/jobs",
            files=[("image", ("a.png", video, "image/png"))],
            data={"model": BLOB, "zones": "[]", "frame_stride": "2"},
        ),
    ]
    for answer in cases:
        assert answer.status_code == 422, answer.text


def test_a_video_over_the_frame_limit_is_refused(http: httpx.Client, tmp_path: Path) -> None:
    long = write_moving_video(tmp_path / "long.mp4", 120, FPS, 160, 120).read_bytes()
    answer = submit(http, long)
    assert answer.status_code == 422 and "limit is 100" in answer.text


def test_an_image_job_has_no_video(http: httpx.Client) -> None:
    image = cv2.imencode(".png", cv2.UMat(48, 64, cv2.CV_8UC3).get())[1].tobytes()
    job = finished(http, http.post("/v1/jobs", files=[("image", ("a.png", image, "image/png"))], data={"model": BLOB}))
    assert "video" not in job
    assert http.get(f"/v1/jobs/{job['id']}/video").status_code == 404
    assert http.get(f"/v1/jobs/{job['id']}/frames").status_code == 404
