"""The embedded default model agrees with SSD MobileNet v2 run directly through OpenCV DNN."""

from __future__ import annotations

import re

import cv2
import numpy as np
import pytest
from tests.conftest import PHOTOS

from visionserve.errors import InvalidParameterError
from visionserve.models.builtin import CLASSIFIER_NAME, POSE_NAME
from visionserve.models.default import DEFAULT_MODEL_NAME, default_spec
from visionserve.models.loading import load_model
from visionserve.models.repository import ModelRepository
from visionserve.pipeline import NetworkModel, PredictOptions, resolve_classes


@pytest.fixture(scope="module")
def model() -> NetworkModel:
    loaded = load_model(default_spec())
    assert isinstance(loaded, NetworkModel)
    return loaded


BUILTINS = [DEFAULT_MODEL_NAME, CLASSIFIER_NAME, POSE_NAME]


def direct(image: np.ndarray, conf: float) -> list[tuple[int, float, np.ndarray]]:
    """The model run by hand, as OpenCV's sample does it."""
    spec = default_spec()
    assert spec.files is not None and spec.files.config is not None
    net = cv2.dnn.readNetFromTensorflow(str(spec.path(spec.files.model)), str(spec.path(spec.files.config)))
    net.setInput(cv2.dnn.blobFromImage(image, size=(300, 300), swapRB=True))
    rows = net.forward()[0, 0]
    h, w = image.shape[:2]
    return [(int(r[1]), float(r[2]), r[3:7] * [w, h, w, h]) for r in rows if r[2] >= conf]


@pytest.mark.parametrize(("name", "label"), PHOTOS.items())
def test_matches_opencv_run_directly(model: NetworkModel, photos: dict[str, np.ndarray], name: str, label: str) -> None:
    image = photos[name]
    (found,) = model.predict([image], PredictOptions(conf=0.3))
    expected = sorted(direct(image, 0.3), key=lambda r: -r[1])
    assert len(found) == len(expected)
    assert model.labels.name(int(found.class_id[0])) == label
    for (class_id, score, box), got_box, got_score, got_class in zip(
        expected, found.xyxy, found.confidence, found.class_id, strict=True
    ):
        assert got_class == class_id
        assert abs(got_score - score) <= 0.02
        np.testing.assert_allclose(got_box, np.clip(box, 0, [image.shape[1], image.shape[0]] * 2), atol=3)


def test_batch_gives_the_same_as_one_by_one(model: NetworkModel, photos: dict[str, np.ndarray]) -> None:
    images = list(photos.values())
    batched = model.predict(images)
    for image, together in zip(images, batched, strict=True):
        (alone,) = model.predict([image])
        np.testing.assert_allclose(together.xyxy, alone.xyxy, atol=0.5)
        np.testing.assert_array_equal(together.class_id, alone.class_id)


def test_options_filter(model: NetworkModel, photos: dict[str, np.ndarray]) -> None:
    coffee = photos["coffee"]
    (everything,) = model.predict([coffee], PredictOptions(conf=0.3))
    cups = resolve_classes(["cup"], model.labels)
    (only_cups,) = model.predict([coffee], PredictOptions(conf=0.3, classes=cups))
    (one,) = model.predict([coffee], PredictOptions(conf=0.3, max_det=1))
    assert len(everything) > 1 and set(only_cups.class_id.tolist()) == {47} and len(one) == 1
    (strict,) = model.predict([coffee], PredictOptions(conf=0.99))
    assert len(strict) == 0


def test_bad_options_are_clear(model: NetworkModel) -> None:
    with pytest.raises(InvalidParameterError, match="unknown class 'unicorn'"):
        resolve_classes(["person", "unicorn"], model.labels)
    with pytest.raises(InvalidParameterError, match="conf must be between 0 and 1"):
        PredictOptions(conf=1.5)
    with pytest.raises(InvalidParameterError, match="max_det"):
        PredictOptions(max_det=0)


def test_default_model_is_always_in_the_repository(tmp_path: object) -> None:
    repo = ModelRepository.scan(None)
    assert repo.names() == sorted(BUILTINS)
    labels = load_model(repo.resolve(None)).labels
    assert (labels.name(1), labels.name(3), labels.name(6), labels.name(17), labels.name(47)) == (
        "person",
        "car",
        "bus",
        "cat",
        "cup",
    )
    assert len(labels) == 80 and labels.num_classes == 91


@pytest.mark.parametrize("value", ["99999", "91", "-1", "+1000", "unicorn"])
def test_classes_outside_the_labels_are_refused_with_one_message(model: NetworkModel, value: str) -> None:
    with pytest.raises(InvalidParameterError, match=f"unknown class '{re.escape(value)}': not among"):
        resolve_classes(["person", value], model.labels)


def test_classes_by_id_and_by_name_agree(model: NetworkModel) -> None:
    assert resolve_classes(["1", " cup ", "47", ""], model.labels) == frozenset({1, 47})
