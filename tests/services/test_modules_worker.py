"""An analysis module (tests/module_support.py) served by real ``visionserve worker`` processes on
PostgreSQL and Redis: one module instance per worker process, told its GPU, picked by worker index
(``--device auto``). The machine's GPUs are what ``nvidia-smi -L`` lists: a stand-in script on
``PATH`` lists two, so that the choice is seen without a GPU (the test module never touches CUDA)."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from tests.jobs_support import Cluster, free_port, wait_for
from tests.module_support import blobs_image, loads, png, write_colour_module
from tests.services.conftest import Broker

FAKE_NVIDIA_SMI = "#!/bin/sh\necho 'GPU 0: Stand-in (UUID: GPU-0)'\necho 'GPU 1: Stand-in (UUID: GPU-1)'\n"


def cluster_env(tmp_path: Path, postgres_url: str, broker: Broker) -> dict[str, str]:
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "nvidia-smi").write_text(FAKE_NVIDIA_SMI)
    (tools / "nvidia-smi").chmod(0o755)
    env = {key: value for key, value in os.environ.items() if not key.startswith("VISIONSERVE_")}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    return env | {
        "PATH": f"{tools}{os.pathsep}{env.get('PATH', '')}",
        "VISIONSERVE_DATABASE_URL": postgres_url,
        "VISIONSERVE_BROKER_URL": broker.url,
        "VISIONSERVE_JOBS_QUEUE": broker.queue,
        "VISIONSERVE_ARTIFACT_STORE": "database",
        "VISIONSERVE_MODELS": str(tmp_path / "models"),
        "VISIONSERVE_DATA_DIR": str(tmp_path / "data"),
        "VISIONSERVE_PRELOAD": "none",
    }


def start_worker(cluster: Cluster, index: int) -> int:
    name = f"worker{index}"
    process = cluster.spawn(name, "worker", "--index", str(index), "--device", "auto")
    wait_for(lambda: " ready." in cluster.log(name) or process.poll() is not None, 60, 0.1)
    assert process.poll() is None, cluster.log(name)
    return process.pid


def run_job(url: str, images: int) -> dict[str, object]:
    files = [("image", (f"{i}.png", png(blobs_image()), "image/png")) for i in range(images)]
    answer = httpx.post(f"{url}/v1/jobs", files=files, data={"model": "colours"}, timeout=30)
    assert answer.status_code == 202, answer.text
    job_url = f"{url}/v1/jobs/{answer.json()['id']}"
    wait_for(lambda: httpx.get(job_url, timeout=10).json()["state"] not in ("queued", "running"), 90, 0.1)
    document: dict[str, object] = httpx.get(job_url, timeout=10).json()
    return document


@pytest.mark.slow
def test_a_worker_serves_a_module_once_per_process_on_the_gpu_of_its_index(
    tmp_path: Path, postgres_url: str, redis_broker: Broker
) -> None:
    folder = write_colour_module(tmp_path / "models", "colours")
    cluster = Cluster(tmp_path, cluster_env(tmp_path, postgres_url, redis_broker))
    try:
        url = cluster.server(free_port())
        pid = start_worker(cluster, 3)  # worker 3 of a machine with 2 GPUs: GPU 3 % 2 = 1
        assert "visionserve worker 3 on cuda:1" in cluster.log("worker3")
        job = run_job(url, images=6)
        assert job["state"] == "succeeded", job
        results = job["results"]
        assert isinstance(results, list) and len(results) == 6
        for result in results:
            assert [d["label"] for d in result["detections"]] == ["red", "green"]
            assert "candidates" not in result["detections"][0]  # jobs keep the top label
        # Built once for six items; the worker pinned its GPU (CUDA_VISIBLE_DEVICES=1) before loading,
        # so the module is told GPU 0 of the one it sees.
        assert loads(folder) == [[str(pid), "cuda:0", "0", "1"]]
        assert "visionserve.process_item" in cluster.log("worker3")
    finally:
        cluster.stop()
