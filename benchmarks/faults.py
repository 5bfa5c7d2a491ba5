"""Faults while jobs run: every item must end done exactly once, with the answer of its image alone.

Scenarios (each on a fresh job of ``--images`` real photos on the default model):

* ``server-kill``: the embedded runner on SQLite; the server is SIGKILLed mid-job and started again
  on the same data folder;
* ``worker-kill``: PostgreSQL and Redis, two Celery workers; one is SIGKILLed mid-job (and, with
  ``--rabbitmq``, the same on the shared RabbitMQ);
* ``broker-restart``: Redis is stopped mid-job for ``--down`` seconds and started again, with an
  append-only file (``broker-restart``) and without persistence (``broker-restart-volatile``), and a
  private RabbitMQ node's application is stopped and started (``broker-restart-rabbitmq``); the
  worker is started again whenever it exits (a supervisor), the server re-dispatches after 20 s
  without progress;
* ``database-restart``: PostgreSQL is stopped mid-job for ``--down`` seconds; ``/readyz`` must answer
  503 while it is down and 200 again by itself after.

Redis, PostgreSQL and (for its restart) RabbitMQ are private instances
(:mod:`benchmarks.fault_services`): their restarts disturb nobody else. Loopback only; every wait
is bounded. Run as root (PostgreSQL runs as ``postgres``, RabbitMQ as ``rabbitmq``):

    python -m benchmarks.faults [--only server-kill,worker-kill] [--images 60] [--down 5] [--out faults.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from benchmarks.fault_services import PrivatePostgres, PrivateRabbit, PrivateRedis
from benchmarks.jobs import Processes
from benchmarks.soak import photos

AMQP_URL = os.environ.get("VISIONSERVE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
JOB_PHOTOS = ("astronaut-512", "chelsea-451", "coffee-600")
#: Seconds a server or worker may take to start (a shared, busy machine is slow).
START_S = 240.0
#: The server's re-dispatch deadline in the broker restarts (``VISIONSERVE_JOBS_REDISPATCH_AFTER``).
REDISPATCH_AFTER_S = 20


def wait_for(condition: Callable[[], bool], timeout: float, every: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError, KeyError, ValueError):
            if condition():
                return True
        time.sleep(every)
    return False


def job(url: str, job_id: str) -> dict[str, Any]:
    document: dict[str, Any] = httpx.get(f"{url}/v1/jobs/{job_id}", timeout=10).json()
    return document


def submit(url: str, images: dict[str, bytes], count: int) -> str:
    names = [JOB_PHOTOS[i % len(JOB_PHOTOS)] for i in range(count)]
    files = [("image", (f"{i}-{name}.jpg", images[name], "image/jpeg")) for i, name in enumerate(names)]
    answer = httpx.post(f"{url}/v1/jobs", files=files, timeout=60)
    answer.raise_for_status()
    return str(answer.json()["id"])


def references(url: str, images: dict[str, bytes]) -> dict[str, list[Any]]:
    """Each photo's detections from a one-image job run alone (no fault)."""
    found = {}
    for name in JOB_PHOTOS:
        answer = httpx.post(f"{url}/v1/jobs", files=[("image", (f"{name}.jpg", images[name], "image/jpeg"))])
        job_id = answer.json()["id"]
        if not wait_for(lambda job_id=job_id: job(url, job_id)["state"] == "succeeded", 120):
            raise RuntimeError(f"the reference job of {name} did not succeed")
        found[name] = results(url, job_id)[0]["detections"]
    return found


