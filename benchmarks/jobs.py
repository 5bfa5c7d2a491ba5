"""Throughput of jobs: a 200-image job on the embedded pool and on 1 and 2 Celery workers, beside the
synchronous path (``POST /v1/detect``), all on the same server build, images and machine.

Every figure is images per second from the first byte sent to the last result stored (for a job:
``POST /v1/jobs`` until ``GET /v1/jobs/{id}`` says it ended). The default model, a 640x480 JPEG of
the astronaut photo. Celery runs need PostgreSQL (127.0.0.1:5432) and Redis (6379); they are
skipped, with the reason, when those cannot be reached.

    python -m benchmarks.jobs [--images 200] [--clients 4]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx

from benchmarks.common import jpeg

POSTGRES_ADMIN = os.environ.get("VISIONSERVE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("VISIONSERVE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def reachable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


class Processes:
    """``python -m visionserve ...`` processes with one environment; all stopped on exit."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.env = env
        self.running: list[subprocess.Popen[bytes]] = []

    def spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        with open(self.root / f"{name}.log", "wb") as log:
            command = [sys.executable, "-m", "visionserve", *args]
            process = subprocess.Popen(command, env=self.env, stdout=log, stderr=log)
        self.running.append(process)
        return process

    def wait_for_log(self, name: str, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text not in (self.root / f"{name}.log").read_text(errors="replace"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not log {text!r}; see {self.root / name}.log")
            time.sleep(0.1)

    def server(self, timeout: float = 60) -> str:
        port = free_port()
        self.spawn("server", "serve", "--port", str(port), "--no-access-log")
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    return url
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not ready; see {self.root}/server.log")
            time.sleep(0.1)

    def stop(self) -> None:
        for process in self.running:
            process.terminate()
        for process in self.running:
            process.wait(30)


@contextmanager
def processes(env: dict[str, str]) -> Iterator[Processes]:
    with tempfile.TemporaryDirectory(prefix="visionserve-bench-") as root:
        base = {k: v for k, v in os.environ.items() if not k.startswith("VISIONSERVE_")}
        made = Processes(Path(root), base | {"VISIONSERVE_DATA_DIR": str(Path(root) / "data")} | env)
        try:
            yield made
        finally:
            made.stop()


def job_rate(url: str, image: bytes, count: int) -> float:
    """Images per second of one job of ``count`` copies of ``image``, upload included."""
    files = [("image", (f"{i}.jpg", image, "image/jpeg")) for i in range(count)]
    start = time.perf_counter()
    answer = httpx.post(f"{url}/v1/jobs", files=files, timeout=300)
    answer.raise_for_status()
    job_id = answer.json()["id"]
    with httpx.Client(base_url=url, timeout=30) as client:
        while True:
            document = client.get(f"/v1/jobs/{job_id}").json()
            if document["state"] in {"succeeded", "failed", "cancelled"}:
                break
            time.sleep(0.05)
    elapsed = time.perf_counter() - start
    if document["progress"]["done"] != count:
        raise RuntimeError(f"job ended {document['state']} with {document['progress']}")
    return count / elapsed


def sync_rate(url: str, image: bytes, count: int, clients: int) -> float:
    """Images per second of ``count`` ``POST /v1/detect`` requests from ``clients`` threads."""

    def send(n: int) -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            for _ in range(n):
                client.post("/v1/detect", files={"image": ("a.jpg", image, "image/jpeg")}).raise_for_status()

    shares = [count // clients + (1 if i < count % clients else 0) for i in range(clients)]
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(send, shares))
    return count / (time.perf_counter() - start)


@contextmanager
def postgres_database() -> Iterator[str]:
    import psycopg

    name = f"visionserve_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield POSTGRES_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def celery_rate(image: bytes, count: int, workers: int) -> float:
    queue = f"visionserve-bench-{uuid.uuid4().hex[:8]}"
    with postgres_database() as database_url:
        env = {
            "VISIONSERVE_DATABASE_URL": database_url,
            "VISIONSERVE_BROKER_URL": REDIS_URL,
            "VISIONSERVE_JOBS_QUEUE": queue,
            "VISIONSERVE_ARTIFACT_STORE": "database",
        }
        with processes(env) as running:
            url = running.server()
            for index in range(workers):
                running.spawn(f"worker{index}", "worker", "--index", str(index), "--device", "cpu")
                running.wait_for_log(f"worker{index}", " ready.")
            job_rate(url, image, 4)  # every worker loads its model on its first item
            rate = job_rate(url, image, count)
    import redis

    with redis.Redis.from_url(REDIS_URL) as client:  # kombu's keys of this run's queue
        for key in client.scan_iter(match=f"*{queue}*"):
            client.delete(key)
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients of the synchronous path")
    args = parser.parse_args()
    image = jpeg(640, 480)
    rows: list[tuple[str, str]] = []
    with processes({"VISIONSERVE_JOBS_WORKERS": "1"}) as running:
        url = running.server()
        sync_rate(url, image, 8, 1)
        rows.append(("sync POST /v1/detect, 1 client", f"{sync_rate(url, image, args.images, 1):6.1f}"))
        concurrent = sync_rate(url, image, args.images, args.clients)
        rows.append((f"sync POST /v1/detect, {args.clients} clients", f"{concurrent:6.1f}"))
        job_rate(url, image, 4)
        rows.append(("job, embedded pool (1 thread), SQLite", f"{job_rate(url, image, args.images):6.1f}"))
    with processes({"VISIONSERVE_JOBS_WORKERS": "2"}) as running:
        url = running.server()
        job_rate(url, image, 4)
        rows.append(("job, embedded pool (2 threads), SQLite", f"{job_rate(url, image, args.images):6.1f}"))
    for workers in (1, 2):
        label = f"job, Celery {workers} worker{'s' if workers > 1 else ''}, Redis + PostgreSQL"
        if not (reachable(5432) and reachable(6379)):
            rows.append((label, "skipped: PostgreSQL or Redis not reachable"))
            continue
        rows.append((label, f"{celery_rate(image, args.images, workers):6.1f}"))
    print(f"{args.images} images of 640x480, default model, {os.cpu_count()} cores")
    print(f"{'path':52} images/s")
    for name, value in rows:
        print(f"{name:52} {value}")


if __name__ == "__main__":
    main()
