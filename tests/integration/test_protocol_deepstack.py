"""DeepStack / CodeProject.AI against a real server, posted the way NVR and home-automation software
posts: a multipart ``image`` with ``min_confidence`` and ``api_key`` form fields."""

from __future__ import annotations

import cv2
import httpx
import numpy as np
import pytest
from tests.conftest import encode, photo
from tests.integration.conftest import ServerProcess
from tests.integration.protocol_servers import (
    API_KEY,
    CRASHY_MODEL,
    DEFAULT_MODEL,
    TASK_MODELS,
    YOLO_BOXES,
    YOLO_MODEL,
    protocol_server,
)

from visionserve.models.builtin import CLASSIFIER_NAME, POSE_NAME

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server() -> ServerProcess:
    return protocol_server()


@pytest.fixture(scope="module")
def keyed() -> ServerProcess:
    return protocol_server("--api-keys", API_KEY)


def post(server: ServerProcess, path: str, image: bytes | None, **fields: str) -> httpx.Response:
    files = {"image": ("snapshot.jpg", image, "image/jpeg")} if image is not None else None
    return httpx.post(f"{server.url}{path}", files=files, data=fields, timeout=30)


def test_detection_finds_the_astronaut_with_deepstack_and_codeproject_fields(server: ServerProcess) -> None:
    image = encode(photo("astronaut"))
    answer = post(server, "/v1/vision/detection", image, min_confidence="0.3")
    assert answer.status_code == 200
    body = answer.json()
    assert body["success"] is True
    predictions = body["predictions"]
    assert predictions and predictions[0]["label"] == "person"
    for prediction in predictions:
        assert set(prediction) == {"confidence", "label", "x_min", "y_min", "x_max", "y_max"}
        assert all(isinstance(prediction[k], int) for k in ("x_min", "y_min", "x_max", "y_max"))
        assert 0 <= prediction["x_min"] < prediction["x_max"] <= 512
        assert prediction["confidence"] >= 0.3
    confidences = [p["confidence"] for p in predictions]
    assert confidences == sorted(confidences, reverse=True)
    assert body["count"] == len(predictions) and body["message"].startswith("Found person")
    assert body["command"] == "detect" and body["code"] == 200
    assert body["inferenceMs"] <= body["processMs"] <= body["analysisRoundTripMs"] + 1
    assert isinstance(body["duration"], float) and body["timestampUTC"].endswith("GMT")


def test_min_confidence_filters_and_defaults_to_point_four(server: ServerProcess) -> None:
    image = encode(photo("astronaut"))
    low = post(server, "/v1/vision/detection", image, min_confidence="0.05").json()["predictions"]
    default = post(server, "/v1/vision/detection", image).json()["predictions"]
    high = post(server, "/v1/vision/detection", image, min_confidence="0.75").json()["predictions"]
    assert len(low) > len(default) >= len(high) >= 1
    assert all(p["confidence"] >= 0.4 for p in default)
    assert min(p["confidence"] for p in low) < 0.4
    assert all(p["confidence"] >= 0.75 for p in high)


def test_custom_model_gives_the_test_built_yolo_boxes(server: ServerProcess) -> None:
    image = encode(np.zeros((640, 640, 3), np.uint8), ".png")
    body = post(server, f"/v1/vision/custom/{YOLO_MODEL}", image, min_confidence="0.5").json()
    assert body["command"] == "custom"
    expected = [
        {"label": label, "x_min": int(x1), "y_min": int(y1), "x_max": int(x2), "y_max": int(y2)}
        for (x1, y1, x2, y2), label in ((box, ["person", "car"][cls]) for box, cls, _ in YOLO_BOXES)
    ]
    assert [{k: v for k, v in p.items() if k != "confidence"} for p in body["predictions"]] == expected
    assert [p["confidence"] for p in body["predictions"]] == pytest.approx([s for _, _, s in YOLO_BOXES], abs=1e-4)
    only_best = post(server, f"/v1/vision/custom/{YOLO_MODEL}", image, min_confidence="0.7").json()
    assert [p["label"] for p in only_best["predictions"]] == ["person"]


def test_custom_list_names_every_model(server: ServerProcess) -> None:
    body = httpx.post(f"{server.url}/v1/vision/custom/list", timeout=10).json()
    expected = {DEFAULT_MODEL, YOLO_MODEL, CRASHY_MODEL, CLASSIFIER_NAME, POSE_NAME, *TASK_MODELS}
    assert body["success"] is True and set(body["models"]) == expected


@pytest.mark.parametrize(
    ("path", "image", "fields", "status", "error"),
    [
        ("/v1/vision/detection", None, {}, 400, "No valid image file found"),
        ("/v1/vision/detection", None, {"min_confidence": "0.5"}, 400, "No valid image file found"),  # urlencoded
        ("/v1/vision/detection", b"not an image", {}, 400, "cannot decode image"),
        ("/v1/vision/detection", b"jpeg", {"min_confidence": "high"}, 400, "Invalid value for min_confidence"),
        ("/v1/vision/detection", b"jpeg", {"min_confidence": "1.5"}, 400, "min_confidence cannot be greater than 1"),
        ("/v1/vision/custom/nope", b"jpeg", {}, 404, "nope"),
    ],
)
def test_errors_answer_success_false(
    server: ServerProcess, path: str, image: bytes | None, fields: dict[str, str], status: int, error: str
) -> None:
    answer = post(server, path, image, **fields)
    assert answer.status_code == status
    body = answer.json()
    assert body["success"] is False and error in body["error"] and body["code"] == status


def test_api_key_in_the_form_as_deepstack_sends_it(keyed: ServerProcess) -> None:
    image = cv2.imencode(".jpg", photo("chelsea"))[1].tobytes()
    missing = post(keyed, "/v1/vision/detection", image)
    assert missing.status_code == 401 and missing.json()["success"] is False
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")  # the same headers as native errors
    wrong = post(keyed, "/v1/vision/detection", image, api_key="guess")
    assert wrong.status_code == 401 and wrong.json()["error"] == "Incorrect api key"
    right = post(keyed, "/v1/vision/detection", image, api_key=API_KEY)
    assert right.status_code == 200 and right.json()["predictions"][0]["label"] == "cat"
    header = httpx.post(
        f"{keyed.url}/v1/vision/detection",
        files={"image": ("a.jpg", image)},
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=30,
    )
    assert header.status_code == 200
    listing = httpx.post(f"{keyed.url}/v1/vision/custom/list", data={"api_key": API_KEY}, timeout=10)
    assert listing.status_code == 200
