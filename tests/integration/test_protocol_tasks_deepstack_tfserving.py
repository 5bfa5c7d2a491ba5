"""DeepStack's scene route and TF Serving's predict on a classify and a pose model against a real server;
box routes given a classifier are refused before inference."""

from __future__ import annotations

import base64

import httpx
import numpy as np
import pytest
from tests.conftest import encode
from tests.integration.conftest import ServerProcess
from tests.integration.protocol_servers import CLS_MODEL, POSE_MODEL, YOLO_MODEL, protocol_server
from tests.protocol_task_models import CLASS_LABELS, POSE_BOX, POSE_KEYPOINTS

pytestmark = pytest.mark.slow
IMAGE = encode(np.zeros((64, 64, 3), np.uint8), ".png")


@pytest.fixture(scope="module")
def server() -> ServerProcess:
    # The tiny classifier answers the scene route (without the setting: the first classify model by
    # name, which is the built-in efficientnet-lite3).
    return protocol_server("--scene-model", CLS_MODEL)


def test_scene_answers_the_best_class_of_a_classify_model(server: ServerProcess) -> None:
    answer = httpx.post(f"{server.url}/v1/vision/scene", files={"image": ("a.png", IMAGE)}, timeout=30)
    body = answer.json()
    assert answer.status_code == 200 and body["success"] is True
    assert (body["label"], body["confidence"]) == ("dog", pytest.approx(0.7))
    assert body["command"] == "scene" and body["message"] == "Found dog" and body["code"] == 200
    missing = httpx.post(f"{server.url}/v1/vision/scene", data={"x": "1"}, timeout=30)
    assert missing.status_code == 400 and missing.json()["success"] is False


def test_detection_routes_refuse_a_classify_model(server: ServerProcess) -> None:
    answer = httpx.post(f"{server.url}/v1/vision/custom/{CLS_MODEL}", files={"image": ("a.png", IMAGE)}, timeout=30)
    assert answer.status_code == 400  # DeepStack has no 422
    assert answer.json()["success"] is False and "use /v1/vision/scene" in answer.json()["error"]
    boxes = httpx.post(f"{server.url}/v1/vision/custom/{POSE_MODEL}", files={"image": ("a.png", IMAGE)}, timeout=30)
    assert [p["label"] for p in boxes.json()["predictions"]] == ["person"]


def test_scene_model_setting_must_name_a_classify_model() -> None:
    misconfigured = protocol_server("--scene-model", YOLO_MODEL)
    answer = httpx.post(f"{misconfigured.url}/v1/vision/scene", files={"image": ("a.png", IMAGE)}, timeout=30)
    assert answer.status_code == 400 and "does not classify images" in answer.json()["error"]


def b64(data: bytes) -> dict[str, str]:
    return {"b64": base64.b64encode(data).decode()}


def test_tf_serving_predict_of_a_classify_model(server: ServerProcess) -> None:
    rows = httpx.post(f"{server.url}/v1/models/{CLS_MODEL}:predict", json={"instances": [b64(IMAGE)]}, timeout=30)
    (prediction,) = rows.json()["predictions"]
    assert prediction["classes"] == ["dog", "bird", "cat"] and prediction["class_ids"] == [1, 2, 0]
    assert prediction["scores"] == pytest.approx([0.7, 0.2, 0.1])
    columns = httpx.post(f"{server.url}/v1/models/{CLS_MODEL}:predict", json={"inputs": [b64(IMAGE)] * 2}, timeout=30)
    assert columns.json()["outputs"]["classes"] == [["dog", "bird", "cat"]] * 2
    signature = httpx.get(f"{server.url}/v1/models/{CLS_MODEL}/metadata", timeout=30).json()
    outputs = signature["metadata"]["signature_def"]["signature_def"]["serving_default"]["outputs"]
    assert set(outputs) == {"classes", "scores", "class_ids"} and set(CLASS_LABELS) == set(prediction["classes"])


def test_tf_serving_predict_of_a_pose_model_gives_keypoints(server: ServerProcess) -> None:
    answer = httpx.post(f"{server.url}/v1/models/{POSE_MODEL}:predict", json={"instances": [b64(IMAGE)]}, timeout=30)
    (prediction,) = answer.json()["predictions"]
    (x1, y1, x2, y2), score = POSE_BOX
    assert prediction["detection_boxes"] == [pytest.approx([y1 / 64, x1 / 64, y2 / 64, x2 / 64])]
    assert prediction["detection_scores"] == [pytest.approx(score)]
    expected = [[y / 64, x / 64] for x, y, _ in POSE_KEYPOINTS]
    assert np.allclose(prediction["detection_keypoints"], [expected], atol=1e-5)
    assert prediction["detection_keypoint_scores"] == [pytest.approx([s for _, _, s in POSE_KEYPOINTS])]
    signature = httpx.get(f"{server.url}/v1/models/{POSE_MODEL}/metadata", timeout=30).json()
    outputs = signature["metadata"]["signature_def"]["signature_def"]["serving_default"]["outputs"]
    assert {"detection_keypoints", "detection_keypoint_scores", "detection_boxes"} <= set(outputs)
