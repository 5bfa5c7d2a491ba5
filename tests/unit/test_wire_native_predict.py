"""The native codec of /v1/predict and /v1/detect: options, task checks, answers of every task,
model documents; the mask decoding that the client uses; the client's predict requests."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest
from pycocotools import mask as coco_mask

from visionserve.api.wire import native
from visionserve.api.wire.predictions import PredictResponse
from visionserve.client import Client, MaskFormat
from visionserve.core.classifications import Classifications
from visionserve.core.detections import Detections
from visionserve.core.masks import InstanceMasks, MaskPatch
from visionserve.core.prediction import Prediction
from visionserve.errors import InvalidParameterError, ServerError, WrongTaskError
from visionserve.models.labels import Labels
from visionserve.models.spec import ModelSpec, Task
from visionserve.render.annotators import RenderMode
from visionserve.render.mask_decoding import instance_masks, patch_from_polygons, patch_from_rle
from visionserve.render.mask_encoding import polygons, rle
from visionserve.serving.results import ImageResult, ModelState, ModelStatus, Timings

LABELS = Labels({0: "dent", 1: "scratch"}, keypoints=("tip", "tail"))


def result(prediction: Prediction, width: int = 60, height: int = 50) -> ImageResult:
    timings = Timings(0.1, 0.2, 0.3, 4.0, 0.5, 5.1)
    return ImageResult("m", "2", width, height, prediction, timings, np.zeros((height, width, 3), np.uint8), 1)


def disc(height: int, width: int, cx: float, cy: float, r: float) -> np.ndarray:
    ys, xs = np.mgrid[0:height, 0:width]
    return (xs + 0.5 - cx) ** 2 + (ys + 0.5 - cy) ** 2 <= r * r


def segmented() -> tuple[Detections, np.ndarray]:
    dense = np.stack([disc(50, 60, 15, 15, 6), disc(50, 60, 40, 30, 9)])
    masks = InstanceMasks.from_dense(dense)
    return Detections(masks.regions, [0.3, 0.8], [0, 1], masks=masks), dense


def test_params_defaults_and_errors() -> None:
    params = native.parse_params({}, {})
    assert (params.mask_format, params.render, params.top_k, params.format) == ("polygon", "boxes_masks", None, None)
    chosen = native.parse_params({"mask_format": ["rle"], "top_k": ["3"]}, {"render": ["mask_only"]})
    assert (chosen.mask_format, chosen.top_k, chosen.render) == ("rle", 3, RenderMode.MASK_ONLY)
    assert native.parse_params({"mask_format": [""], "conf": [" "]}, {}).mask_format == "polygon"
    for bad, field in (({"mask_format": ["png"]}, "mask_format"), ({"top_k": ["0"]}, "top_k"),
                       ({"render": ["x"]}, "render"), ({"tok_k": [""]}, "tok_k")):  # fmt: skip
        with pytest.raises(InvalidParameterError, match=field):
            native.parse_params(bad, {})


def test_options_carry_top_k_and_classes() -> None:
    options = native.predict_options(native.parse_params({"top_k": ["2"], "classes": ["scratch"]}, {}), LABELS)
    assert (options.top_k, options.classes) == (2, frozenset({1}))


def test_box_routes_refuse_classifiers_only() -> None:
    common = {"backend": "plugin", "plugin": "x:Y"}
    native.check_gives_boxes(ModelSpec(name="seg", task=Task.SEGMENT, **common))
    with pytest.raises(WrongTaskError, match="/v1/models/cls/predict"):
        native.check_gives_boxes(ModelSpec(name="cls", task=Task.CLASSIFY, **common))


def test_an_image_answers_for_one_image_only() -> None:
    params = native.parse_params({"format": ["image"]}, {})
    assert native.wants_image(params, None)
    with pytest.raises(InvalidParameterError, match="exactly one image"):
        native.wants_image(params, None, count=2)
    assert not native.wants_image(native.parse_params({}, {}), "application/json", count=2)


@pytest.mark.parametrize("mask_format", ["polygon", "rle", "none"])
def test_segment_answer_in_each_mask_format(mask_format: str) -> None:
    detections, dense = segmented()
    params = native.parse_params({"mask_format": [mask_format]}, {})
    answer = native.render_predictions([result(detections)], LABELS, Task.SEGMENT, params.mask_format)
    PredictResponse.model_validate(answer)
    assert (answer["task"], answer["width"], answer["height"]) == ("segment", 60, 50)
    top = answer["detections"][0]
    assert (top["label"], top["score"]) == ("scratch", 0.8)  # sorted by score, labelled by rows.py
    if mask_format == "polygon":
        assert set(top) == {"label", "class_id", "score", "box", "polygons"}
        back = patch_from_polygons(top["polygons"]).dense(50, 60)
        assert (back == dense[1]).all()  # a convex disc has no hole: exact
    elif mask_format == "rle":
        assert (coco_mask.decode(top["rle"]).astype(bool) == dense[1]).all()
    else:
        assert set(top) == {"label", "class_id", "score", "box"}
    assert native.encodes_masks([result(detections)], params) is (mask_format != "none")


def test_pose_and_classify_answers_and_several_images() -> None:
    keypoints = np.array([[[10.123, 12.0, 0.91234], [20.0, 22.5, 0.4]]], np.float32)
    pose = Detections(np.array([[5, 5, 30, 30]]), [0.9], [0], keypoints=keypoints)
    answer = native.render_predictions([result(pose)], LABELS, Task.POSE)
    assert answer["detections"][0]["keypoints"] == [
        {"name": "tip", "x": 10.12, "y": 12.0, "score": 0.9123},
        {"name": "tail", "x": 20.0, "y": 22.5, "score": 0.4},
    ]
    classes = Classifications.from_scores(np.array([0.2, 0.7], np.float32))
    both = native.render_predictions([result(classes), result(classes, 8, 9)], LABELS, Task.CLASSIFY)
    PredictResponse.model_validate(both)
    assert (both["task"], both["model"], both["version"]) == ("classify", "m", "2")
    assert both["results"][1]["width"] == 8 and "detections" not in both["results"][1]
    assert both["results"][0]["classes"] == [
        {"label": "scratch", "class_id": 1, "score": 0.7},
        {"label": "dent", "class_id": 0, "score": 0.2},
    ]
    assert not native.encodes_masks([result(classes)], native.parse_params({}, {}))


def test_model_document_names_keypoints_of_pose_models() -> None:
    common = {"backend": "plugin", "plugin": "x:Y"}
    pose = ModelSpec(name="p", task=Task.POSE, **common)  # no names: COCO's 17
    document = native.model_document(ModelStatus("p", ModelState.LOADED, pose, LABELS, 1, 0))
    assert document["task"] == "pose" and len(document["keypoints"]["names"]) == 17
    assert document["keypoints"]["names"][0] == "nose" and [15, 13] in document["keypoints"]["skeleton"]
    cls = ModelSpec(name="c", task=Task.CLASSIFY, thresholds={"top_k": 7}, **common)
    document = native.model_document(ModelStatus("c", ModelState.LOADED, cls, LABELS, 1, 0))
    assert (document["keypoints"], document["thresholds"]["top_k"]) == (None, 7)
    assert document["devices"] == ["cpu"]


def test_model_documents_say_where_the_instances_run() -> None:
    common = {"backend": "plugin", "plugin": "x:Y"}
    gpu = ModelSpec(name="g", runtime={"providers": ["CUDAExecutionProvider"], "device_id": 1}, **common)
    assert native.model_document(ModelStatus("g", ModelState.LOADED, gpu, LABELS, 1, 0))["devices"] == ["cuda:1"]
    spread = ModelSpec(name="s", devices=["cuda:0", "cuda:1"], **common)
    assert native.model_document(ModelStatus("s", ModelState.LOADED, spread, LABELS, 2, 0))["devices"] == [
        "cuda:0",
        "cuda:1",
    ]


@pytest.mark.parametrize("seed", range(20))
def test_mask_decoding_inverts_the_encodings(seed: int) -> None:
    rng = np.random.default_rng(seed)
    height, width = (int(v) for v in rng.integers(8, 50, 2))
    mask = rng.random((height, width)) < 0.5
    patch = MaskPatch(0, 0, mask)
    from_rle = patch_from_rle(rle(patch, height, width))
    assert (from_rle.dense(height, width) == mask).all()
    # Polygons keep outer contours: every pixel of the mask is inside them again.
    from_polygons = patch_from_polygons(polygons(patch)).dense(height, width)
    assert from_polygons[mask].all()


def test_mask_decoding_of_empty_and_bad_masks() -> None:
    assert not patch_from_polygons([]).mask.any()
    assert not patch_from_rle({"size": [3, 4], "counts": [12]}).mask.any()
    assert patch_from_rle({"size": [3, 4], "counts": [1, 2, 9]}).dense(3, 4)[1:3, 0].all()
    with pytest.raises(ValueError, match="polygon"):
        patch_from_polygons([[[1, 2, 3]]])
    with pytest.raises(ValueError, match="COCO RLE"):
        patch_from_rle({"counts": "abc"})
    masks = instance_masks([MaskPatch(3, 4, np.ones((2, 5), bool))])
    assert masks.regions.tolist() == [[3, 4, 8, 6]]


def test_client_predict_sends_options_and_reads_every_task(tmp_path: Path) -> None:
    detections, dense = segmented()
    seen: list[httpx.Request] = []
    answers = {
        "seg": native.render_predictions([result(detections)], LABELS, Task.SEGMENT, native.MaskFormat.RLE),
        "cls": native.render_predictions(
            [result(Classifications.from_scores(np.array([0.2, 0.7])))], LABELS, Task.CLASSIFY
        ),
    }

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=answers[request.url.path.split("/")[3]])

    with Client("http://vs.test", transport=httpx.MockTransport(handler)) as client:
        seg = client.predict(b"jpeg", "seg", mask_format=MaskFormat.RLE, conf=0.2)
        cls = client.predict(b"jpeg", "cls", top_k=2)
        with pytest.raises(InvalidParameterError, match="mask_format"):
            client.predict(b"jpeg", "seg", mask_format="svg")
    assert [r.url.path for r in seen] == ["/v1/models/seg/predict", "/v1/models/cls/predict"]
    assert b'name="mask_format"\r\n\r\nrle' in seen[0].content and b'name="conf"\r\n\r\n0.2' in seen[0].content
    assert b'name="top_k"\r\n\r\n2' in seen[1].content
    assert seg.labels == ("scratch", "dent") and seg.task == "segment"
    assert (seg.detections.mask_patch(0, 50, 60).dense(50, 60) == dense[1]).all()
    assert cls.classes.class_id.tolist() == [1, 0] and cls.labels == ("scratch", "dent")
    with pytest.raises(WrongTaskError):
        _ = seg.classes


def test_client_refuses_unreadable_predictions() -> None:
    answer = {"model": "m", "version": "1", "task": "segment", "width": 4, "height": 4,
              "detections": [{"label": "a", "class_id": 0, "score": 1, "box": {"x1": 0, "y1": 0, "x2": 1, "y2": 1},
                              "polygons": [[[1, 2, 3]]]}]}  # fmt: skip

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=json.dumps(answer))

    with (
        Client("http://vs.test", transport=httpx.MockTransport(handler)) as client,
        pytest.raises(ServerError, match="unreadable prediction"),
    ):
        client.predict(b"jpeg")
