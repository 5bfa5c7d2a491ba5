"""Real server processes for integration tests.

``python -m visionserve serve`` runs as a subprocess on a free loopback port, with the environment
and arguments a test gives; the helpers wait until ``/readyz`` answers 200 and stop the process with
SIGTERM. Reuse them from any integration test:

* ``start_server(*args, env={...})``: a fixture (a factory) for servers that live for one test;
* :func:`running_server`: a context manager, for module- or session-scoped fixtures;
* :func:`model_repository` helpers write ``model.yaml`` folders: :func:`write_plugin_model` (the
  slow test plugin of ``sleepy_plugin.py``) and :func:`write_default_model_copy` (the default
  network under another name, with other instances or batching).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from visionserve.models.default import default_spec

PLUGIN_SOURCE = Path(__file__).with_name("sleepy_plugin.py")
#: Seconds a server may take to load its models and answer /readyz.
READY_TIMEOUT = 90.0


def free_port() -> int:
    """A TCP port that was free on the loopback interface a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    """A running ``visionserve serve``: its base URL, process and log file (stdout + stderr), and
    ``host:port`` of its KServe v2 gRPC server when it was started with one."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    clients: list[httpx.Client] = field(default_factory=list)
    grpc_target: str | None = None

    def client(self, **kwargs: Any) -> httpx.Client:
        """An httpx client for this server (closed when the server stops)."""
        client = httpx.Client(base_url=self.url, timeout=kwargs.pop("timeout", 30.0), **kwargs)
        self.clients.append(client)
        return client

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def terminate(self) -> None:
        """Send SIGTERM (the graceful stop), without waiting."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then wait for the exit status (SIGKILL after ``timeout`` seconds)."""
        for client in self.clients:
            client.close()
        self.terminate()
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise


def launch_server(
    args: tuple[str, ...] = (),
    env: Mapping[str, str] | None = None,
    log_dir: Path | None = None,
    wait_ready: bool = True,
    grpc: bool = False,
) -> ServerProcess:
    """Start ``python -m visionserve serve --port <free> [args]`` with the current environment minus
    every ``VISIONSERVE_*`` variable, plus ``env``; with ``wait_ready`` return once /readyz is 200.
    Unless ``env`` names one, the data folder (jobs database, artifacts, uploads) is a new temporary
    folder, never the checkout's ``var/``. With ``grpc`` it also serves KServe v2 over gRPC on another
    free port (``server.grpc_target``)."""
    port = free_port()
    grpc_target = None
    if grpc:
        grpc_port = free_port()
        grpc_target = f"127.0.0.1:{grpc_port}"
        args = ("--grpc-port", str(grpc_port), *args)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("VISIONSERVE_")}
    environment.update({"PYTHONUNBUFFERED": "1", "VISIONSERVE_DATA_DIR": tempfile.mkdtemp(prefix="visionserve-data-")})
    environment.update(env or {})
    log_path = (log_dir or Path(tempfile.gettempdir())) / f"visionserve-server-{port}.log"
    command = [sys.executable, "-m", "visionserve", "serve", "--host", "127.0.0.1", "--port", str(port), *args]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment)
    server = ServerProcess(f"http://127.0.0.1:{port}", process, log_path, grpc_target=grpc_target)
    if wait_ready:
        try:
            wait_until_ready(server)
        except BaseException:
            server.stop()
            raise
    return server


def wait_until_ready(server: ServerProcess, timeout: float = READY_TIMEOUT) -> None:
    """Poll /readyz until 200; fail with the server's log if it exits or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"server exited with {server.process.returncode}:\n{server.log()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(server.url + "/readyz", timeout=2.0).status_code == 200:
                return
        time.sleep(0.1)
    pytest.fail(f"server not ready after {timeout} s:\n{server.log()}")


@contextlib.contextmanager
def running_server(
    args: tuple[str, ...] = (), env: Mapping[str, str] | None = None, log_dir: Path | None = None
) -> Iterator[ServerProcess]:
    """A ready server for the duration of the block, stopped with SIGTERM after it."""
    server = launch_server(args, env, log_dir)
    try:
        yield server
    finally:
        if server.process.poll() is None:
            server.stop()


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """``start_server(*args, env=None, wait_ready=True, grpc=False)``: a server that is stopped after the test."""
    started: list[ServerProcess] = []

    def start(
        *args: str, env: Mapping[str, str] | None = None, wait_ready: bool = True, grpc: bool = False
    ) -> ServerProcess:
        server = launch_server(args, env, tmp_path, wait_ready, grpc)
        started.append(server)
        return server

    yield start
    for server in started:
        if server.process.poll() is None:
            server.stop()


def write_model(folder: Path, data: Mapping[str, Any]) -> Path:
    """``folder/model.yaml`` holding ``data``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.yaml"
    path.write_text(yaml.safe_dump(dict(data), sort_keys=False), encoding="utf-8")
    return path


