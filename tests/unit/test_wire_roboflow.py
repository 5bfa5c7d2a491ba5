"""The Roboflow Inference codec on hand-built bodies, shaped as inference-sdk 1.8 sends them."""

from __future__ import annotations

import base64
import io
import itertools
import json
import os
import pickle
from typing import Any

import numpy as np
import pytest

from visionserve.api.wire.roboflow import (
    ModelDescription,
    UrlImage,
    class_agnostic,
    parse_object_detection_request,
    render_object_detection,
    render_registry,
)
from visionserve.core.detections import Detections
from visionserve.errors import ImageDecodeError, InputError, InvalidParameterError
from visionserve.models.labels import Labels

LABELS = Labels({0: "person", 1: "car"})
JPEG = b"\xff\xd8\xff\xe0fake"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def request(**fields: Any) -> bytes:
    return json.dumps({"model_id": "yolo", **fields}).encode()


def test_sdk_shaped_request_gives_images_and_options() -> None:
    # What InferenceHTTPClient.infer() posts with a configured confidence and class filter.
    raw = request(
        api_key=None,
        image={"type": "base64", "value": b64(JPEG)},
        confidence=0.25,
        class_filter=["car"],
        iou_threshold=0.5,
        max_detections=10,
        disable_preproc_auto_orient=False,
        source="inference-sdk",
    )
    parsed = parse_object_detection_request(raw)
    assert parsed.images == [JPEG] and not parsed.batched
    assert (parsed.options.conf, parsed.options.iou, parsed.options.max_det) == (0.25, 0.5, 10)
    assert parsed.options.classes == ("car",)
    assert parsed.request.model_id == "yolo"


def test_defaults_are_roboflows() -> None:
    parsed = parse_object_detection_request(request(image={"type": "base64", "value": b64(JPEG)}))
    assert (parsed.options.conf, parsed.options.iou, parsed.options.max_det, parsed.options.classes) == (
        0.4,
        0.3,
        300,
        None,
    )


def test_default_confidence_keeps_the_models_threshold() -> None:
    raw = request(image={"type": "base64", "value": b64(JPEG)}, confidence="default")
    assert parse_object_detection_request(raw).options.conf is None


def test_best_confidence_asks_for_the_saved_per_class_thresholds() -> None:
    raw = request(image={"type": "base64", "value": b64(JPEG)}, confidence="best")
    assert parse_object_detection_request(raw).options.conf == "best"


def test_list_of_images_is_a_batch_with_data_urls_and_urls() -> None:
    images = [
        {"type": "base64", "value": "data:image/jpeg;base64," + b64(JPEG)},
        {"type": "url", "value": "http://127.0.0.1:8000/photo.jpg"},
    ]
    parsed = parse_object_detection_request(request(image=images))
    assert parsed.batched
    assert parsed.images == [JPEG, UrlImage("http://127.0.0.1:8000/photo.jpg")]


def pickled(array: np.ndarray, protocol: int) -> str:
    return b64(pickle.dumps(array, protocol=protocol))


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_numpy_images_are_bgr_arrays_from_pickles(protocol: int) -> None:
    bgr = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    parsed = parse_object_detection_request(request(image={"type": "numpy", "value": pickled(bgr, protocol)}))
    (image,) = parsed.images
    assert isinstance(image, np.ndarray)
    np.testing.assert_array_equal(image, bgr)


def test_numpy_images_may_be_npy_files() -> None:
    bgr = np.full((4, 5, 3), 7, np.uint8)
    buffer = io.BytesIO()
    np.save(buffer, bgr)
    parsed = parse_object_detection_request(request(image={"type": "numpy", "value": b64(buffer.getvalue())}))
    np.testing.assert_array_equal(parsed.images[0], bgr)  # type: ignore[arg-type]


class Exploit:
    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize(
    ("image", "message"),
    [
        ({"type": "numpy", "value": b64(pickle.dumps(Exploit()))}, "is not allowed"),
        ({"type": "numpy", "value": b64(pickle.dumps({"a": 1}))}, "not an array"),
        ({"type": "numpy", "value": b64(b"garbage")}, "not a pickled or .npy"),
        ({"type": "numpy", "value": pickled(np.zeros((2, 2, 3), np.float32), 4)}, "uint8"),
        ({"type": "numpy", "value": pickled(np.zeros((2, 2), np.uint8), 4)}, r"\(height, width, 3\)"),
        ({"type": "base64", "value": "***"}, "not valid base64"),
        ({"type": "base64", "value": 12}, "must be a base64 string"),
        ({"type": "url", "value": "file:///etc/passwd"}, "http:// or https://"),
        ({"type": "s3", "value": "x"}, "image.type"),
    ],
)
def test_bad_images_are_rejected(image: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_object_detection_request(request(image=image))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{", "invalid request"),
        (request(), "image: Field required"),
        (request(image=[]), "image list is empty"),
        (request(image={"type": "base64", "value": b64(JPEG)}, confidence="most"), "confidence"),
    ],
)
def test_bad_requests_are_rejected(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidParameterError, match=message):
        parse_object_detection_request(raw)


def test_answer_has_centre_boxes_sorted_with_ids() -> None:
    detections = Detections(
        np.array([[10, 20, 30, 60], [0, 0, 100, 50]], np.float32),
        np.array([0.5, 0.8], np.float32),
        np.array([1, 0], np.int32),
    )
    ids = (f"id-{i}" for i in itertools.count())
    answer = render_object_detection(detections, LABELS, (640, 480), 0.0421, b"\xff\xd8", lambda: next(ids))
    dumped = json.loads(answer.model_dump_json())
    assert dumped["image"] == {"width": 640, "height": 480}
    assert dumped["time"] == pytest.approx(0.0421)
    assert dumped["visualization"] == b64(b"\xff\xd8")
    assert dumped["predictions"] == [
        {
            "x": 50.0,
            "y": 25.0,
            "width": 100.0,
            "height": 50.0,
            "confidence": 0.8,
            "class": "person",
            "class_id": 0,
            "detection_id": "id-0",
        },
        {
            "x": 20.0,
            "y": 40.0,
            "width": 20.0,
            "height": 40.0,
            "confidence": 0.5,
            "class": "car",
            "class_id": 1,
            "detection_id": "id-1",
        },
    ]
    assert dumped["inference_id"] == "id-2"


def test_class_agnostic_nms_drops_overlaps_across_classes() -> None:
    detections = Detections(
        np.array([[0, 0, 10, 10], [0, 0, 10, 11], [50, 50, 60, 60]], np.float32),
        np.array([0.9, 0.8, 0.7], np.float32),
        np.array([0, 1, 1], np.int32),
    )
    kept = class_agnostic(detections, 0.5)
    np.testing.assert_array_equal(kept.confidence, np.array([0.9, 0.7], np.float32))
    assert len(class_agnostic(Detections.empty(), 0.5)) == 0


def test_registry_lists_model_descriptions() -> None:
    registry = render_registry([ModelDescription(model_id="yolo", batch_size=4, input_height=320, input_width=320)])
    assert registry.model_dump() == {
        "models": [
            {
                "model_id": "yolo",
                "task_type": "object-detection",
                "batch_size": 4,
                "input_height": 320,
                "input_width": 320,
            }
        ]
    }


def test_unreadable_image_data_is_a_decode_error_like_roboflows_400() -> None:
    with pytest.raises(ImageDecodeError, match="Could not load input image"):
        parse_object_detection_request(request(image={"type": "base64", "value": "***"}))
    with pytest.raises(InvalidParameterError, match="http:// or https://"):
        parse_object_detection_request(request(image={"type": "url", "value": "ftp://x"}))
