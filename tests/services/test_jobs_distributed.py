"""Scale-out for real: a ``visionserve serve`` process and two ``visionserve worker`` processes on
PostgreSQL and Redis or RabbitMQ. One worker is SIGKILLed half-way through a 200-image job; the job
still completes, with every item committed exactly once.

The 200-image job uses the test plugin model (``tests/jobs_support.py``), 30 ms per image, so that
the test takes well under a minute per broker on two cores and so that its log shows which process
saw which image; ``test_a_worker_runs_the_default_model`` runs the real default model through a worker.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import pytest
from pycocotools import mask as coco_mask
from tests.conftest import PHOTOS, encode, photo
from tests.factories import SEG_LABELS, seg_model_folder, solid_image
from tests.jobs_support import (
    BASE_WIDTH,
    PLUGIN_MODEL,
    Cluster,
    free_port,
    numbered_image,
    processed_by,
    wait_for,
    write_plugin_model,
)
from tests.services.conftest import Broker

from visionserve.jobs.model import ItemState
from visionserve.storage.db import Database
from visionserve.storage.jobs import SqlJobStore

IMAGES = 200


def cluster_env(tmp_path: Path, postgres_url: str, broker: Broker) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("VISIONSERVE_")}
    env |= {
        "VISIONSERVE_DATABASE_URL": postgres_url,
        "VISIONSERVE_BROKER_URL": broker.url,
        "VISIONSERVE_JOBS_QUEUE": broker.queue,
        "VISIONSERVE_BROKER_VISIBILITY_TIMEOUT": "8",
        "VISIONSERVE_ARTIFACT_STORE": "database",
        "VISIONSERVE_MODELS": str(tmp_path / "models"),
        "VISIONSERVE_DATA_DIR": str(tmp_path / "data"),
        "VISIONSERVE_JOBS_MAX_IMAGES": str(IMAGES),
    }
    return env


@pytest.fixture
def cluster(tmp_path: Path, postgres_url: str, broker: Broker) -> Iterator[Cluster]:
    write_plugin_model(tmp_path / "models", tmp_path / "seen.log", delay_s=0.03)
    made = Cluster(tmp_path, cluster_env(tmp_path, postgres_url, broker))
    yield made
    made.stop()


def job_state(url: str, job_id: str) -> dict[str, Any]:
    document: dict[str, Any] = httpx.get(f"{url}/v1/jobs/{job_id}", timeout=10).json()
    return document


@pytest.mark.slow
def test_a_killed_worker_loses_nothing_and_duplicates_nothing(cluster: Cluster, postgres_url: str) -> None:
    url = cluster.server(free_port())
    first, second = cluster.worker(0), cluster.worker(1)
    files = [("image", (f"{i}.png", numbered_image(i), "image/png")) for i in range(IMAGES)]
    answer = httpx.post(f"{url}/v1/jobs", files=files, data={"model": PLUGIN_MODEL}, timeout=60)
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["id"]

    wait_for(lambda: job_state(url, job_id)["progress"]["done"] >= IMAGES // 2, 60, 0.05)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(10)
    at_kill = job_state(url, job_id)["progress"]["done"]
    wait_for(lambda: job_state(url, job_id)["state"] != "running", 120, 0.2)

    document = job_state(url, job_id)
    assert document["state"] == "succeeded", document
    assert document["progress"]["done"] == IMAGES and at_kill < IMAGES
    assert second.poll() is None
    results = httpx.get(f"{url}/v1/jobs/{job_id}/results", timeout=30).json()["items"]
    assert [r["width"] for r in results] == [BASE_WIDTH + i for i in range(IMAGES)]  # each result is its image's
    assert all(len(r["detections"]) == 2 for r in results)

    db = Database(postgres_url)
    store = SqlJobStore(db)
    items = store.items(job_id)
    found = store.detections(job_id)
    db.close()
    assert {item.state for item in items} == {ItemState.DONE}
    assert sorted(found) == list(range(IMAGES)) and all(len(rows) == 2 for rows in found.values())
    workers = {first.pid, second.pid}
    seen = processed_by(cluster.root / "seen.log")
    counts: dict[int, int] = {}
    for index, _ in seen:
        counts[index] = counts.get(index, 0) + 1
    assert sorted(counts) == list(range(IMAGES))
    again = {index for index, count in counts.items() if count > 1}
    assert len(again) <= 2, again  # at most what the killed worker held
    assert again <= {item.index for item in items if item.attempts > 1}
    assert {pid for _, pid in seen} == workers  # both shared the load


def test_a_worker_runs_the_default_model(cluster: Cluster) -> None:
    url = cluster.server(free_port())
    cluster.worker(0)
    files = [
        ("image", (f"{name}.jpg", cv2.imencode(".jpg", photo(name))[1].tobytes(), "image/jpeg")) for name in PHOTOS
    ]
    answer = httpx.post(f"{url}/v1/jobs", files=files, data={"crops": "true"}, timeout=30)
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["id"]
    wait_for(lambda: job_state(url, job_id)["state"] != "running" and job_state(url, job_id)["state"] != "queued", 60)
    document = job_state(url, job_id)
    assert document["state"] == "succeeded", document
    for result, label in zip(document["results"], PHOTOS.values(), strict=True):
        assert label in [d["label"] for d in result["detections"]]
        crop = httpx.get(f"{url}{result['crops'][0]}", timeout=10)
        assert crop.status_code == 200 and crop.headers["content-type"] == "image/jpeg"
    worker_log = cluster.log("worker0")
    assert "visionserve.process_item" in worker_log and "'done'" in worker_log


def test_a_worker_runs_a_segment_model_and_stores_its_masks(
    tmp_path: Path, postgres_url: str, redis_broker: Broker
) -> None:
    seg_model_folder(tmp_path / "models", "tiny-seg")
    cluster = Cluster(tmp_path, cluster_env(tmp_path, postgres_url, redis_broker))
    try:
        url = cluster.server(free_port())
        cluster.worker(0)
        image = encode(solid_image(128, 128), ".png")
        answer = httpx.post(
            f"{url}/v1/jobs",
            files=[("image", ("gray.png", image, "image/png"))],
            data={"model": "tiny-seg", "annotate": "true"},
            timeout=30,
        )
        assert answer.status_code == 202, answer.text
        job_id = answer.json()["id"]
        wait_for(lambda: job_state(url, job_id)["state"] not in ("queued", "running"), 60)
        document = job_state(url, job_id)
        assert document["state"] == "succeeded", document
        (result,) = document["results"]
        assert [d["label"] for d in result["detections"]] == list(SEG_LABELS)
        rle = result["detections"][0]["rle"]
        mask = coco_mask.decode(rle | {"counts": rle["counts"].encode()}).astype(bool)
        assert mask[27:53, 27:53].all() and not mask[60:80, 60:80].any()  # the same mask as in a server
        assert httpx.get(f"{url}{result['annotated']}", timeout=10).status_code == 200
        coco = httpx.get(f"{url}/v1/jobs/{job_id}/results", params={"format": "coco"}, timeout=10).json()
        assert coco["annotations"][0]["segmentation"] == rle and coco["annotations"][0]["area"] == int(mask.sum())
        assert "visionserve.process_item" in cluster.log("worker0")
    finally:
        cluster.stop()
