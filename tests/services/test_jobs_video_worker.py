"""A recorded-video job on a Celery worker: ``visionserve serve`` with PostgreSQL, Redis and artifacts
in the database hands the video to one ``visionserve worker``, which tracks, counts and writes the
annotated MP4 (the server runs no embedded pool when a broker is configured)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import cv2
import httpx
import pytest
from tests.integration.streams_server import BLOB, write_blob_model
from tests.jobs_support import Cluster, free_port, wait_for
from tests.services.conftest import Broker
from tests.streams_support import write_moving_video

FRAMES, FPS = 30, 10.0
LINE = {"name": "middle", "start": [160, 0], "end": [160, 240]}


@pytest.fixture
def cluster(tmp_path: Path, postgres_url: str, redis_broker: Broker) -> Iterator[Cluster]:
    write_blob_model(tmp_path / "models")
    env = {key: value for key, value in os.environ.items() if not key.startswith("VISIONSERVE_")}
    env |= {
        "VISIONSERVE_DATABASE_URL": postgres_url,
        "VISIONSERVE_BROKER_URL": redis_broker.url,
        "VISIONSERVE_JOBS_QUEUE": redis_broker.queue,
        "VISIONSERVE_ARTIFACT_STORE": "database",
        "VISIONSERVE_MODELS": str(tmp_path / "models"),
        "VISIONSERVE_DATA_DIR": str(tmp_path / "data"),
    }
    made = Cluster(tmp_path, env)
    yield made
    made.stop()


def test_a_worker_processes_a_video_job_end_to_end(cluster: Cluster, tmp_path: Path) -> None:
    url = cluster.server(free_port())
    cluster.worker(0)
    video = write_moving_video(tmp_path / "moving.mp4", FRAMES, FPS).read_bytes()
    files = [("video", ("moving.mp4", video, "video/mp4"))]
    data = {"model": BLOB, "lines": json.dumps([LINE])}
    answer = httpx.post(f"{url}/v1/jobs", files=files, data=data, timeout=30)
    assert answer.status_code == 202, answer.text
    job_url = f"{url}/v1/jobs/{answer.json()['id']}"
    wait_for(lambda: httpx.get(job_url, timeout=10).json()["state"] not in ("queued", "running"), 60, 0.1)
    job = httpx.get(job_url, timeout=10).json()
    assert job["state"] == "succeeded", (job, cluster.log("worker0"))
    status = job["video"]
    assert status["frames_done"] == FRAMES and len(status["tracks"]) == 1
    (line,) = status["counts"]["lines"]
    assert line["in"] + line["out"] == 1
    mp4 = httpx.get(f"{url}{status['annotated_url']}", timeout=30)
    (tmp_path / "annotated.mp4").write_bytes(mp4.content)
    capture = cv2.VideoCapture(str(tmp_path / "annotated.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == FRAMES
    capture.release()
    assert "blob" in cluster.log("worker0")
