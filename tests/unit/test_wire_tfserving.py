"""The TF Serving REST codec on hand-built bodies."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import pytest

from visionserve.api.wire.tfserving import (
    ModelVersionState,
    PredictFormat,
    parse_predict_request,
    render_metadata,
    render_predict_response,
    render_version_status,
    tf_version,
)
from visionserve.core.detections import Detections
from visionserve.errors import InvalidParameterError
from visionserve.models.labels import Labels
from visionserve.models.spec import Task

LABELS = Labels({1: "person", 17: "cat"})
JPEG = b"\xff\xd8\xff\xe0fake-jpeg"
B64 = base64.b64encode(JPEG).decode()


def request(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    "document",
    [
        {"instances": [{"b64": B64}, {"b64": B64}]},
        {"instances": [{"inputs": {"b64": B64}}, {"inputs": {"b64": B64}}]},
        {"signature_name": "serving_default", "instances": [{"b64": B64}, {"b64": B64}]},
    ],
)
def test_row_format_reads_b64_images(document: dict[str, Any]) -> None:
    parsed = parse_predict_request(request(document))
    assert parsed.format is PredictFormat.ROW
    assert parsed.images == [JPEG, JPEG]


@pytest.mark.parametrize(
    ("document", "count"),
    [
        ({"inputs": {"inputs": [{"b64": B64}, {"b64": B64}]}}, 2),
        ({"inputs": [{"b64": B64}]}, 1),
        ({"inputs": {"b64": B64}}, 1),
        ({"inputs": {"inputs": {"b64": B64}}}, 1),
    ],
)
def test_columnar_format_reads_b64_images(document: dict[str, Any], count: int) -> None:
    parsed = parse_predict_request(request(document))
    assert parsed.format is PredictFormat.COLUMNAR
    assert parsed.images == [JPEG] * count


def test_pixel_lists_are_rgb_and_become_bgr() -> None:
    rgb = [[[255, 0, 0], [0, 255, 0]]]  # 1x2 image: red, green
    for document in ({"instances": [rgb]}, {"inputs": [rgb, rgb]}, {"inputs": rgb}):
        images = parse_predict_request(request(document)).images
        assert all(isinstance(i, np.ndarray) and i.dtype == np.uint8 for i in images)
        assert images[0][0].tolist() == [[0, 0, 255], [0, 255, 0]]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{nope", "JSON Parse error"),
        (b'{"instances": ' + b"[" * 5000 + b"]" * 5000 + b"}", "nested too deeply"),
        (b'{"instances": [' + b"9" * 5000 + b"]}", "digits"),
        (b"[1, 2]", "not an object"),
        (request({"signature_name": "detect", "instances": [{"b64": B64}]}), 'signature name: "detect" not found'),
        (request({"instances": [{"b64": B64}], "inputs": {"b64": B64}}), "exactly one of them"),
        (request({}), "Missing 'instances' or 'inputs'"),
        (request({"instances": []}), "non-empty list"),
        (request({"instances": [{"image": {"b64": B64}}]}), "does not have named input: image"),
        (request({"instances": [{"b64": "@@@"}]}), "not valid base64"),
        (request({"instances": [{"b64": B64, "x": 1}]}), "no other keys"),
        (request({"instances": [[[[300, 0, 0]]]]}), "integers from 0 to 255"),
        (request({"instances": [[[[1, 2]]]]}), r"\(height, width, 3\)"),
        (request({"instances": [[[[1, 2, 3]], [[1, 2, 3], [4, 5, 6]]]]}), "different lengths"),
        (request({"instances": ["text"]}), "got str"),
        (request({"inputs": {"pixels": []}}), "no named input 'pixels'"),
        (request({"inputs": []}), "non-empty batch"),
    ],
)
def test_bad_requests_are_rejected(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidParameterError, match=message):
        parse_predict_request(raw)


def two() -> Detections:
    return Detections(
        np.array([[0, 0, 50, 25], [100, 50, 200, 100]], np.float32),
        np.array([0.6, 0.9], np.float32),
        np.array([17, 1], np.int32),
    )


def test_row_answer_has_tf_od_outputs_normalized_yx_and_padded() -> None:
    answer = render_predict_response([(two(), 200, 100), (Detections.empty(), 10, 10)], LABELS, PredictFormat.ROW)
    first, second = answer["predictions"]
    assert first["detection_boxes"] == [[0.5, 0.5, 1.0, 1.0], [0.0, 0.0, 0.25, 0.25]]
    assert first["detection_scores"] == pytest.approx([0.9, 0.6])
    assert first["detection_classes"] == [1.0, 17.0]
    assert first["detection_class_names"] == ["person", "cat"]
    assert first["num_detections"] == 2.0
    assert second["detection_boxes"] == [[0.0] * 4, [0.0] * 4]
    assert second["num_detections"] == 0.0 and second["detection_class_names"] == ["", ""]


def test_columnar_answer_batches_each_output() -> None:
    answer = render_predict_response([(two(), 200, 100)] * 2, LABELS, PredictFormat.COLUMNAR)
    outputs = answer["outputs"]
    assert set(outputs) == {
        "detection_boxes",
        "detection_scores",
        "detection_classes",
        "detection_class_names",
        "num_detections",
    }
    assert np.asarray(outputs["detection_boxes"]).shape == (2, 2, 4)
    assert outputs["num_detections"] == [2.0, 2.0]


def test_a_pose_answer_adds_normalized_yx_keypoints_and_their_scores_padded_per_batch() -> None:
    labels = Labels({0: "person"}, keypoints=("nose", "left_eye"))
    points = np.array([[[50.0, 25.0, 0.9], [150.0, 75.0, 0.4]]], np.float32)
    person = Detections(
        np.array([[0, 0, 200, 100]], np.float32), np.array([0.8], np.float32), np.array([0]), keypoints=points
    )
    results = [(person, 200, 100), (Detections.empty(), 200, 100)]
    columns = render_predict_response(results, labels, PredictFormat.COLUMNAR, Task.POSE)["outputs"]
    assert columns["detection_keypoints"] == [[[[0.25, 0.25], [0.75, 0.75]]], [[[0.0, 0.0], [0.0, 0.0]]]]
    assert columns["detection_keypoint_scores"] == [[pytest.approx([0.9, 0.4])], [[0.0, 0.0]]]
    plain = render_predict_response(results, labels, PredictFormat.ROW)["predictions"][0]
    assert "detection_keypoints" not in plain  # a detect model's signature has no keypoint outputs
    outputs = render_metadata("pose", 1, Task.POSE)["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert {"detection_keypoints", "detection_keypoint_scores"} <= set(outputs["outputs"])


def test_boxes_outside_the_image_are_clipped_to_unit_range() -> None:
    outside = Detections(np.array([[-10, -10, 300, 300]], np.float32), np.array([0.5], np.float32), np.array([1]))
    answer = render_predict_response([(outside, 100, 100)], LABELS, PredictFormat.ROW)
    assert answer["predictions"][0]["detection_boxes"] == [[0.0, 0.0, 1.0, 1.0]]


def test_status_metadata_and_versions() -> None:
    assert tf_version("7") == 7 and tf_version("2018_03_29") == 1 and tf_version(None) == 1
    status = render_version_status(1, ModelVersionState.AVAILABLE).model_dump()
    assert status == {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    failed = render_version_status(1, ModelVersionState.END, "no such file").model_dump()
    assert failed["status"] == {"error_code": "UNKNOWN", "error_message": "no such file"}
    metadata = render_metadata("ssd", 1)
    assert metadata["model_spec"] == {"name": "ssd", "signature_name": "", "version": "1"}
    signature = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["inputs"]["inputs"]["dtype"] == "DT_STRING"
    assert signature["outputs"]["detection_boxes"]["tensor_shape"]["dim"][2] == {"size": "4", "name": ""}
    assert signature["method_name"] == "tensorflow/serving/predict"
