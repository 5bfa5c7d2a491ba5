"""The embedded set-up for real: a ``visionserve serve`` process on SQLite, stopped in the middle of a
job (SIGKILL, or SIGTERM) and started again on the same data folder. The job completes; items done
before the stop are not done again; only the item in progress at a SIGKILL is repeated.

The job uses the test plugin model (50 ms per image) so that the stop lands in the middle of it.
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.jobs_support import (
    PLUGIN_MODEL,
    Cluster,
    free_port,
    numbered_image,
    processed_by,
    wait_for,
    write_plugin_model,
)

from visionserve.jobs.model import ItemState
from visionserve.storage.db import Database, sqlite_url
from visionserve.storage.jobs import SqlJobStore

IMAGES = 40


@pytest.fixture
def cluster(tmp_path: Path) -> Any:
    write_plugin_model(tmp_path / "models", tmp_path / "seen.log", delay_s=0.05)
    env = {key: value for key, value in os.environ.items() if not key.startswith("VISIONSERVE_")}
    env |= {"VISIONSERVE_MODELS": str(tmp_path / "models"), "VISIONSERVE_DATA_DIR": str(tmp_path / "data")}
    made = Cluster(tmp_path, env)
    yield made
    made.stop()


def state(url: str, job_id: str) -> dict[str, Any]:
    document: dict[str, Any] = httpx.get(f"{url}/v1/jobs/{job_id}", timeout=10).json()
    return document


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
def test_a_restarted_server_finishes_the_job_without_repeating_items(cluster: Cluster, stop: signal.Signals) -> None:
    port = free_port()
    url = cluster.server(port)
    server = cluster.processes[-1]
    files = [("image", (f"{i}.png", numbered_image(i), "image/png")) for i in range(IMAGES)]
    answer = httpx.post(f"{url}/v1/jobs", files=files, data={"model": PLUGIN_MODEL}, timeout=30)
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["id"]
    wait_for(lambda: state(url, job_id)["progress"]["done"] >= 10, 60, 0.02)
    os.kill(server.pid, stop)
    server.wait(30)
    first_run = {pid for _, pid in processed_by(cluster.root / "seen.log")}

    url = cluster.server(port)
    wait_for(lambda: state(url, job_id)["state"] != "running", 60, 0.1)
    assert state(url, job_id)["state"] == "succeeded"

    db = Database(sqlite_url(cluster.root / "data"))
    items = SqlJobStore(db).items(job_id)
    db.close()
    assert {item.state for item in items} == {ItemState.DONE}
    seen = processed_by(cluster.root / "seen.log")
    counts = Counter(index for index, _ in seen)
    assert sorted(counts) == list(range(IMAGES))
    repeated = {index for index, count in counts.items() if count > 1}
    if stop is signal.SIGTERM:
        assert repeated == set() and {item.attempts for item in items} == {1}
    else:
        assert len(repeated) <= 1 and repeated <= {item.index for item in items if item.attempts == 2}
    assert len({pid for _, pid in seen} - first_run) == 1  # the second server did the rest
