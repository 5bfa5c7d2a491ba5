"""Roboflow Inference against a real server, with the exact calls of ``inference-sdk`` 1.8.3
(replayed by :class:`tests.integration.roboflow_sdk.SdkCalls`)."""

from __future__ import annotations

import base64
import functools
import http.server
import pickle
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from tests.conftest import encode, photo
from tests.integration.conftest import ServerProcess
from tests.integration.protocol_servers import API_KEY, DEFAULT_MODEL, YOLO_BOXES, YOLO_MODEL, protocol_server
from tests.integration.roboflow_sdk import SdkCalls

pytestmark = pytest.mark.slow
SQUARE = encode(np.zeros((640, 640, 3), np.uint8), ".png")


@pytest.fixture(scope="module")
def server() -> ServerProcess:
    return protocol_server()


def centre(box: tuple[float, float, float, float]) -> dict[str, float]:
    x1, y1, x2, y2 = box
    return {"x": (x1 + x2) / 2, "y": (y1 + y2) / 2, "width": x2 - x1, "height": y2 - y1}


def test_sdk_flow_registry_then_infer(server: ServerProcess) -> None:
    sdk = SdkCalls(server.url)
    registry = sdk.list_loaded_models().json()["models"]
    tiny = next(m for m in registry if m["model_id"] == YOLO_MODEL)
    assert tiny == {
        "model_id": YOLO_MODEL,
        "task_type": "object-detection",
        "batch_size": 8,
        "input_height": 640,
        "input_width": 640,
    }
    answer = sdk.infer(SQUARE, YOLO_MODEL)
    assert answer.status_code == 200
    body = answer.json()
    assert body["image"] == {"width": 640, "height": 640} and body["time"] > 0 and body["inference_id"]
    assert [p["class"] for p in body["predictions"]] == ["person", "car"]
    for prediction, (box, class_id, score) in zip(body["predictions"], YOLO_BOXES, strict=True):
        assert {k: prediction[k] for k in ("x", "y", "width", "height")} == pytest.approx(centre(box), abs=0.05)
        assert prediction["class_id"] == class_id and prediction["confidence"] == pytest.approx(score, abs=1e-3)
        assert len(prediction["detection_id"]) == 36


def test_options_and_batches(server: ServerProcess) -> None:
    sdk = SdkCalls(server.url)
    assert [p["class"] for p in sdk.infer(SQUARE, YOLO_MODEL, confidence=0.7).json()["predictions"]] == ["person"]
    assert [p["class"] for p in sdk.infer(SQUARE, YOLO_MODEL, class_filter=["car"]).json()["predictions"]] == ["car"]
    assert len(sdk.infer(SQUARE, YOLO_MODEL, max_detections=1).json()["predictions"]) == 1
    batch = sdk.infer([encode(photo("astronaut")), encode(photo("chelsea"))], DEFAULT_MODEL).json()
    assert isinstance(batch, list) and [b["predictions"][0]["class"] for b in batch] == ["person", "cat"]
    assert batch[1]["image"] == {"width": 451, "height": 300}


def test_numpy_images_and_visualization(server: ServerProcess) -> None:
    bgr = photo("chelsea")
    payload = {
        "model_id": DEFAULT_MODEL,
        "visualize_predictions": True,
        "image": {"type": "numpy", "value": base64.b64encode(pickle.dumps(bgr)).decode()},
    }
    body = httpx.post(f"{server.url}/infer/object_detection", json=payload, timeout=60).json()
    assert body["predictions"][0]["class"] == "cat"
    picture = cv2.imdecode(np.frombuffer(base64.b64decode(body["visualization"]), np.uint8), cv2.IMREAD_COLOR)
    assert picture.shape == bgr.shape and not np.array_equal(picture, bgr)


def test_model_add_and_remove(server: ServerProcess) -> None:
    sdk = SdkCalls(server.url)
    removed = sdk.unload_model(YOLO_MODEL)
    try:
        assert removed.status_code == 200
        assert YOLO_MODEL not in {m["model_id"] for m in removed.json()["models"]}
        not_ready = httpx.post(
            f"{server.url}/infer/object_detection",
            json={"model_id": YOLO_MODEL, "image": {"type": "base64", "value": base64.b64encode(SQUARE).decode()}},
            timeout=30,
        )
        assert not_ready.status_code == 503 and "message" in not_ready.json()
        assert len(sdk.infer(SQUARE, YOLO_MODEL).json()["predictions"]) == 2  # infer() loads it back
    finally:
        sdk.load_model(YOLO_MODEL)
    assert YOLO_MODEL in {m["model_id"] for m in sdk.list_loaded_models().json()["models"]}


@pytest.mark.parametrize(
    ("payload", "status", "message"),
    [
        ({"model_id": DEFAULT_MODEL, "image": {"type": "base64", "value": "***"}}, 400, "Could not load input image"),
        ({"model_id": DEFAULT_MODEL, "image": {"type": "base64", "value": "bm90IGFuIGltYWdl"}}, 400, "cannot decode"),
        ({"model_id": "coco/3", "image": {"type": "base64", "value": "AAAA"}}, 404, "coco/3"),
        ({"model_id": DEFAULT_MODEL}, 422, "image"),
        (
            {"model_id": DEFAULT_MODEL, "image": {"type": "url", "value": "http://127.0.0.1:9/x.jpg"}},
            422,
            "not allowed",
        ),
    ],
)
def test_errors_are_roboflow_messages(
    server: ServerProcess, payload: dict[str, Any], status: int, message: str
) -> None:
    answer = httpx.post(f"{server.url}/infer/object_detection", json=payload, timeout=30)
    assert answer.status_code == status
    assert set(answer.json()) == {"message"} and message in answer.json()["message"]


@pytest.fixture(scope="module")
def photo_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A static file server on loopback with ``square.png`` in it."""
    folder: Path = tmp_path_factory.mktemp("www")
    (folder / "square.png").write_bytes(SQUARE)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_url_images_from_allowed_hosts_and_api_keys(photo_host: str) -> None:
    keyed = protocol_server(
        "--api-keys", API_KEY, "--url-image-hosts", "127.0.0.1", "--outbound-allow-networks", "127.0.0.1/32"
    )
    image = {"type": "url", "value": f"{photo_host}/square.png"}
    denied = httpx.post(
        f"{keyed.url}/infer/object_detection", json={"model_id": YOLO_MODEL, "image": image}, timeout=30
    )
    assert denied.status_code == 401 and set(denied.json()) == {"message"}
    assert SdkCalls(keyed.url).list_loaded_models().status_code == 401
    sdk = SdkCalls(keyed.url, API_KEY)
    assert sdk.list_loaded_models().status_code == 200
    payload = {"api_key": API_KEY, "model_id": YOLO_MODEL, "image": image}
    body = httpx.post(f"{keyed.url}/infer/object_detection", json=payload, timeout=30).json()
    assert [p["class"] for p in body["predictions"]] == ["person", "car"]
    missing = {**payload, "image": {"type": "url", "value": f"{photo_host}/missing.png"}}
    answer = httpx.post(f"{keyed.url}/infer/object_detection", json=missing, timeout=30)
    assert answer.status_code == 400 and "404" in answer.json()["message"]
    bearer = httpx.get(f"{keyed.url}/model/registry", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30)
    assert bearer.status_code == 200