def results(url: str, job_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = httpx.get(f"{url}/v1/jobs/{job_id}/results", timeout=60).json()["items"]
    return items


def verdict(url: str, job_id: str, expected: dict[str, list[Any]], count: int, ended: bool) -> dict[str, Any]:
    """What became of every item: states, attempts, and answers compared with the photo alone."""
    if not ended:
        return {"ended": False, "progress": job(url, job_id)["progress"]}
    items = results(url, job_id)
    same = sum(it["detections"] == expected[JOB_PHOTOS[it["index"] % len(JOB_PHOTOS)]] for it in items)
    return {
        "ended": True,
        "state": job(url, job_id)["state"],
        "items": len(items),
        "indices_once": sorted(it["index"] for it in items) == list(range(count)),
        "states": dict(Counter(it["state"] for it in items)),
        "retried": sum(it["attempts"] > 1 for it in items),
        "same_as_alone": same,
        "held": len(items) == count and same == count and all(it["state"] == "done" for it in items),
    }


@contextlib.contextmanager
def cluster(env: dict[str, str]) -> Iterator[Processes]:
    root = Path(tempfile.mkdtemp(prefix="visionserve-faults-"))
    base = {k: v for k, v in os.environ.items() if not k.startswith("VISIONSERVE_")}
    made = Processes(root, base | {"VISIONSERVE_DATA_DIR": str(root / "data")} | env)
    try:
        yield made
    finally:
        made.stop()


def mid_job(url: str, job_id: str, count: int) -> None:
    """Wait until a quarter of the job is done (and at most half: the fault must land mid-job)."""
    if not wait_for(lambda: job(url, job_id)["progress"]["done"] >= count // 4, 180, 0.05):
        raise RuntimeError("the job did not progress")


def server_kill(images: dict[str, bytes], count: int, _: float) -> dict[str, Any]:
    with cluster({"VISIONSERVE_JOBS_MAX_IMAGES": str(count)}) as procs:
        url = procs.server(START_S)
        expected = references(url, images)
        job_id = submit(url, images, count)
        mid_job(url, job_id, count)
        server = procs.running[0]
        os.kill(server.pid, signal.SIGKILL)
        server.wait(10)
        procs.running.remove(server)
        url = procs.server(START_S)
        ended = wait_for(lambda: job(url, job_id)["state"] not in {"queued", "running"}, 300)
        return {"fault": "server SIGKILLed mid-job, restarted", **verdict(url, job_id, expected, count, ended)}


def celery(env_extra: dict[str, str], count: int, workers: int) -> tuple[Processes, str, contextlib.ExitStack]:
    stack = contextlib.ExitStack()
    env = {
        "VISIONSERVE_BROKER_VISIBILITY_TIMEOUT": "10",
        "VISIONSERVE_ARTIFACT_STORE": "database",
        "VISIONSERVE_JOBS_MAX_IMAGES": str(count),
        "VISIONSERVE_JOBS_QUEUE": f"faults-{os.getpid()}-{time.monotonic_ns()}",
        **env_extra,
    }
    procs = stack.enter_context(cluster(env))
    url = procs.server(START_S)
    for index in range(workers):
        procs.spawn(f"worker{index}", "worker", "--index", str(index), "--device", "cpu")
        procs.wait_for_log(f"worker{index}", " ready.", START_S)
    return procs, url, stack


def worker_kill(broker: str) -> Callable[[dict[str, bytes], int, float], dict[str, Any]]:
    def scenario(images: dict[str, bytes], count: int, _: float) -> dict[str, Any]:
        with contextlib.ExitStack() as outer:
            postgres = PrivatePostgres()
            outer.callback(postgres.close)
            if broker == "redis":
                redis = PrivateRedis(persistent=False)
                outer.callback(redis.close)
                broker_url = redis.url
            else:
                broker_url = AMQP_URL
            env = {"VISIONSERVE_DATABASE_URL": postgres.url, "VISIONSERVE_BROKER_URL": broker_url}
            procs, url, stack = celery(env, count, workers=2)
            outer.enter_context(stack)
            expected = references(url, images)
            job_id = submit(url, images, count)
            mid_job(url, job_id, count)
            victim = procs.running[1]
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait(10)
            ended = wait_for(lambda: job(url, job_id)["state"] not in {"queued", "running"}, 300)
            return {
                "fault": f"Celery worker SIGKILLed mid-job ({broker})",
                **verdict(url, job_id, expected, count, ended),
            }

    return scenario


def supervise(procs: Processes, exits: list[int | None]) -> bool:
    """What a process supervisor (``Restart=always``) does: start a new worker 0 when it has exited,
    recording its exit status. True, so that it can lead a wait condition."""
    worker = procs.running[-1]
    if worker.poll() is not None:
        exits.append(worker.returncode)
        procs.running.remove(worker)
        procs.spawn("worker0", "worker", "--index", "0", "--device", "cpu")
        procs.wait_for_log("worker0", " ready.", START_S)
    return True


def broker_restart(kind: str) -> Callable[[dict[str, bytes], int, float], dict[str, Any]]:
    """``kind``: ``redis-aof`` (append-only file), ``redis`` (no persistence) or ``rabbitmq`` (a
    private node; durable queue, persistent messages)."""

    def scenario(images: dict[str, bytes], count: int, down: float) -> dict[str, Any]:
        with contextlib.ExitStack() as outer:
            postgres = PrivatePostgres()
            outer.callback(postgres.close)
            broker = PrivateRabbit() if kind == "rabbitmq" else PrivateRedis(persistent=kind == "redis-aof")
            outer.callback(broker.close)
            env = {
                "VISIONSERVE_DATABASE_URL": postgres.url,
                "VISIONSERVE_BROKER_URL": broker.url,
                "VISIONSERVE_JOBS_REDISPATCH_AFTER": str(REDISPATCH_AFTER_S),
            }
            procs, url, stack = celery(env, count, workers=1)
            outer.enter_context(stack)
            expected = references(url, images)
            job_id = submit(url, images, count)
            mid_job(url, job_id, count)
            broker.restart(down)
            exits: list[int | None] = []
            ended = wait_for(
                lambda: supervise(procs, exits) and job(url, job_id)["state"] not in {"queued", "running"}, 180
            )
            what = {"redis-aof": "Redis with an append-only file", "redis": "Redis without persistence"}
            fault = f"{what.get(kind, 'RabbitMQ (private node)')} restarted mid-job; worker restarted when it exited"
            return {"fault": fault, "worker_exits": exits, **verdict(url, job_id, expected, count, ended)}

    return scenario


def database_restart(images: dict[str, bytes], count: int, down: float) -> dict[str, Any]:
    with contextlib.ExitStack() as outer:
        postgres = PrivatePostgres()
        outer.callback(postgres.close)
        procs = outer.enter_context(cluster({"VISIONSERVE_DATABASE_URL": postgres.url}))
        url = procs.server(START_S)
        expected = references(url, images)
        job_id = submit(url, images, count)
        mid_job(url, job_id, count)
        postgres.stop()
        went_unready = wait_for(lambda: httpx.get(f"{url}/readyz", timeout=5).status_code == 503, max(down, 5))
        time.sleep(max(0.0, down - 1))
        postgres.start()
        started = time.monotonic()
        back = wait_for(lambda: httpx.get(f"{url}/readyz", timeout=5).status_code == 200, 60)
        recovered_s = round(time.monotonic() - started, 1)
        ended = wait_for(lambda: job(url, job_id)["state"] not in {"queued", "running"}, 300)
        return {
            "fault": f"PostgreSQL stopped mid-job for {down:g} s (embedded runner)",
            "readyz_503_while_down": went_unready,
            "readyz_200_after_s": recovered_s if back else None,
            **verdict(url, job_id, expected, count, ended),
        }


SCENARIOS: dict[str, Callable[[dict[str, bytes], int, float], dict[str, Any]]] = {
    "server-kill": server_kill,
    "worker-kill": worker_kill("redis"),
    "worker-kill-rabbitmq": worker_kill("rabbitmq"),
    "broker-restart": broker_restart("redis-aof"),
    "broker-restart-volatile": broker_restart("redis"),
    "broker-restart-rabbitmq": broker_restart("rabbitmq"),
    "database-restart": database_restart,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios")
    parser.add_argument("--images", type=int, default=60, help="images per job")
    parser.add_argument("--down", type=float, default=5.0, help="seconds a service stays down")
    parser.add_argument("--out", type=Path, help="also write the report here as JSON")
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C, so that the private services are stopped and removed.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(1))
    images = photos()
    report = {}
    for name in args.only.split(","):
        started = time.monotonic()
        try:
            report[name] = SCENARIOS[name](images, args.images, args.down)
        except (RuntimeError, httpx.HTTPError, OSError) as exc:
            report[name] = {"error": f"{type(exc).__name__}: {exc}", "held": False}
        report[name]["seconds"] = round(time.monotonic() - started, 1)
        print(name, json.dumps(report[name]), flush=True)
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    sys.exit(0 if all(r.get("held") for r in report.values()) else 1)


if __name__ == "__main__":
    main()