def write_plugin_model(
    repository: Path, name: str, *, delay_s: float = 0.0, crash_on_red: bool = False, **extra: Any
) -> Path:
    """A model folder for :mod:`sleepy_plugin` (labels blue, green, red); ``extra`` adds spec
    fields such as ``instances`` or ``batching``."""
    folder = repository / name
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(PLUGIN_SOURCE, folder / PLUGIN_SOURCE.name)
    spec = {
        "name": name,
        "backend": "plugin",
        "plugin": "sleepy_plugin:Sleepy",
        "labels": ["blue", "green", "red"],
        "options": {"delay_s": delay_s, "crash_on_red": crash_on_red},
        **extra,
    }
    return write_model(folder, spec)


def write_default_model_copy(repository: Path, name: str, **extra: Any) -> Path:
    """The embedded default network under ``name`` (absolute file paths), with ``extra`` fields."""
    spec = default_spec()
    files, _, _ = spec.network
    data = spec.model_dump(mode="json", exclude={"root", "labels", "files"})
    data.update(
        name=name,
        files={"model": str(spec.path(files.model)), "config": str(spec.path(files.config or Path()))},
        labels=str(spec.labels),
        **extra,
    )
    return write_model(repository / name, data)


def metric_sum(text: str, name: str, **labels: str) -> float:
    """The sum of the samples ``name{...}`` of Prometheus text whose labels include ``labels``
    (0 when none)."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        sample, _, value = line.rpartition(" ")
        metric, _, label_text = sample.partition("{")
        if metric != name:
            continue
        found = dict(part.split("=", 1) for part in label_text.rstrip("}").split(",") if "=" in part)
        if all(found.get(key, "").strip('"') == wanted for key, wanted in labels.items()):
            total += float(value)
    return total


#: Limits of the shared server (small enough to test, large enough for the sample photos).
SHARED_MAX_BODY_BYTES = 2_000_000
SHARED_MAX_PIXELS = 4_000_000
#: Models of the shared repository.
SLEEPY, CRASHY, SINGLE, BROKEN = "sleepy", "crashy", "ssd-single", "broken"
SLEEPY_DELAY_S = 0.5


@pytest.fixture(scope="session")
def shared_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository with the slow plugin (queue of 2), a crashing plugin, the default network with
    one instance and a long queue delay, and a folder whose model.yaml does not validate."""
    root = tmp_path_factory.mktemp("repository")
    batching = {"max_batch_size": 4, "max_queue_delay_ms": 50, "queue_size": 2}
    write_plugin_model(root, SLEEPY, delay_s=SLEEPY_DELAY_S, instances=1, batching=batching)
    write_plugin_model(root, CRASHY, crash_on_red=True, instances=1)
    write_default_model_copy(
        root, SINGLE, instances=1, batching={"max_batch_size": 4, "max_queue_delay_ms": 200, "queue_size": 32}
    )
    write_model(root / BROKEN, {"name": BROKEN, "backend": "opencv_dnn", "thresholds": {"conf": 2}})
    return root


@pytest.fixture(scope="session")
def shared_server(shared_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the tests that do not stop it or change its settings."""
    args = (
        "--models",
        str(shared_repository),
        "--max-body-bytes",
        str(SHARED_MAX_BODY_BYTES),
        "--max-image-pixels",
        str(SHARED_MAX_PIXELS),
    )
    with running_server(args, log_dir=tmp_path_factory.mktemp("logs")) as server:
        yield server


@pytest.fixture
def client(shared_server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=shared_server.url, timeout=60.0) as http:
        yield http
