"""``/upload`` against a real server: one answer with boxes and crop links, crops served back."""

from __future__ import annotations

import cv2
import httpx
import numpy as np
import pytest
from tests.conftest import encode, photo
from tests.integration.conftest import ServerProcess
from tests.integration.protocol_servers import (
    CLS_MODEL,
    CRASHY_MODEL,
    YOLO_BOXES,
    YOLO_MODEL,
    data_dir,
    protocol_server,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server() -> ServerProcess:
    return protocol_server()


def upload(server: ServerProcess, image: bytes, query: str = "") -> httpx.Response:
    return httpx.post(f"{server.url}/upload{query}", files={"file": ("photo.jpg", image, "image/jpeg")}, timeout=60)


def test_upload_answers_boxes_scores_and_crop_links(server: ServerProcess) -> None:
    source = photo("astronaut")
    answer = upload(server, encode(source, ".png"))
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "success" and len(body["task_id"]) == 32
    n = body["num_detections"]
    assert n >= 1 and len(body["score"]) == len(body["boxes"]) == len(body["labels"]) == len(body["object_id"]) == n
    assert body["labels"][0] == "person" and body["score"] == sorted(body["score"], reverse=True)
    for url, (x1, y1, x2, y2) in zip(body["object_id"], body["boxes"], strict=True):
        assert url.startswith(f"{server.url}/upload/{body['task_id']}/")
        crop = httpx.get(url, timeout=10)
        assert crop.status_code == 200
        assert crop.headers["content-type"] == "image/jpeg" and crop.headers["cache-control"] == "no-store"
        pixels = cv2.imdecode(np.frombuffer(crop.content, np.uint8), cv2.IMREAD_COLOR)
        assert abs(pixels.shape[1] - (x2 - x1)) <= 2 and abs(pixels.shape[0] - (y2 - y1)) <= 2
    stored = data_dir(server) / "uploads" / body["task_id"]
    assert sorted(p.name for p in stored.iterdir()) == [f"{i}.jpg" for i in range(n)]


def test_crops_are_the_pixels_inside_the_boxes(server: ServerProcess) -> None:
    ys, xs = np.mgrid[0:640, 0:640]
    image = np.dstack([xs // 3, ys // 3, (xs + ys) // 6]).astype(np.uint8)  # smooth: JPEG keeps it closely
    body = upload(server, encode(image, ".png"), f"?model={YOLO_MODEL}").json()
    assert body["boxes"] == [list(box) for box, _, _ in YOLO_BOXES] and body["labels"] == ["person", "car"]
    crop = httpx.get(body["object_id"][1], timeout=10).content
    x1, y1, x2, y2 = (int(v) for v in YOLO_BOXES[1][0])
    pixels = cv2.imdecode(np.frombuffer(crop, np.uint8), cv2.IMREAD_COLOR)
    assert pixels.shape == (y2 - y1, x2 - x1, 3)
    assert np.abs(pixels.astype(int) - image[y1:y2, x1:x2]).mean() < 2


def test_wrong_method_missing_crops_and_bad_images_are_json_errors(server: ServerProcess) -> None:
    wrong = httpx.get(f"{server.url}/upload", timeout=10)
    assert wrong.status_code == 405 and "not allowed" in wrong.json()["error"]["message"]
    body = upload(server, encode(photo("chelsea"))).json()
    missing = httpx.get(f"{server.url}/upload/{body['task_id']}/99.jpg", timeout=10)
    assert missing.status_code == 404 and missing.json()["status"] == "error"
    for path in ("/upload/not-a-task/0.jpg", f"/upload/{body['task_id']}/..%2F0.jpg", f"/upload/{body['task_id']}/x"):
        assert httpx.get(f"{server.url}{path}", timeout=10).status_code == 404
    junk = upload(server, b"not a photo")
    assert junk.status_code == 400 and junk.json() == {"status": "error", "error": junk.json()["error"]}
    no_file = httpx.post(f"{server.url}/upload", files={"photo": ("a.jpg", b"x")}, timeout=10)
    assert no_file.status_code == 422 and "file" in no_file.json()["error"]


def red_image() -> bytes:
    return encode(np.dstack([np.zeros((32, 32)), np.zeros((32, 32)), np.full((32, 32), 255)]).astype(np.uint8))


def test_detection_failure_is_a_500_with_a_traceback_only_in_debug(server: ServerProcess) -> None:
    failed = upload(server, red_image(), f"?model={CRASHY_MODEL}")
    assert failed.status_code == 500
    body = failed.json()
    assert body["status"] == "error" and "error id" in body["error"] and "traceback" not in body
    debug = protocol_server("--debug")
    failed = upload(debug, red_image(), f"?model={CRASHY_MODEL}")
    assert failed.status_code == 500
    assert "RuntimeError: sleepy plugin crashed on purpose" in failed.json()["traceback"]


def test_upload_dir_is_configurable(tmp_path_factory: pytest.TempPathFactory) -> None:
    folder = tmp_path_factory.mktemp("crops")
    server = protocol_server("--upload-dir", str(folder), "--upload-max-tasks", "2")
    tasks = [upload(server, encode(photo("coffee"))).json()["task_id"] for _ in range(3)]
    assert {p.name for p in folder.iterdir()} <= set(tasks[1:]) and (folder / tasks[2]).is_dir()
    assert httpx.get(f"{server.url}/upload/{tasks[0]}/0.jpg", timeout=10).status_code == 404


def test_a_classifier_is_refused_before_the_photo_is_read(server: ServerProcess) -> None:
    # Junk bytes: read and decoded first, they would be a 400; the task check comes before the body.
    answer = upload(server, b"not a photo", f"?model={CLS_MODEL}")
    assert answer.status_code == 422 and "classifies images" in answer.json()["error"]
