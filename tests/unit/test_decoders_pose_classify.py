"""Pose and classify decoders end to end: tiny YOLOv8-pose, MoveNet and classifier models with
hand-made outputs, loaded by the real loading code and run by ONNX Runtime on non-square images;
keypoints compared with hand-worked source pixels, classes exactly."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from tests.decoder_support import Placement, jpeg, load_network
from tests.factories import (
    constant_onnx,
    movenet_model,
    solid_image,
    yolov8_cls_model,
    yolov8_pose_model,
    yolov8_pose_table,
)

from visionserve.core.classifications import Classifications
from visionserve.core.detections import Detections
from visionserve.core.images import decode_image
from visionserve.models.spec import Task
from visionserve.pipeline import NetworkModel, PredictOptions
from visionserve.serving.instances import decode_for_model

# --- YOLOv8-pose --------------------------------------------------------------------------------
# 640 x 640 input, 17 keypoints. Columns (box xyxy in input pixels, score, keypoints):
#   A (200, 150, 440, 450) 0.9: keypoint k at (250 + 10 k, 200 + 15 k), visibility 0.9 (0.1 for k = 3);
#       keypoint 0 is moved to (100, 100): in the bars of both images below, so it is clipped
#   B A's box moved 8 px right, 0.8, A's keypoints + 30 px: NMS removes it
#   C (450, 300, 560, 500) 0.5: keypoint k at (460 + 5 k, 310 + 10 k), visibility 0.7
#   D (100, 100, 150, 200) 0.1: under the default conf 0.25
POSE_BOXES = {
    "A": (200.0, 150.0, 440.0, 450.0),
    "B": (208.0, 150.0, 448.0, 450.0),
    "C": (450.0, 300.0, 560.0, 500.0),
    "D": (100.0, 100.0, 150.0, 200.0),
}
POSE_SCORES = {"A": 0.9, "B": 0.8, "C": 0.5, "D": 0.1}
K = np.arange(17, dtype=np.float32)


def pose_keypoints() -> dict[str, np.ndarray]:
    a = np.stack([250 + 10 * K, 200 + 15 * K, np.full(17, 0.9)], axis=1)
    a[0, :2] = (100, 100)
    a[3, 2] = 0.1
    b = a + np.array([30, 30, 0])
    c = np.stack([460 + 5 * K, 310 + 10 * K, np.full(17, 0.7)], axis=1)
    return {"A": a, "B": b, "C": c, "D": np.zeros((17, 3))}


# Letterbox by hand: 1000 x 600 -> scale 0.64, 128 px bars top and bottom; 480 x 800 -> scale 0.8,
# 128 px bars left and right.
POSE_PLACES = [Placement(1000, 600, 0.64, 0.64, 0, 128), Placement(480, 800, 0.8, 0.8, 128, 0)]


@pytest.fixture(scope="module")
def pose_model(tmp_path_factory: pytest.TempPathFactory) -> NetworkModel:
    """A bare YOLOv8-pose export (no model.yaml)."""
    points = pose_keypoints()
    rows = []
    for letter, (x1, y1, x2, y2) in POSE_BOXES.items():
        rows.append(((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, POSE_SCORES[letter], points[letter]))
    path = tmp_path_factory.mktemp("pose") / "tiny-pose.onnx"
    return load_network(yolov8_pose_model(path, yolov8_pose_table(rows, 17)))


def expected_keypoints(place: Placement, letter: str) -> np.ndarray:
    return np.array([(*place.point(x, y), s) for x, y, s in pose_keypoints()[letter]], np.float32)


POSE_OPTIONS = {
    "defaults: NMS removes B": (PredictOptions(), "AC"),
    "lower conf keeps D": (PredictOptions(conf=0.05), "ACD"),
    "max_det": (PredictOptions(max_det=1), "A"),
    "loose iou keeps B": (PredictOptions(iou=0.95), "ABC"),
    "class filter of the one class": (PredictOptions(classes=frozenset({0})), "AC"),
    "class filter of another class": (PredictOptions(classes=frozenset({1})), ""),
}


@pytest.mark.parametrize(("options", "letters"), POSE_OPTIONS.values(), ids=POSE_OPTIONS.keys())
def test_yolov8_pose_keypoints_in_letterboxed_images(
    pose_model: NetworkModel, options: PredictOptions, letters: str
) -> None:
    images = [solid_image(p.width, p.height) for p in POSE_PLACES]
    for found, place in zip(pose_model.predict(images, options), POSE_PLACES, strict=True):
        assert isinstance(found, Detections)
        assert found.class_id.tolist() == [0] * len(letters)
        np.testing.assert_allclose(found.confidence, [POSE_SCORES[k] for k in letters], rtol=1e-6)
        boxes = np.reshape([place.box(POSE_BOXES[k]) for k in letters], (-1, 4))
        np.testing.assert_allclose(found.xyxy, boxes, atol=1e-3)
        assert found.keypoints is not None
        wanted = [expected_keypoints(place, k) for k in letters]
        np.testing.assert_allclose(found.keypoints.reshape(-1, 17, 3), np.reshape(wanted, (-1, 17, 3)), atol=1e-3)


def test_pose_keypoints_in_the_bars_are_clipped_to_the_image(pose_model: NetworkModel) -> None:
    wide, tall = pose_model.predict([solid_image(1000, 600), solid_image(480, 800)])
    assert isinstance(wide, Detections) and isinstance(tall, Detections)
    assert wide.keypoints is not None and tall.keypoints is not None
    # (100, 100) in input pixels: above the wide image's content, left of the tall one's.
    np.testing.assert_allclose(wide.keypoints[0, 0, :2], (156.25, 0.0), atol=1e-3)
    np.testing.assert_allclose(tall.keypoints[0, 0, :2], (0.0, 125.0), atol=1e-3)


def test_pose_model_names_coco_keypoints(pose_model: NetworkModel) -> None:
    assert pose_model.spec.task is Task.POSE
    assert pose_model.labels.keypoint_name(0) == "nose" and pose_model.labels.keypoint_name(16) == "right_ankle"


def test_reduced_jpeg_decode_puts_keypoints_on_the_same_pixels(pose_model: NetworkModel) -> None:
    # 1601 x 1001 letterboxes to 640 x 400; a 1/2 decode (801 x 501) still has those pixels.
    data = jpeg(1601, 1001)
    reduced = decode_for_model(data, 10**8, pose_model.spec.network[1])
    assert reduced.image.shape[:2] == (501, 801)
    (small,) = pose_model.predict([reduced.image])
    assert isinstance(small, Detections)
    found = small.scaled(*reduced.scale)
    (full,) = pose_model.predict([decode_image(data).image])
    assert found.keypoints is not None and full.keypoints is not None
    np.testing.assert_allclose(found.keypoints, full.keypoints, atol=2.0)
    np.testing.assert_allclose(found.xyxy, full.xyxy, atol=2.0)
    # By hand: r = 640 / 1601, resized to round(1601 r) x round(1001 r) = 640 x 400, bars of 120 px.
    place = Placement(1601, 1001, 640 / 1601, 400 / 1001, 0, 120)
    np.testing.assert_allclose(full.keypoints[0], expected_keypoints(place, "A"), atol=1.0)


# --- MoveNet single-pose -----------------------------------------------------------------------
# 192 x 192 NHWC input, stretched. Keypoint k at (y, x) = (0.2 + 0.03 k, 0.3 + 0.02 k) normalised,
# score 0.8 but 0.1 for k = 0 and 16 (too low to shape the box): one person scored by the mean
# (15 * 0.8 + 2 * 0.1) / 17, boxed by keypoints 1..15.
MOVENET_SCORE = (15 * 0.8 + 2 * 0.1) / 17


@pytest.fixture(scope="module")
def movenet(tmp_path_factory: pytest.TempPathFactory) -> NetworkModel:
    scores = np.full(17, 0.8)
    scores[[0, 16]] = 0.1
    points = np.stack([0.2 + 0.03 * K, 0.3 + 0.02 * K, scores], axis=1)[None, None].astype(np.float32)
    root = tmp_path_factory.mktemp("movenet")
    (root / "movenet").mkdir()
    movenet_model(root / "movenet" / "lightning.onnx", points)
    (root / "movenet" / "model.yaml").write_text(
        "name: movenet\ntask: pose\nbackend: onnxruntime\nfiles: {model: lightning.onnx}\n"
        "input: {width: 192, height: 192, resize: stretch, color: rgb, layout: nhwc}\n"
        "decoder: {layout: movenet, nms: false}\nlabels: [person]\n",
        encoding="utf-8",
    )
    return load_network(root, "movenet")


@pytest.mark.parametrize(("width", "height"), [(640, 360), (300, 500)])
def test_movenet_keypoints_stretched_back(movenet: NetworkModel, width: int, height: int) -> None:
    (found,) = movenet.predict([solid_image(width, height)])
    assert isinstance(found, Detections) and found.keypoints is not None
    assert (found.class_id.tolist(), len(found.keypoints[0])) == ([0], 17)
    assert float(found.confidence[0]) == pytest.approx(MOVENET_SCORE, rel=1e-6)
    xs, ys = (0.3 + 0.02 * K) * width, (0.2 + 0.03 * K) * height
    np.testing.assert_allclose(found.keypoints[0, :, 0], xs, atol=1e-3)
    np.testing.assert_allclose(found.keypoints[0, :, 1], ys, atol=1e-3)
    np.testing.assert_allclose(found.xyxy[0], (xs[1], ys[1], xs[15], ys[15]), atol=1e-3)


def test_movenet_conf_and_class_filter(movenet: NetworkModel) -> None:
    image = solid_image(640, 360)
    assert len(movenet.predict([image], PredictOptions(conf=0.72))[0]) == 0
    assert len(movenet.predict([image], PredictOptions(conf=0.71))[0]) == 1
    assert len(movenet.predict([image], PredictOptions(classes=frozenset({1})))[0]) == 0


# --- Classifiers -------------------------------------------------------------------------------


def ranked(found: object) -> list[tuple[int, float]]:
    assert isinstance(found, Classifications)
    return [(int(c), round(float(s), 5)) for c, s in zip(found.class_id, found.confidence, strict=True)]


@pytest.fixture(scope="module")
def yolov8_cls(tmp_path_factory: pytest.TempPathFactory) -> NetworkModel:
    """A bare YOLOv8-cls export: probabilities cat 0.05, dog 0.6, fox 0.1, owl 0.25."""
    path = tmp_path_factory.mktemp("cls") / "tiny-cls.onnx"
    return load_network(yolov8_cls_model(path, [0.05, 0.6, 0.1, 0.25], ["cat", "dog", "fox", "owl"]))


CLS_OPTIONS = {
    "defaults: every class down to 0": (PredictOptions(), [(1, 0.6), (3, 0.25), (2, 0.1), (0, 0.05)]),
    "top_k": (PredictOptions(top_k=2), [(1, 0.6), (3, 0.25)]),
    "conf": (PredictOptions(conf=0.2), [(1, 0.6), (3, 0.25)]),
    "class filter": (PredictOptions(classes=frozenset({0, 2})), [(2, 0.1), (0, 0.05)]),
    "class filter and top_k": (PredictOptions(classes=frozenset({0, 2}), top_k=1), [(2, 0.1)]),
}


@pytest.mark.parametrize(("options", "expected"), CLS_OPTIONS.values(), ids=CLS_OPTIONS.keys())
def test_yolov8_cls(yolov8_cls: NetworkModel, options: PredictOptions, expected: list[tuple[int, float]]) -> None:
    assert [ranked(found) for found in yolov8_cls.predict([solid_image(300, 200), solid_image(90, 160)], options)] == [
        expected,
        expected,
    ]


def classifier_folder(root: Path, name: str, table: np.ndarray, activation: str, extra: str = "") -> Path:
    """A plain classifier with a model.yaml: 64 x 48 input, stretched, ``decoder.activation``."""
    (root / name).mkdir()
    constant_onnx(root / name / "net.onnx", table, input_shape=("batch", 3, 48, 64))
    (root / name / "model.yaml").write_text(
        f"name: {name}\ntask: classify\nbackend: onnxruntime\nfiles: {{model: net.onnx}}\n"
        f"input: {{width: 64, height: 48, scale: 0.00392156862745098}}\n"
        f"decoder: {{layout: classify, activation: {activation}}}\nlabels: [a, b, c, d, e]\n{extra}",
        encoding="utf-8",
    )
    return root


def test_softmax_classifier(tmp_path: Path) -> None:
    logits = [2.0, 0.5, -1.0, 1.0, 0.0]
    root = classifier_folder(tmp_path, "soft", np.array([logits], np.float32), "softmax", "thresholds: {top_k: 3}\n")
    model = load_network(root, "soft")
    total = sum(math.exp(v) for v in logits)
    probability = [round(math.exp(v) / total, 5) for v in logits]
    # Thresholds that name top_k but no conf: a classifier still keeps classes down to a score of 0
    # (it used to get the detectors' default conf 0.4, which left only class 0 here).
    found = model.predict([solid_image(120, 40), solid_image(20, 90)])
    assert [ranked(f) for f in found] == [[(0, probability[0]), (3, probability[3]), (1, probability[1])]] * 2
    assert ranked(model.predict([solid_image(50, 50)], PredictOptions(conf=0.15))[0]) == [
        (0, probability[0]),
        (3, probability[3]),
    ]
    assert ranked(model.predict([solid_image(50, 50)], PredictOptions(top_k=5))[0])[-1] == (2, probability[2])


def test_sigmoid_classifier_with_a_4d_output(tmp_path: Path) -> None:
    # [B, C, 1, 1] scores, one sigmoid each (multi-label): they need not add up to 1.
    logits = [-2.0, 0.0, 3.0, 1.0, -1.0]
    root = classifier_folder(tmp_path, "multi", np.array(logits, np.float32).reshape(1, 5, 1, 1), "sigmoid")
    model = load_network(root, "multi")
    probability = [round(1 / (1 + math.exp(-v)), 5) for v in logits]
    assert ranked(model.predict([solid_image(120, 40)])[0]) == [(i, probability[i]) for i in (2, 3, 1, 4, 0)]
    assert ranked(model.predict([solid_image(120, 40)], PredictOptions(conf=0.5))[0]) == [
        (2, probability[2]),
        (3, probability[3]),
        (1, 0.5),
    ]
