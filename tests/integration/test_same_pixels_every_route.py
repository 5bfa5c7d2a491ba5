"""One image, one answer: every route feeds the model the same pixels (a large JPEG decodes at
reduced size for the model everywhere, even where crops or drawings need the full-size image)."""

from __future__ import annotations

import base64
import time

import cv2
import httpx
import pytest
from tests.conftest import encode, photo
from tests.integration.conftest import ServerProcess
from tests.integration.protocol_servers import protocol_server

pytestmark = pytest.mark.slow

Row = tuple[str, float, float, float, float, float]


@pytest.fixture(scope="module")
def server() -> ServerProcess:
    return protocol_server()


@pytest.fixture(scope="module")
def big_jpeg() -> bytes:
    """1600x1600: the default model (300x300) decodes it at 1/4 scale."""
    return encode(cv2.resize(photo("astronaut"), (1600, 1600), interpolation=cv2.INTER_CUBIC), ".jpg")


def _native(server: ServerProcess, data: bytes) -> list[Row]:
    answer = httpx.post(f"{server.url}/v1/detect", files={"image": ("a.jpg", data, "image/jpeg")}, timeout=60)
    assert answer.status_code == 200, answer.text
    return [(d["label"], d["score"], *d["box"].values()) for d in answer.json()["detections"]]


def _upload(server: ServerProcess, data: bytes) -> list[Row]:
    answer = httpx.post(f"{server.url}/upload", files={"file": ("a.jpg", data, "image/jpeg")}, timeout=60)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    return [(label, s, *box) for label, s, box in zip(body["labels"], body["score"], body["boxes"], strict=True)]


def _roboflow(server: ServerProcess, data: bytes) -> list[Row]:
    payload = {
        "model_id": "ssd-mobilenet-v2-coco",
        "visualize_predictions": True,
        "image": {"type": "base64", "value": base64.b64encode(data).decode()},
    }
    answer = httpx.post(f"{server.url}/infer/object_detection", json=payload, timeout=60)
    assert answer.status_code == 200, answer.text
    rows = []
    for p in answer.json()["predictions"]:
        w, h = p["width"] / 2, p["height"] / 2
        rows.append((p["class"], p["confidence"], p["x"] - w, p["y"] - h, p["x"] + w, p["y"] + h))
    return rows


def _job(server: ServerProcess, data: bytes) -> list[Row]:
    files = {"image": ("a.jpg", data, "image/jpeg")}
    answer = httpx.post(f"{server.url}/v1/jobs", files=files, data={"crops": "true", "annotate": "true"}, timeout=60)
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["id"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        results = httpx.get(f"{server.url}/v1/jobs/{job_id}/results", timeout=30).json()
        if results["job"]["state"] not in {"queued", "running"}:
            break
        time.sleep(0.1)
    (item,) = results["items"]
    assert item["state"] == "done" and item["crops"], item
    return [(d["label"], d["score"], *d["box"].values()) for d in item["detections"]]


def _same(a: list[Row], b: list[Row]) -> bool:
    """Equal up to the rounding of each wire format (scores to 1e-3, boxes to 1 px)."""
    ordered = [sorted(rows, key=lambda r: -r[1]) for rows in (a, b)]
    return len(a) == len(b) and all(
        x[0] == y[0] and abs(x[1] - y[1]) < 1e-3 and all(abs(p - q) <= 1.0 for p, q in zip(x[2:], y[2:], strict=True))
        for x, y in zip(*ordered, strict=True)
    )


def test_every_route_gives_the_same_detections_for_the_same_large_jpeg(server: ServerProcess, big_jpeg: bytes) -> None:
    reference = _native(server, big_jpeg)
    assert reference and reference[0][0] == "person"
    for route in (_upload, _roboflow, _job):
        rows = route(server, big_jpeg)
        assert _same(reference, rows), f"{route.__name__}: {rows} != /v1/detect: {reference}"
