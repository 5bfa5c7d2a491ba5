"""Helpers of the stream server tests: the blob model, a video folder, a small MJPEG camera served
over HTTP that the test can cut, and readers of MJPEG parts and SSE events."""

from __future__ import annotations

import http.server
import json
import shutil
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import httpx
from tests.integration.conftest import write_model
from tests.streams_support import moving_frames

BLOB_SOURCE = Path(__file__).with_name("blob_plugin.py")
BLOB = "blob"


def write_blob_model(repository: Path, name: str = BLOB, **extra: Any) -> Path:
    folder = repository / name
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(BLOB_SOURCE, folder / BLOB_SOURCE.name)
    spec = {"name": name, "backend": "plugin", "plugin": "blob_plugin:Blob", "labels": ["person"], **extra}
    return write_model(folder, spec)


class Camera:
    """An MJPEG camera on 127.0.0.1 (``multipart/x-mixed-replace``) at ``fps``, looping the moving
    photo; :meth:`cut` drops every open connection and refuses new ones until :meth:`restore`."""

    def __init__(self, fps: float = 20.0, frames: int = 40) -> None:
        self.jpegs = [cv2.imencode(".jpg", image)[1].tobytes() for image in moving_frames(frames)]
        self.fps = fps
        self.up = threading.Event()
        self.up.set()
        self.generation = 0
        camera = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if not camera.up.is_set():
                    self.send_error(503)
                    return
                generation = camera.generation
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=cam")
                self.end_headers()
                i = 0
                while camera.up.is_set() and generation == camera.generation:
                    jpeg = camera.jpegs[i % len(camera.jpegs)]
                    head = f"--cam\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
                    try:
                        self.wfile.write(head + jpeg + b"\r\n")
                    except OSError:
                        return
                    i += 1
                    time.sleep(1.0 / camera.fps)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/video.mjpg"

    def cut(self) -> None:
        self.generation += 1
        self.up.clear()

    def restore(self) -> None:
        self.up.set()

    def close(self) -> None:
        self.cut()
        self.server.shutdown()
        self.server.server_close()


def mjpeg_parts(response: httpx.Response) -> Iterator[bytes]:
    """The JPEG bodies of a ``multipart/x-mixed-replace`` response, as they arrive."""
    buffer = b""
    for chunk in response.iter_bytes():
        buffer += chunk
        while True:
            head_end = buffer.find(b"\r\n\r\n")
            if head_end < 0:
                break
            headers = buffer[:head_end].decode("latin-1").lower()
            length = int(headers.split("content-length:")[1].split("\r\n")[0])
            start = head_end + 4
            if len(buffer) < start + length + 2:
                break
            yield buffer[start : start + length]
            buffer = buffer[start + length + 2 :]


def sse_events(response: httpx.Response) -> Iterator[dict[str, Any]]:
    for line in response.iter_lines():
        if line.startswith("data: "):
            yield json.loads(line[6:])


def wait_for(condition: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        time.sleep(0.05)
