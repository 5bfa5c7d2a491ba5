"""Helpers of the live-view browser tests (streams, jobs, webcam): a server with the fast ``blob``
model and a folder of generated videos, a Y4M file for Chromium's fake camera, and small waits.

The ``blob`` model (tests/integration/blob_plugin.py) boxes whatever differs from the flat grey
background of the generated frames, labelled ``person``: fast enough on two shared cores that the
live views show many frames within a test, and exact enough to check where the box is.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tests.integration.conftest import ServerProcess, running_server
from tests.integration.streams_server import BLOB, write_blob_model
from tests.streams_support import moving_frames, write_moving_video

#: The API key of the live-view tests' server.
KEY = "live-views-key"
#: The generated video's name inside the server's video folder, its size and frames.
VIDEO = "moving.mp4"
WIDTH, HEIGHT = 320, 240
FRAMES, FPS = 60, 15.0


@contextlib.contextmanager
def blob_server(folder: Path, *args: str) -> Iterator[ServerProcess]:
    """A server with the ``blob`` model preloaded (the only model) and ``folder/videos`` holding
    :data:`VIDEO`, plus ``args``."""
    repository = folder / "models"
    write_blob_model(repository)
    videos = folder / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    write_moving_video(videos / VIDEO, frames=FRAMES, fps=FPS, width=WIDTH, height=HEIGHT)
    arguments = ("--models", str(repository), "--preload", BLOB, "--video-dir", str(videos), *args)
    with running_server(arguments, log_dir=folder) as server:
        yield server


def write_y4m(path: Path, frames: int = 30, fps: int = 15) -> Path:
    """The moving photo as a YUV4MPEG2 (4:2:0) file, which Chromium's fake camera plays in a loop
    (``--use-file-for-fake-video-capture``)."""
    images = moving_frames(frames, WIDTH, HEIGHT)
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{WIDTH} H{HEIGHT} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for image in images:
            planes: np.ndarray = cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420)
            out.write(b"FRAME\n" + planes.tobytes())
    return path


def write_frames(folder: Path, count: int) -> list[Path]:
    """``count`` PNG frames of the moving photo (the blob model finds one ``person`` in each)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, image in enumerate(moving_frames(count, WIDTH, HEIGHT)):
        path = folder / f"frame-{index:02d}.png"
        cv2.imwrite(str(path), image)
        paths.append(path)
    return paths


def sign_in(page: Any, key: str = KEY, view: str = "try") -> None:
    """Open the page at ``view``, sign in with ``key`` (kept in the tab's sessionStorage) and wait
    until the view is shown."""
    page.goto(f"/#{view}")
    page.locator("#signin-key").fill(key)
    page.locator("#signin-form button[type=submit]").click()
    page.locator(f"#view-{view}").wait_for()
