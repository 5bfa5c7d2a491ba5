"""The process-wide decoded-pixel budget against a real server process: a burst of highly
compressible PNGs (tiny bodies, large images) is answered 200 or 429, never a crash, and the
server's peak resident memory stays near the budget instead of growing with the burst."""

from __future__ import annotations

import base64
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from tests.integration.conftest import ServerProcess

pytestmark = pytest.mark.slow

SIDE = 4000  # 16 MP, 48 MB decoded; a few tens of kB as a PNG
BUDGET = 4 * SIDE * SIDE  # one request's four images at a time: 192 MB decoded
REQUESTS, IMAGES_PER_REQUEST = 8, 4  # unbounded, the burst would hold 32 x 48 MB = 1.5 GB


def compressible_png() -> bytes:
    image = np.zeros((SIDE, SIDE, 3), np.uint8)
    image[::97, :, 1] = 255  # a little structure, still compresses to almost nothing
    ok, data = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    assert ok
    return data.tobytes()


def peak_rss_bytes(pid: int) -> int:
    """The high-water mark of the process's resident memory (``VmHWM``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc status")


@pytest.fixture(scope="module")
def server() -> Any:
    from tests.integration.conftest import running_server

    env = {"VISIONSERVE_MAX_DECODED_PIXELS": str(BUDGET), "VISIONSERVE_DECODE_WAIT": "1.5"}
    # Eight decode threads, as on a larger machine: unbounded, every request's images decode at once.
    with running_server(("--threads", "8"), env=env) as process:
        yield process


def test_a_burst_of_compressible_pngs_stays_within_the_budget(server: ServerProcess) -> None:
    png = compressible_png()
    assert len(png) * IMAGES_PER_REQUEST < 1_000_000
    small = cv2.imencode(".png", np.zeros((64, 64, 3), np.uint8))[1].tobytes()
    assert server.client().post("/v1/detect", files={"image": ("s.png", small, "image/png")}).status_code == 200
    before = peak_rss_bytes(server.process.pid)

    def burst(_: int) -> int:
        files = [("image", (f"{i}.png", png, "image/png")) for i in range(IMAGES_PER_REQUEST)]
        with httpx.Client(base_url=server.url, timeout=120.0) as client:
            response = client.post("/v1/detect", files=files)
        if response.status_code == 429:
            assert int(response.headers["Retry-After"]) >= 1
            assert "pixels" in response.json()["error"]["message"]
        return response.status_code

    with ThreadPoolExecutor(REQUESTS) as pool:
        statuses = list(pool.map(burst, range(REQUESTS)))
    assert server.process.poll() is None, server.log()
    assert set(statuses) <= {200, 429} and 200 in statuses, statuses
    growth = peak_rss_bytes(server.process.pid) - before
    # Four images of 48 MB held at once, plus room for the allocator; the unbounded burst is ~1.5 GB.
    assert growth < 4 * 3 * BUDGET, f"peak RSS grew by {growth / 1e6:.0f} MB ({statuses})"
    assert server.client().get("/readyz").status_code == 200


def test_a_request_larger_than_the_whole_budget_is_413(server: ServerProcess) -> None:
    files = [("image", (f"{i}.png", compressible_png(), "image/png")) for i in range(IMAGES_PER_REQUEST + 1)]
    response = server.client().post("/v1/detect", files=files)
    assert response.status_code == 413, response.text
    assert "more than the server decodes at once" in response.json()["error"]["message"]


def test_nested_list_pixels_are_bounded_before_parsing(server: ServerProcess) -> None:
    side = 1001  # 1,002,001 pixels: over the nested-list limit of one megapixel
    row = "[" + ",".join(["[0,0,0]"] * side) + "]"
    body = '{"instances": [[' + ",".join([row] * side) + "]]}"
    response = server.client().post("/v1/models/ssd-mobilenet-v2-coco:predict", content=body)
    assert response.status_code == 413, response.text
    assert "nested pixel lists are limited to 1000000 pixels" in response.json()["error"]
    pixels = np.zeros((32, 48, 3), np.uint8).tolist()
    image = base64.b64encode(cv2.imencode(".png", np.zeros((32, 48, 3), np.uint8))[1].tobytes()).decode()
    for instance in (pixels, {"b64": image}):
        body = json.dumps({"instances": [instance]})
        ok = server.client().post("/v1/models/ssd-mobilenet-v2-coco:predict", content=body)
        assert ok.status_code == 200, ok.text
