"""TF Serving's REST API against a real server, with requests shaped like its documented calls."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import numpy as np
import pytest
from tests.conftest import encode, photo
from tests.integration.conftest import ServerProcess
from tests.integration.protocol_servers import DEFAULT_MODEL, YOLO_BOXES, YOLO_MODEL, protocol_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server() -> ServerProcess:
    return protocol_server()


def b64(data: bytes) -> dict[str, str]:
    return {"b64": base64.b64encode(data).decode()}


def predict(server: ServerProcess, path: str, document: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/models/{path}:predict", json=document, timeout=60)


def yolo_normalized() -> list[list[float]]:
    """The tiny model's boxes on a square image, as [ymin, xmin, ymax, xmax] in [0, 1]."""
    return [[y1 / 640, x1 / 640, y2 / 640, x2 / 640] for (x1, y1, x2, y2), _, _ in YOLO_BOXES]


def test_model_status_is_one_document_for_tf_serving_and_visionserve(server: ServerProcess) -> None:
    body = httpx.get(f"{server.url}/v1/models/{DEFAULT_MODEL}", timeout=10).json()
    assert body["model_version_status"] == [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    ]
    assert body["name"] == DEFAULT_MODEL and body["state"] == "loaded" and body["labels"]["1"] == "person"
    version = httpx.get(f"{server.url}/v1/models/{YOLO_MODEL}/versions/3", timeout=10).json()
    assert version["model_version_status"][0]["version"] == "3"
    missing = httpx.get(f"{server.url}/v1/models/{YOLO_MODEL}/versions/4", timeout=10)
    assert missing.status_code == 404 and isinstance(missing.json()["error"], str)


def test_metadata_describes_the_serving_default_signature(server: ServerProcess) -> None:
    for path in (f"{YOLO_MODEL}/metadata", f"{YOLO_MODEL}/versions/3/metadata"):
        body = httpx.get(f"{server.url}/v1/models/{path}", timeout=10).json()
        assert body["model_spec"] == {"name": YOLO_MODEL, "signature_name": "", "version": "3"}
        signature = body["metadata"]["signature_def"]["signature_def"]["serving_default"]
        assert set(signature["outputs"]) >= {
            "detection_boxes",
            "detection_scores",
            "detection_classes",
            "num_detections",
        }


def test_row_format_with_b64_images(server: ServerProcess) -> None:
    images = [encode(photo("astronaut")), encode(photo("coffee"))]
    answer = predict(
        server, DEFAULT_MODEL, {"signature_name": "serving_default", "instances": [b64(i) for i in images]}
    )
    assert answer.status_code == 200
    astronaut, coffee = answer.json()["predictions"]
    assert astronaut["detection_class_names"][0] == "person" and astronaut["detection_classes"][0] == 1.0
    assert coffee["detection_class_names"][0] == "cup"
    for prediction in (astronaut, coffee):
        n = int(prediction["num_detections"])
        boxes = np.array(prediction["detection_boxes"])
        assert boxes.shape == (len(prediction["detection_scores"]), 4) and n >= 1
        assert ((boxes >= 0) & (boxes <= 1)).all() and (boxes[:n, 2] > boxes[:n, 0]).all()


def test_columnar_format_and_named_inputs_on_the_yolo_model(server: ServerProcess) -> None:
    image = encode(np.zeros((640, 640, 3), np.uint8), ".png")
    answer = predict(server, f"{YOLO_MODEL}/versions/3", {"inputs": {"inputs": [b64(image), b64(image)]}})
    outputs = answer.json()["outputs"]
    assert outputs["num_detections"] == [2.0, 2.0]
    np.testing.assert_allclose(outputs["detection_boxes"], [yolo_normalized()] * 2, atol=1e-4)
    assert outputs["detection_classes"] == [[0.0, 1.0]] * 2
    row = predict(server, YOLO_MODEL, {"instances": [{"inputs": b64(image)}]}).json()["predictions"][0]
    np.testing.assert_allclose(row["detection_scores"], [s for _, _, s in YOLO_BOXES], atol=1e-5)


def test_rgb_pixel_lists_like_an_image_tensor_export(server: ServerProcess) -> None:
    pixels = np.zeros((64, 64, 3), np.uint8).tolist()
    prediction = predict(server, YOLO_MODEL, {"instances": [pixels]}).json()["predictions"][0]
    np.testing.assert_allclose(prediction["detection_boxes"], yolo_normalized(), atol=1e-4)


@pytest.mark.parametrize(
    ("path", "document", "status", "message"),
    [
        (DEFAULT_MODEL, {"instances": [{"b64": "%%%"}]}, 400, "not valid base64"),
        (DEFAULT_MODEL, {"signature_name": "classify", "instances": [{"b64": "AAAA"}]}, 400, "classify"),
        (DEFAULT_MODEL, {"instances": [{"image_bytes": {"b64": "AAAA"}}]}, 400, "named input: image_bytes"),
        (DEFAULT_MODEL, {"instances": [b64(b"not an image")]}, 400, "cannot decode image"),
        (DEFAULT_MODEL, {"rows": []}, 400, "Missing 'instances' or 'inputs'"),
        ("nope", {"instances": [{"b64": "AAAA"}]}, 404, "nope"),
    ],
)
def test_errors_are_tf_serving_error_objects(
    server: ServerProcess, path: str, document: dict[str, Any], status: int, message: str
) -> None:
    answer = predict(server, path, document)
    assert answer.status_code == status
    assert set(answer.json()) == {"error"} and message in answer.json()["error"]
