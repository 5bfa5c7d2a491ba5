"""The built-in classifier and pose model on real photos, through the real loading code (LiteRT)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from visionserve.core.classifications import Classifications
from visionserve.core.detections import Detections
from visionserve.models.builtin import CLASSIFIER_NAME, POSE_NAME, builtin_specs, classifier_spec, pose_spec
from visionserve.models.default import DEFAULT_MODEL_NAME
from visionserve.models.loading import load_model
from visionserve.models.repository import ModelRepository
from visionserve.models.spec import Task
from visionserve.pipeline import PredictOptions, Predictor

#: The astronaut's face in ``skimage.data.astronaut()`` (512x512), found by eye: x1, y1, x2, y2.
FACE = (165, 60, 275, 190)


def bgr(name: str) -> np.ndarray:
    return cv2.cvtColor(getattr(data, name)(), cv2.COLOR_RGB2BGR)


@pytest.fixture(scope="module")
def classifier() -> Predictor:
    return load_model(classifier_spec())


@pytest.fixture(scope="module")
def pose() -> Predictor:
    return load_model(pose_spec())


def test_the_repository_holds_three_builtins_default_first() -> None:
    specs = builtin_specs()
    assert [s.name for s in specs] == [DEFAULT_MODEL_NAME, CLASSIFIER_NAME, POSE_NAME]
    assert [s.task for s in specs] == [Task.DETECT, Task.CLASSIFY, Task.POSE]
    assert ModelRepository.scan(None).names() == sorted(s.name for s in specs)


@pytest.mark.parametrize(("photo", "expected"), [("chelsea", "cat"), ("coffee", "espresso")])
def test_efficientnet_names_the_photo(classifier: Predictor, photo: str, expected: str) -> None:
    (found,) = classifier.predict([bgr(photo)])
    assert isinstance(found, Classifications) and len(found) == 5
    assert expected in classifier.labels.name(int(found.class_id[0]))
    assert found.confidence[0] > 0.5 and (np.diff(found.confidence) <= 0).all()


def test_efficientnet_top_k_and_classes(classifier: Predictor) -> None:
    (top2,) = classifier.predict([bgr("chelsea")], PredictOptions(top_k=2))
    assert len(top2) == 2
    espresso = classifier.labels.id_of("espresso")
    assert espresso is not None
    (only,) = classifier.predict([bgr("chelsea")], PredictOptions(classes=frozenset({espresso})))
    assert only.class_id.tolist() == [espresso]


def test_movenet_puts_nose_and_eyes_in_the_face(pose: Predictor) -> None:
    (found,) = pose.predict([bgr("astronaut")])
    assert isinstance(found, Detections) and len(found) == 1 and found.keypoints is not None
    names = [pose.labels.keypoint_name(k) for k in range(found.keypoints.shape[1])]
    assert names[:3] == ["nose", "left_eye", "right_eye"] and len(names) == 17
    x1, y1, x2, y2 = FACE
    for k in range(3):
        x, y, score = found.keypoints[0, k]
        assert x1 <= x <= x2 and y1 <= y <= y2 and score > 0.3, (names[k], x, y, score)
    # The person's box holds the face.
    bx1, by1, bx2, _ = found.xyxy[0]
    assert bx1 <= x1 + 20 and by1 <= y1 + 60 and bx2 >= x2 - 20


def test_movenet_maps_keypoints_back_through_the_letterbox(pose: Predictor) -> None:
    # The same photo inside a wide black canvas: the keypoints move by the offset, within a few pixels.
    canvas = np.zeros((512, 1024, 3), np.uint8)
    canvas[:, 256:768] = bgr("astronaut")
    (plain,) = pose.predict([bgr("astronaut")])
    (wide,) = pose.predict([canvas])
    assert isinstance(plain, Detections) and isinstance(wide, Detections)
    assert plain.keypoints is not None and wide.keypoints is not None
    shifted = wide.keypoints[0, :3, :2] - np.array([256, 0])
    assert np.abs(shifted - plain.keypoints[0, :3, :2]).max() < 12
