"""Roboflow's instance segmentation, keypoint and classification routes against a real server, called
as ``inference-sdk`` calls them (the route picked from the registry's ``task_type``)."""

from __future__ import annotations

import base64

import cv2
import httpx
import numpy as np
import pytest
from pycocotools import mask as coco_mask
from tests.conftest import encode
from tests.integration.conftest import ServerProcess
from tests.integration.protocol_servers import CLS_MODEL, POSE_MODEL, SEG_MODEL, YOLO_MODEL, protocol_server
from tests.integration.roboflow_sdk import SdkCalls
from tests.protocol_task_models import CLASS_LABELS, KEYPOINT_NAMES, POSE_BOX, POSE_KEYPOINTS, SEG_BOXES, SEG_MASKS

pytestmark = pytest.mark.slow
IMAGE = encode(np.zeros((64, 64, 3), np.uint8), ".png")


@pytest.fixture(scope="module")
def sdk() -> SdkCalls:
    server: ServerProcess = protocol_server()
    return SdkCalls(server.url)


def rectangle(x1: int, y1: int, x2: int, y2: int) -> np.ndarray:
    dense = np.zeros((64, 64), bool)
    dense[y1:y2, x1:x2] = True
    return dense


def test_registry_names_each_models_task_type(sdk: SdkCalls) -> None:
    types = {m["model_id"]: m["task_type"] for m in sdk.list_loaded_models().json()["models"]}
    assert types[YOLO_MODEL] == "object-detection"
    assert types[SEG_MODEL] == "instance-segmentation"
    assert types[POSE_MODEL] == "keypoint-detection"
    assert types[CLS_MODEL] == "classification"


def test_instance_segmentation_points_and_rle(sdk: SdkCalls) -> None:
    body = sdk.infer(IMAGE, SEG_MODEL).json()
    assert body["image"] == {"width": 64, "height": 64}
    assert [(p["class"], p["class_id"], p["confidence"]) for p in body["predictions"]] == [
        (["person", "car"][cls], cls, pytest.approx(score, abs=1e-4)) for _, cls, score in SEG_BOXES
    ]
    for prediction, (x1, y1, x2, y2), ((bx1, by1, bx2, by2), _, _) in zip(
        body["predictions"], SEG_MASKS, SEG_BOXES, strict=True
    ):
        assert prediction["mask_format"] == "polygon"
        assert (prediction["x"], prediction["width"]) == (pytest.approx((bx1 + bx2) / 2), pytest.approx(bx2 - bx1))
        assert (prediction["y"], prediction["height"]) == (pytest.approx((by1 + by2) / 2), pytest.approx(by2 - by1))
        xs, ys = [p["x"] for p in prediction["points"]], [p["y"] for p in prediction["points"]]
        # vertices are the centres of the mask's boundary pixels
        assert (min(xs), min(ys), max(xs), max(ys)) == (x1 + 0.5, y1 + 0.5, x2 - 0.5, y2 - 0.5)
    rle = sdk.infer(IMAGE, SEG_MODEL, response_mask_format="rle").json()["predictions"]
    for prediction, box in zip(rle, SEG_MASKS, strict=True):
        assert prediction["mask_format"] == "rle" and "points" not in prediction
        decoded = coco_mask.decode(prediction["rle"]).astype(bool)
        # bilinear upsampling of the prototype cells rounds off at most the corner pixels
        assert (decoded != rectangle(*box)).sum() <= 4


def test_keypoints_with_names_and_a_confidence_floor(sdk: SdkCalls) -> None:
    (prediction,) = sdk.infer(IMAGE, POSE_MODEL).json()["predictions"]
    (x1, y1, x2, y2), score = POSE_BOX
    assert prediction["class"] == "person" and prediction["confidence"] == pytest.approx(score, abs=1e-4)
    assert (prediction["x"], prediction["y"]) == (pytest.approx((x1 + x2) / 2), pytest.approx((y1 + y2) / 2))
    assert prediction["keypoints"] == [
        {"x": x, "y": y, "confidence": pytest.approx(s, abs=1e-4), "class_id": k, "class": KEYPOINT_NAMES[k]}
        for k, (x, y, s) in enumerate(POSE_KEYPOINTS)
    ]
    confident = sdk.infer(IMAGE, POSE_MODEL, keypoint_confidence=0.5).json()["predictions"][0]["keypoints"]
    assert [k["class"] for k in confident] == ["nose", "right_hand"]


def test_classification_top_and_confidence_threshold(sdk: SdkCalls) -> None:
    body = sdk.infer(IMAGE, CLS_MODEL).json()  # Roboflow's default confidence 0.4 leaves one class
    assert body["top"] == "dog" and body["confidence"] == pytest.approx(0.7)
    assert body["predictions"] == [{"class": "dog", "class_id": 1, "confidence": pytest.approx(0.7)}]
    every = sdk.infer([IMAGE, IMAGE], CLS_MODEL, confidence=0.05).json()
    assert isinstance(every, list) and len(every) == 2
    assert [p["class"] for p in every[0]["predictions"]] == ["dog", "bird", "cat"]
    assert {p["class"] for p in every[1]["predictions"]} == set(CLASS_LABELS)
    nothing = sdk.infer(IMAGE, CLS_MODEL, confidence=0.9).json()
    assert (nothing["top"], nothing["confidence"], nothing["predictions"]) == ("", 0.0, [])


def test_classification_visualization_is_a_jpeg_with_a_banner(sdk: SdkCalls) -> None:
    body = sdk.infer(IMAGE, CLS_MODEL, visualize_predictions=True).json()
    picture = cv2.imdecode(np.frombuffer(base64.b64decode(body["visualization"]), np.uint8), cv2.IMREAD_COLOR)
    assert picture.shape == (64, 64, 3) and picture.any()


@pytest.mark.parametrize(
    ("route", "model", "message"),
    [
        ("object_detection", CLS_MODEL, "use /infer/classification"),
        ("classification", YOLO_MODEL, "use /infer/object_detection"),
        ("instance_segmentation", YOLO_MODEL, "use /infer/object_detection"),
        ("keypoints_detection", SEG_MODEL, "use /infer/instance_segmentation"),
    ],
)
def test_a_route_refuses_a_model_of_another_task(sdk: SdkCalls, route: str, model: str, message: str) -> None:
    payload = {"model_id": model, "image": {"type": "base64", "value": base64.b64encode(IMAGE).decode()}}
    answer = httpx.post(f"{sdk.api_url}/infer/{route}", json=payload, timeout=30)
    assert answer.status_code == 422 and set(answer.json()) == {"message"}
    assert message in answer.json()["message"]


def test_boxes_of_segment_and_pose_models_on_object_detection(sdk: SdkCalls) -> None:
    payload = {"model_id": SEG_MODEL, "image": {"type": "base64", "value": base64.b64encode(IMAGE).decode()}}
    body = httpx.post(f"{sdk.api_url}/infer/object_detection", json=payload, timeout=30).json()
    assert [p["class"] for p in body["predictions"]] == ["person", "car"]
    assert all("points" not in p for p in body["predictions"])
