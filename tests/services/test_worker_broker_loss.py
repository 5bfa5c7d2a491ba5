"""A Celery worker that loses its broker exits (non-zero) for its supervisor to restart it, and the
server re-dispatches what the broker lost (issue 11).

Before: a Redis restart while a worker ran an item left the worker alive and deaf ("Couldn't ack",
then no further item taken), and a Redis without persistence lost the queued items for good. Here
Redis is a private ``redis-server`` on a free port (its restart disturbs no other test), PostgreSQL
the test's own database, the model the test plugin (0.4 s per image).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from benchmarks.fault_services import PrivateRedis
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

from visionserve.jobs.model import ItemState
from visionserve.storage.db import Database
from visionserve.storage.jobs import SqlJobStore

IMAGES = 8


@pytest.fixture
def redis() -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (a private Redis is restarted here)")
    made = PrivateRedis(persistent=False)
    yield made
    made.close()


@pytest.fixture
def cluster(tmp_path: Path, postgres_url: str, redis: PrivateRedis) -> Iterator[Cluster]:
    import os

    write_plugin_model(tmp_path / "models", tmp_path / "seen.log", delay_s=0.4)
    env = {key: value for key, value in os.environ.items() if not key.startswith("VISIONSERVE_")}
    env |= {
        "VISIONSERVE_DATABASE_URL": postgres_url,
        "VISIONSERVE_BROKER_URL": redis.url,
        "VISIONSERVE_BROKER_VISIBILITY_TIMEOUT": "8",
        "VISIONSERVE_JOBS_REDISPATCH_AFTER": "4",
        "VISIONSERVE_ARTIFACT_STORE": "database",
        "VISIONSERVE_MODELS": str(tmp_path / "models"),
        "VISIONSERVE_DATA_DIR": str(tmp_path / "data"),
    }
    made = Cluster(tmp_path, env)
    yield made
    made.stop()


def exit_status(process: subprocess.Popen[bytes], timeout: float) -> int | None:
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    return process.poll()


def test_a_worker_exits_when_the_broker_goes_away(cluster: Cluster, redis: PrivateRedis) -> None:
    worker = cluster.worker(0)
    redis.stop()
    status = exit_status(worker, 30)
    assert status not in (None, 0), cluster.log("worker0")
    assert "connection loss" in cluster.log("worker0")


@pytest.mark.slow
def test_a_redis_restart_mid_job_loses_nothing_and_repeats_no_result(
    cluster: Cluster, redis: PrivateRedis, postgres_url: str
) -> None:
    url = cluster.server(free_port())
    worker = cluster.worker(0)
    files = [("image", (f"{i}.png", numbered_image(i), "image/png")) for i in range(IMAGES)]
    answer = httpx.post(f"{url}/v1/jobs", files=files, data={"model": PLUGIN_MODEL}, timeout=60)
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["id"]

    def job() -> dict[str, object]:
        document: dict[str, object] = httpx.get(f"{url}/v1/jobs/{job_id}", timeout=10).json()
        return document

    wait_for(lambda: job()["progress"]["done"] >= 2, 60, 0.05)  # type: ignore[index]
    redis.restart(1.0)  # no persistence: the queued items are gone with it
    status = exit_status(worker, 30)
    assert status not in (None, 0), cluster.log("worker0")  # before: alive, and took no further item
    cluster.worker(1)  # what a supervisor does
    wait_for(lambda: job()["state"] != "running", 90, 0.2)
    assert job()["state"] == "succeeded", (job(), cluster.log("server"), cluster.log("worker1"))
    results = httpx.get(f"{url}/v1/jobs/{job_id}/results", timeout=30).json()["items"]
    assert [r["width"] for r in results] == [BASE_WIDTH + i for i in range(IMAGES)]
    db = Database(postgres_url)
    store = SqlJobStore(db)
    items, found = store.items(job_id), store.detections(job_id)
    db.close()
    assert {item.state for item in items} == {ItemState.DONE}
    assert sorted(found) == list(range(IMAGES)) and all(len(rows) == 2 for rows in found.values())
    assert sorted({index for index, _ in processed_by(cluster.root / "seen.log")}) == list(range(IMAGES))
