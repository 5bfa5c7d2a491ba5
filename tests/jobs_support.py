"""Helpers for the jobs tests.

* ``LoggingBoxes``, a plugin model that logs every image it sees. It identifies an image by its width
  (``BASE_WIDTH + index``, see :func:`numbered_image`), so a test can tell from the log which items
  were processed, how often and by which process (images without the colour signature of numbered
  images, such as a server's warm-up, are not logged). It appends one line ``index pid`` per image to
  the file named by ``options.log`` (``O_APPEND`` writes of one short line are atomic between
  processes), sleeps ``options.delay_s`` per image, and returns two boxes per image: class 0 score
  0.9 on the centre half and class 1 score 0.6 on the top-left quarter.
* :class:`Receiver`: a small HTTP server for webhooks and image URLs.
* :class:`Cluster`: ``python -m visionserve serve|worker`` processes with their logs.
* :class:`Recorder`: a runner that only records what it is given.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import httpx
import numpy as np

from visionserve.core.detections import Detections
from visionserve.models.spec import ModelSpec
from visionserve.outbound import OutboundPolicy, parse_networks
from visionserve.types import BGRImage

BASE_WIDTH = 40
#: Loopback: where the test receivers listen, which servers refuse unless an operator allows it.
LOOPBACK = parse_networks(["127.0.0.0/8"])
PLUGIN_MODEL = "logging-boxes"
LABELS = ("widget", "gadget")
#: Green and red of every numbered image (lossless PNG keeps them exact).
SIGNATURE = (90, 160)


class LoggingBoxes:
    def __init__(self) -> None:
        self.log: Path | None = None
        self.delay_s = 0.0

    def load(self, spec: ModelSpec) -> None:
        self.log = Path(spec.options["log"])
        self.delay_s = float(spec.options.get("delay_s", 0.0))

    def predict(self, images: list[BGRImage]) -> list[Detections]:
        found = []
        for image in images:
            height, width = image.shape[:2]
            if self.delay_s:
                time.sleep(self.delay_s)
            if self.log is not None and tuple(image[0, 0, 1:]) == SIGNATURE:  # a numbered image, not a warm-up
                with open(self.log, "a", encoding="utf-8") as out:
                    out.write(f"{width - BASE_WIDTH} {os.getpid()}\n")
            boxes = np.array([[width / 4, height / 4, 3 * width / 4, 3 * height / 4], [0, 0, width / 2, height / 2]])
            found.append(Detections(boxes, np.array([0.9, 0.6]), np.array([0, 1])))
        return found


def write_plugin_model(models_dir: Path, log: Path, delay_s: float = 0.0) -> Path:
    """A model folder for :class:`LoggingBoxes` (this file is copied next to its ``model.yaml``, so
    that worker processes import it from there)."""
    folder = models_dir / PLUGIN_MODEL
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(__file__), folder / "logging_boxes_plugin.py")
    (folder / "model.yaml").write_text(
        f"name: {PLUGIN_MODEL}\n"
        "backend: plugin\n"
        "plugin: logging_boxes_plugin:LoggingBoxes\n"
        f"labels: [{', '.join(LABELS)}]\n"
        f"options: {{log: '{log}', delay_s: {delay_s}}}\n",
        encoding="utf-8",
    )
    return folder


def numbered_image(index: int, height: int = 32) -> bytes:
    """A PNG whose width is ``BASE_WIDTH + index``: the plugin logs ``index`` when it sees it."""
    image = np.full((height, BASE_WIDTH + index, 3), (30 + index % 200, *SIGNATURE), np.uint8)
    ok, buffer = cv2.imencode(".png", image)
    assert ok
    return bytes(buffer.tobytes())


def processed(log: Path) -> Counter[int]:
    """How many times the plugin saw each item index."""
    if not log.exists():
        return Counter()
    return Counter(int(line.split()[0]) for line in log.read_text(encoding="utf-8").splitlines() if line)


def wait_for(condition: Callable[[], object], timeout_s: float = 30.0, interval_s: float = 0.02) -> None:
    """Poll ``condition()`` until it is true; AssertionError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        time.sleep(interval_s)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A small HTTP server on 127.0.0.1 for tests: records every POST and answers with the next status
    of ``statuses`` (then 200); serves ``files`` (path -> bytes) to GET, 404 otherwise."""

    statuses: list[int] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.received.append(Received(self.path, dict(self.headers.items()), body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:
                data = receiver.files.get(self.path)
                self.send_response(200 if data is not None else 404)
                self.send_header("Content-Length", str(len(data or b"")))
                self.end_headers()
                self.wfile.write(data or b"")

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()


def processed_by(log: Path) -> list[tuple[int, int]]:
    """``(item index, pid)`` for every image the plugin saw, in order."""
    return [(int(index), int(pid)) for index, pid in (line.split() for line in log.read_text().splitlines() if line)]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Cluster:
    """Processes started by a test, their logs, and the environment they share."""

    root: Path
    env: dict[str, str]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.root / f"{name}.log", "wb")  # noqa: SIM115  (closed when the process is reaped)
        process = subprocess.Popen(
            [sys.executable, "-m", "visionserve", *args], env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        self.processes.append(process)
        return process

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text(errors="replace")

    def worker(self, index: int) -> subprocess.Popen[bytes]:
        process = self.spawn(f"worker{index}", "worker", "--index", str(index), "--device", "cpu")
        wait_for(lambda: " ready." in self.log(f"worker{index}") or process.poll() is not None, 60, 0.1)
        assert process.poll() is None, self.log(f"worker{index}")
        return process

    def server(self, port: int) -> str:
        process = self.spawn("server", "serve", "--port", str(port), "--no-access-log")
        url = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            if process.poll() is not None:
                return True
            try:
                return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, 60, 0.1)
        assert process.poll() is None, self.log("server")
        return url

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class Recorder:
    """A runner that only records what it is given (so that a test can act as a lost worker)."""

    name = "recorder"
    durable = False

    def __init__(self) -> None:
        self.submitted: list[tuple[str, list[int]]] = []

    def start(self) -> None: ...

    def submit(self, job_id: str, indices: Sequence[int]) -> None:
        self.submitted.append((job_id, list(indices)))

    def notify(self, job_id: str) -> None: ...

    def queue_depth(self) -> int | None:
        return None

    def stop(self) -> None: ...


def loopback_policy(what: str = "webhook_url") -> OutboundPolicy:
    """An outbound policy that allows any host on 127.0.0.0/8 (the test receivers)."""
    return OutboundPolicy(["*"], LOOPBACK, what=what)
