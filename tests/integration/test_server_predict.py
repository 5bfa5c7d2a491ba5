"""/v1/predict for every task on a real server process, with the tiny segment, pose and classify
models of tests/factories.py (constant outputs: every answer is known exactly); the Python client
against that server, and ``visionserve predict`` as a real process."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from pycocotools import mask as coco_mask
from tests.conftest import encode
from tests.factories import (
    CLASS_SCORES,
    POSE_KEYPOINTS,
    SEG_INSTANCES,
    SEG_LABELS,
    classifier_model_folder,
    pose_model_folder,
    seg_model_folder,
    solid_image,
)
from tests.integration.conftest import ServerProcess, running_server

from visionserve.api.wire.predictions import PredictResponse
from visionserve.client import AsyncClient, Client, PredictionResult
from visionserve.errors import InvalidParameterError, WrongTaskError
from visionserve.render.mask_decoding import patch_from_polygons
from visionserve.render.palette import color_for

SEG, POSE, CLS = "tiny-seg", "tiny-pose", "tiny-cls"
SIZE = 128  # the test image is SIZE x SIZE; the models' input is 64 x 64, so source pixels = 2 x input
GRAY = (40, 40, 40)
#: Where the segment model's first mask is (source pixels): the square [24, 56) x [24, 56), its corners
#: rounded by the bilinear upsampling of the prototype cells; INSIDE0 is surely in it.
MASK0 = (slice(24, 56), slice(24, 56))
INSIDE0 = (slice(27, 53), slice(27, 53))


@pytest.fixture(scope="module")
def task_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tasks")
    seg_model_folder(root, SEG)
    pose_model_folder(root, POSE)
    classifier_model_folder(root, CLS, top_k=3)
    return root


@pytest.fixture(scope="module")
def task_server(task_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    args = ("--models", str(task_repository), "--max-body-bytes", "1000000")
    with running_server(args, log_dir=tmp_path_factory.mktemp("logs")) as server:
        yield server


@pytest.fixture
def http(task_server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=task_server.url, timeout=60.0) as client:
        yield client


def image_bytes() -> bytes:
    return encode(solid_image(SIZE, SIZE, GRAY), ".png")


def post(http: httpx.Client, model: str, route: str = "predict", **params: str) -> httpx.Response:
    files = {"image": ("gray.png", image_bytes(), "image/png")}
    return http.post(f"/v1/models/{model}/{route}", files=files, params=params)


def dense(polygons: list[list[list[float]]]) -> np.ndarray:
    return patch_from_polygons(polygons).dense(SIZE, SIZE)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def test_segment_masks_as_polygons_by_default(http: httpx.Client) -> None:
    response = post(http, SEG)
    assert response.status_code == 200, response.text
    answer = response.json()
    PredictResponse.model_validate(answer)
    assert (answer["model"], answer["task"], answer["width"], answer["height"]) == (SEG, "segment", SIZE, SIZE)
    first, second = answer["detections"]
    assert [first["label"], second["label"]] == list(SEG_LABELS)
    assert first["box"] == {"x1": 16.0, "y1": 16.0, "x2": 80.0, "y2": 80.0}
    assert "rle" not in first and len(first["polygons"]) == 1
    expected = np.zeros((SIZE, SIZE), bool)
    expected[MASK0] = True
    assert iou(dense(first["polygons"]), expected) >= 0.9
    box_mask = np.zeros((SIZE, SIZE), bool)
    box_mask[72:120, 72:120] = True  # the second instance's mask fills its box
    assert iou(dense(second["polygons"]), box_mask) >= 0.9


def test_rle_decoded_by_pycocotools_matches_the_polygons(http: httpx.Client) -> None:
    polygons = post(http, SEG).json()["detections"]
    rles = post(http, SEG, mask_format="rle").json()["detections"]
    for with_polygons, with_rle in zip(polygons, rles, strict=True):
        assert "polygons" not in with_rle and with_rle["rle"]["size"] == [SIZE, SIZE]
        decoded = coco_mask.decode(with_rle["rle"]).astype(bool)
        assert iou(decoded, dense(with_polygons["polygons"])) >= 0.9
    assert coco_mask.decode(rles[0]["rle"])[INSIDE0].all()


def test_mask_format_none_and_bad_values(http: httpx.Client) -> None:
    answer = post(http, SEG, mask_format="none").json()
    assert all("polygons" not in d and "rle" not in d for d in answer["detections"])
    bad = post(http, SEG, mask_format="png")
    assert bad.status_code == 422 and "mask_format" in bad.json()["error"]["message"]
    assert post(http, SEG, render="sketch").status_code == 422


def test_pose_keypoints_are_named_in_source_pixels(http: httpx.Client) -> None:
    answer = post(http, POSE).json()
    assert answer["task"] == "pose"
    (person,) = answer["detections"]
    expected = [{"name": n, "x": x * 2, "y": y * 2, "score": s} for n, (x, y, s) in POSE_KEYPOINTS.items()]
    assert person["keypoints"] == [pytest.approx(point) for point in expected]


def test_classes_top_k(http: httpx.Client) -> None:
    answer = post(http, CLS).json()
    PredictResponse.model_validate(answer)
    assert answer["task"] == "classify" and "detections" not in answer
    ranked = sorted(CLASS_SCORES.items(), key=lambda item: -item[1])
    assert [(c["label"], c["score"]) for c in answer["classes"]] == [(n, pytest.approx(s)) for n, s in ranked[:3]]
    assert answer["classes"][0]["class_id"] == list(CLASS_SCORES).index("dog")
    two = post(http, CLS, top_k="2").json()["classes"]
    assert [c["label"] for c in two] == ["dog", "fish"]


def test_default_route_and_several_images(http: httpx.Client) -> None:
    files = [("image", (f"{i}.png", image_bytes(), "image/png")) for i in range(2)]
    answer = http.post(f"/v1/models/{CLS}/predict", files=files).json()
    PredictResponse.model_validate(answer)
    assert answer["task"] == "classify" and len(answer["results"]) == 2
    default = http.post("/v1/predict", files={"image": ("a.png", image_bytes(), "image/png")})
    assert default.status_code == 200 and default.json()["task"] == "detect"


def test_detect_refuses_a_classifier_before_reading_the_body(http: httpx.Client) -> None:
    # A body that is not an image would be a 415 if it were read: the task check comes first.
    response = http.post(f"/v1/models/{CLS}/detect", content=b"not an image", headers={"Content-Type": "text/plain"})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "wrong_task"
    assert "predict" in response.json()["error"]["message"]
    # Box tasks keep working on /detect, with their masks and keypoints.
    detected = post(http, SEG, route="detect")
    assert detected.status_code == 200 and "polygons" in detected.json()["detections"][0]


def test_model_documents_show_task_keypoints_and_top_k(http: httpx.Client) -> None:
    pose = http.get(f"/v1/models/{POSE}").json()
    assert pose["task"] == "pose"
    assert pose["keypoints"] == {"names": list(POSE_KEYPOINTS), "skeleton": [[0, 1], [0, 2]]}
    cls = http.get(f"/v1/models/{CLS}").json()
    assert (cls["task"], cls["thresholds"]["top_k"], cls["keypoints"]) == ("classify", 3, None)
    listed = {m["name"]: m for m in http.get("/v1/models").json()["models"]}
    assert listed[SEG]["task"] == "segment"


def annotated(http: httpx.Client, model: str, mode: str | None = None) -> np.ndarray:
    params = {"format": "image", **({"render": mode} if mode else {})}
    response = post(http, model, **params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg"
    image = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (SIZE, SIZE, 3)
    return image.astype(int)


def near(pixel: np.ndarray, bgr: tuple[int, int, int], tolerance: int = 30) -> bool:
    return bool(np.abs(pixel - np.array(bgr)).max() <= tolerance)


def drawn(pixel: np.ndarray, bgr: tuple[int, int, int]) -> bool:
    """Closer to ``bgr`` than to the gray background (a 1-pixel line, blurred by JPEG)."""
    return bool(np.abs(pixel - np.array(bgr)).sum() < np.abs(pixel - np.array(GRAY)).sum())


def test_render_modes_draw_masks_boxes_and_black(http: httpx.Client) -> None:
    colour = color_for(SEG_INSTANCES[0][1])
    inside, in_box_only, box_edge, outside = (40, 40), (20, 60), (60, 16), (4, 124)
    blended = tuple(round(g * 0.55 + c * 0.45) for g, c in zip(GRAY, colour, strict=True))

    both = annotated(http, SEG)  # boxes_masks, the default
    assert near(both[inside], blended) and drawn(both[box_edge], colour) and near(both[in_box_only], GRAY)

    boxes = annotated(http, SEG, "boxes")
    assert near(boxes[inside], GRAY) and drawn(boxes[box_edge], colour)

    masks = annotated(http, SEG, "masks")
    assert near(masks[inside], blended) and near(masks[box_edge], GRAY)

    only = annotated(http, SEG, "mask_only")
    assert near(only[inside], colour)
    for point in (in_box_only, box_edge, outside):
        assert near(only[point], (0, 0, 0)), point


def test_images_of_pose_and_classify(http: httpx.Client) -> None:
    pose = annotated(http, POSE)
    x, y, _ = POSE_KEYPOINTS["head"]
    assert near(pose[int(y * 2), int(x * 2)], (255, 255, 255), tolerance=45)  # the keypoint's white dot
    hx, hy, _ = POSE_KEYPOINTS["left_hand"]
    assert drawn(pose[int(y + hy), int(x + hx)], color_for(0))  # the skeleton from the head to the hand
    banner = annotated(http, CLS)
    dog = color_for(list(CLASS_SCORES).index("dog"))
    top_left = banner[0:12, 0:40].reshape(-1, 3)
    assert sum(near(p, dog) for p in top_left) > len(top_left) // 3  # the banner of the best class
    assert near(banner[100, 100], GRAY)


# -- the Python client ---------------------------------------------------------------------------------


def test_client_predict_reads_masks_keypoints_and_classes(task_server: ServerProcess) -> None:
    with Client(task_server.url) as client:
        seg = client.predict(image_bytes(), SEG)
        rle = client.predict(image_bytes(), SEG, mask_format="rle")
        pose = client.predict(image_bytes(), POSE)
        cls = client.predict(image_bytes(), CLS, top_k=2)
        with pytest.raises(InvalidParameterError, match="mask_format"):
            client.predict(image_bytes(), SEG, mask_format="png")
        with pytest.raises(WrongTaskError):
            client.detect(image_bytes(), CLS)
    assert (seg.task, seg.labels, seg.detections.xyxy[0].tolist()) == ("segment", SEG_LABELS, [16, 16, 80, 80])
    assert seg.detections.masks is not None and rle.detections.masks is not None
    for i in range(2):
        from_polygons = seg.detections.mask_patch(i, SIZE, SIZE).dense(SIZE, SIZE)
        from_rle = rle.detections.mask_patch(i, SIZE, SIZE).dense(SIZE, SIZE)
        assert iou(from_polygons, from_rle) >= 0.9
    assert rle.detections.mask_patch(0, SIZE, SIZE).dense(SIZE, SIZE)[INSIDE0].all()
    assert pose.keypoint_names == tuple(POSE_KEYPOINTS)
    assert pose.detections.keypoints is not None
    assert pose.detections.keypoints[0, :, :2].tolist() == [[x * 2, y * 2] for x, y, _ in POSE_KEYPOINTS.values()]
    assert cls.labels == ("dog", "fish") and cls.classes.top == (1, pytest.approx(0.6))
    with pytest.raises(WrongTaskError):
        _ = cls.detections


def test_async_client_predict_many(task_server: ServerProcess) -> None:
    async def go() -> list[PredictionResult]:
        async with AsyncClient(task_server.url) as client:
            return await client.predict_many([image_bytes(), image_bytes()], CLS, mask_format="none")

    results = asyncio.run(go())
    assert [r.task for r in results] == ["classify", "classify"]
    assert [r.labels[0] for r in results] == ["dog", "dog"]


# -- the CLI, as a real process ------------------------------------------------------------------------


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VISIONSERVE_")}
    command = [sys.executable, "-m", "visionserve", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False, env=env)


@pytest.fixture(scope="module")
def gray_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("images") / "gray.png"
    path.write_bytes(image_bytes())
    return path


def test_cli_predict_every_task_offline(task_repository: Path, gray_file: Path) -> None:
    repo = ("--models", str(task_repository))
    result = cli("predict", str(gray_file), "--model", CLS, *repo, "--json", "--top-k", "2")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert (document["model"], document["task"]) == (CLS, "classify")
    assert [c["label"] for c in document["results"][0]["classes"]] == ["dog", "fish"]
    rle = json.loads(cli("predict", str(gray_file), "--model", SEG, *repo, "--json", "--mask-format", "rle").stdout)
    assert coco_mask.decode(rle["results"][0]["detections"][0]["rle"])[INSIDE0].all()
    table = cli("predict", str(gray_file), "--model", POSE, *repo)
    assert table.returncode == 0 and "1 detections" in table.stdout and "3 keypoints" in table.stdout


def test_cli_predict_writes_each_render_mode(task_repository: Path, gray_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "mask_only"
    result = cli("predict", str(gray_file), "--model", SEG, "--models", str(task_repository), "--out", str(out),
                 "--render", "mask_only")  # fmt: skip
    assert result.returncode == 0, result.stderr
    drawn_image = cv2.imread(str(out / "gray.jpg")).astype(int)
    assert near(drawn_image[40, 40], color_for(0)) and near(drawn_image[4, 124], (0, 0, 0))


def test_cli_detect_refuses_a_classifier(task_repository: Path, gray_file: Path) -> None:
    result = cli("detect", str(gray_file), "--model", CLS, "--models", str(task_repository))
    assert result.returncode == 1
    assert "classifies images" in result.stderr and "visionserve predict" in result.stderr


def test_cli_predict_through_a_server(task_server: ServerProcess, gray_file: Path) -> None:
    result = cli("predict", str(gray_file), "--model", POSE, "--url", task_server.url, "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert (document["model"], document["task"]) == (POSE, "pose")
    (person,) = document["results"][0]["detections"]
    assert [p["name"] for p in person["keypoints"]] == list(POSE_KEYPOINTS)
