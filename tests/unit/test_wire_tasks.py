"""The codecs of segment, pose and classify predictions (Roboflow, DeepStack, KServe v2, TF Serving)
on hand-built values."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from visionserve.api.wire import deepstack, tfserving
from visionserve.api.wire.kserve_outputs import ImagePrediction, OutputName, WantedOutput, output_tensors, wanted_output
from visionserve.api.wire.roboflow import (
    ClassificationRequest,
    InstanceSegmentationRequest,
    KeypointsDetectionRequest,
    check_task,
    parse_infer_request,
)
from visionserve.api.wire.roboflow_tasks import (
    render_classification,
    render_instance_segmentation,
    render_keypoints_detection,
)
from visionserve.core.classifications import Classifications
from visionserve.core.detections import Detections
from visionserve.core.masks import InstanceMasks
from visionserve.core.prediction import classes_of
from visionserve.errors import InvalidParameterError, WrongTaskError
from visionserve.models.labels import Labels
from visionserve.models.spec import Task

LABELS = Labels({0: "person", 1: "car"}, keypoints=("nose", "tail"))
CLASSES = Labels({0: "cat", 1: "dog", 2: "bird"})


def segmented() -> Detections:
    """Two instances on a 40x30 image: a 10x10 square mask (score 0.5) and a two-part mask (0.9)."""
    dense = np.zeros((2, 30, 40), bool)
    dense[0, 5:15, 5:15] = True
    dense[1, 2:4, 20:24] = True
    dense[1, 10:20, 25:35] = True
    masks = InstanceMasks.from_dense(dense)
    return Detections(np.array([[5, 5, 15, 15], [20, 2, 35, 20]], np.float32), [0.5, 0.9], [0, 1], masks=masks)


def posed() -> Detections:
    keypoints = np.array([[[1, 2, 0.9], [3, 4, 0.1]]], np.float32)
    return Detections(np.array([[0, 0, 10, 20]], np.float32), [0.8], [0], keypoints=keypoints)


def ids() -> itertools.count[int]:
    return itertools.count()


def test_roboflow_task_requests_carry_their_fields() -> None:
    image = {"type": "base64", "value": "AAAA"}
    seg = parse_infer_request(
        json.dumps({"image": image, "response_mask_format": "rle"}).encode(), InstanceSegmentationRequest
    )
    assert seg.request.response_mask_format == "rle" and seg.options.iou == 0.3
    pose = parse_infer_request(
        json.dumps({"image": image, "keypoint_confidence": 0.5}).encode(), KeypointsDetectionRequest
    )
    assert pose.request.keypoint_confidence == 0.5
    cls = parse_infer_request(json.dumps({"image": image, "confidence": 0.2}).encode(), ClassificationRequest)
    assert (cls.options.conf, cls.options.iou, cls.options.max_det) == (0.2, None, None)
    with pytest.raises(InvalidParameterError, match="response_mask_format"):
        parse_infer_request(
            json.dumps({"image": image, "response_mask_format": "png"}).encode(), InstanceSegmentationRequest
        )


def test_roboflow_segmentation_keeps_the_largest_polygon_or_gives_rle() -> None:
    counter = ids()
    answer = render_instance_segmentation(segmented(), LABELS, (40, 30), 0.01, new_id=lambda: f"id-{next(counter)}")
    first, second = (p.model_dump(mode="json") for p in answer.predictions)
    assert (first["class"], first["confidence"], first["mask_format"]) == ("car", 0.9, "polygon")
    xs = [p["x"] for p in first["points"]]
    assert (min(xs), max(xs)) == (25.5, 34.5)  # the larger part only
    assert second["points"] == [
        {"x": 5.5, "y": 5.5},
        {"x": 5.5, "y": 14.5},
        {"x": 14.5, "y": 14.5},
        {"x": 14.5, "y": 5.5},
    ]
    assert (first["detection_id"], second["detection_id"], answer.inference_id) == ("id-0", "id-1", "id-2")
    rle = render_instance_segmentation(segmented(), LABELS, (40, 30), 0.01, "rle").predictions
    dumped = rle[1].model_dump(mode="json")
    assert dumped["mask_format"] == "rle" and "points" not in dumped
    assert coco_mask.decode(dumped["rle"]).astype(bool)[5:15, 5:15].all()
    assert coco_mask.decode(dumped["rle"]).sum() == 100


def test_roboflow_keypoints_are_named_and_filtered() -> None:
    answer = render_keypoints_detection(posed(), LABELS, (10, 20), 0.01, keypoint_confidence=0.5)
    dumped = answer.model_dump(mode="json")["predictions"][0]
    assert (dumped["x"], dumped["y"], dumped["class"]) == (5.0, 10.0, "person")
    assert dumped["keypoints"] == [{"x": 1.0, "y": 2.0, "confidence": 0.9, "class_id": 0, "class": "nose"}]
    every = render_keypoints_detection(posed(), LABELS, (10, 20), 0.01).predictions[0].keypoints
    assert [k.class_name for k in every] == ["nose", "tail"]


def test_roboflow_classification_top_or_empty() -> None:
    answer = render_classification(Classifications.from_scores(np.array([0.1, 0.7, 0.2])), CLASSES, (5, 5), 0.01)
    dumped = answer.model_dump(mode="json")
    assert (dumped["top"], dumped["confidence"]) == ("dog", 0.7)
    assert [p["class"] for p in dumped["predictions"]] == ["dog", "bird", "cat"]
    assert set(dumped["predictions"][0]) == {"class", "class_id", "confidence"}
    empty = render_classification(Classifications.empty(), CLASSES, (5, 5), 0.01).model_dump(mode="json")
    assert (empty["top"], empty["confidence"], empty["predictions"]) == ("", 0.0, [])


@pytest.mark.parametrize(
    ("route", "task", "allowed"),
    [
        ("object_detection", Task.SEGMENT, True),
        ("object_detection", Task.CLASSIFY, False),
        ("classification", Task.DETECT, False),
        ("instance_segmentation", Task.POSE, False),
        ("keypoints_detection", Task.POSE, True),
    ],
)
def test_roboflow_routes_check_the_task(route: str, task: Task, allowed: bool) -> None:
    if allowed:
        check_task(route, task, "m")
    else:
        with pytest.raises(WrongTaskError, match="'m'"):
            check_task(route, task, "m")


def test_classes_of_refuses_detections() -> None:
    with pytest.raises(WrongTaskError, match="does not classify"):
        classes_of(Detections.empty(), "ssd")


def test_deepstack_scene_is_the_best_class() -> None:
    timing = deepstack.Timing(5.0, 3.0, 7.0, 0.0)
    answer = deepstack.render_scene(
        Classifications.from_scores(np.array([0.1, 0.7, 0.2])), CLASSES, timing, deepstack.ServerFacts()
    )
    dumped = answer.model_dump(mode="json")
    assert {k: dumped[k] for k in ("success", "label", "confidence", "command")} == {
        "success": True,
        "label": "dog",
        "confidence": pytest.approx(0.7),
        "command": "scene",
    }
    empty = deepstack.render_scene(Classifications.empty(), CLASSES, timing, deepstack.ServerFacts())
    assert (empty.label, empty.confidence, empty.message) == ("", 0.0, "No scene found")


def test_kserve_mask_and_keypoint_tensors() -> None:
    wanted = [
        WantedOutput(OutputName.MASKS),
        WantedOutput(OutputName.POLYGONS),
        WantedOutput(OutputName.NUM_DETECTIONS),
    ]
    tensors = output_tensors(
        wanted, [ImagePrediction(segmented(), 40, 30), ImagePrediction(Detections.empty(), 8, 8)], LABELS
    )
    assert tensors[OutputName.MASKS].shape == (2, 2) and tensors[OutputName.MASKS][1].tolist() == [b"", b""]
    square = coco_mask.decode(json.loads(tensors[OutputName.MASKS][0, 1]))
    assert square.shape == (30, 40) and square.sum() == 100
    assert len(json.loads(tensors[OutputName.POLYGONS][0, 0])) == 2  # both parts
    keypoints = output_tensors([WantedOutput(OutputName.KEYPOINTS)], [ImagePrediction(posed(), 10, 20)], LABELS)
    np.testing.assert_allclose(keypoints[OutputName.KEYPOINTS], [[[[1, 2, 0.9], [3, 4, 0.1]]]])


def test_kserve_classify_tensors_and_classification_strings() -> None:
    found = [
        ImagePrediction(Classifications.from_scores(np.array([0.1, 0.7, 0.2])), 5, 5),
        ImagePrediction(Classifications(np.array([2]), np.array([0.25])), 5, 5),
    ]
    top = wanted_output("scores", {"classification": 2}, Task.CLASSIFY, "cls", False)
    plain = [WantedOutput(OutputName.CLASS_IDS), WantedOutput(OutputName.LABELS), WantedOutput(OutputName.SCORES)]
    tensors = output_tensors(plain, found, CLASSES)
    assert tensors[OutputName.CLASS_IDS].tolist() == [[1, 2, 0], [2, -1, -1]]
    assert tensors[OutputName.LABELS][1].tolist() == [b"bird", b"", b""]
    np.testing.assert_allclose(tensors[OutputName.SCORES][1], [0.25, 0, 0])
    strings = output_tensors([top], found, CLASSES)[OutputName.SCORES]
    assert strings.tolist() == [[b"0.700000:1:dog", b"0.200000:2:bird"], [b"0.250000:2:bird", b""]]
    assert top.datatype == "BYTES"
    for bad in (0, "2", True):
        with pytest.raises(InvalidParameterError, match="positive integer"):
            wanted_output("scores", {"classification": bad}, Task.CLASSIFY, "cls", False)
    with pytest.raises(InvalidParameterError, match="applies to the 'scores' output"):
        wanted_output("labels", {"classification": 2}, Task.CLASSIFY, "cls", False)


def test_tfserving_classify_rows_and_columns() -> None:
    found = [Classifications.from_scores(np.array([0.1, 0.7, 0.2])), Classifications(np.array([0]), np.array([0.5]))]
    rows = tfserving.render_classify_response(found, CLASSES, tfserving.PredictFormat.ROW)
    assert rows["predictions"][1] == {"classes": ["cat", "", ""], "scores": [0.5, 0.0, 0.0], "class_ids": [0, -1, -1]}
    columns = tfserving.render_classify_response(found, CLASSES, tfserving.PredictFormat.COLUMNAR)
    assert columns["outputs"]["classes"][0] == ["dog", "bird", "cat"]
    signature = tfserving.render_metadata("cls", 1, Task.CLASSIFY)["metadata"]["signature_def"]["signature_def"]
    assert set(signature["serving_default"]["outputs"]) == {"classes", "scores", "class_ids"}
