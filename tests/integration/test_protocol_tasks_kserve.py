"""KServe v2 outputs of segment, pose and classify models against a real server, read by the official
``tritonclient[http]`` client, the classification extension included."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pytest
import tritonclient.http as triton
from pycocotools import mask as coco_mask
from tests.conftest import encode
from tests.integration.protocol_servers import CLS_MODEL, POSE_MODEL, SEG_MODEL, YOLO_MODEL, protocol_server
from tests.protocol_task_models import (
    CLASS_LABELS,
    CLASS_SCORES,
    KEYPOINT_NAMES,
    POSE_BOX,
    POSE_KEYPOINTS,
    SEG_BOXES,
    SEG_MASKS,
)
from tritonclient.utils import InferenceServerException

pytestmark = pytest.mark.slow
IMAGE = encode(np.zeros((64, 64, 3), np.uint8), ".png")


@pytest.fixture
def client() -> Iterator[triton.InferenceServerClient]:
    url = protocol_server().url.removeprefix("http://")
    with triton.InferenceServerClient(url, network_timeout=60) as client:
        yield client


def image_input(count: int = 1) -> triton.InferInput:
    tensor = np.array([IMAGE] * count, dtype=np.object_)
    return triton.InferInput("image", [count], "BYTES").set_data_from_numpy(tensor)


def text(element: bytes | str) -> str:
    """A BYTES element as tritonclient gives it: bytes from binary data, str from JSON."""
    return element.decode() if isinstance(element, bytes) else element


def outputs(*names: str, binary: bool = True, **classification: int) -> list[triton.InferRequestedOutput]:
    return [
        triton.InferRequestedOutput(name, binary_data=binary, class_count=classification.get(name, 0)) for name in names
    ]


def test_metadata_lists_each_tasks_outputs(client: triton.InferenceServerClient) -> None:
    assert "classification" in client.get_server_metadata()["extensions"]
    names = {
        model: [o["name"] for o in client.get_model_metadata(model)["outputs"]]
        for model in (SEG_MODEL, POSE_MODEL, CLS_MODEL)
    }
    assert names[SEG_MODEL][-2:] == ["masks", "polygons"]
    assert names[POSE_MODEL][-1] == "keypoints"
    assert names[CLS_MODEL] == ["scores", "class_ids", "labels"]


@pytest.mark.parametrize("binary", [True, False])
def test_masks_as_coco_rle_and_polygons(client: triton.InferenceServerClient, binary: bool) -> None:
    wanted = outputs("boxes", "labels", "masks", "polygons", binary=binary)
    result = client.infer(SEG_MODEL, [image_input(2)], outputs=wanted)
    masks, polygons = result.as_numpy("masks"), result.as_numpy("polygons")
    assert masks.shape == polygons.shape == (2, 2) and [text(t) for t in result.as_numpy("labels")[1]] == [
        "person",
        "car",
    ]
    np.testing.assert_allclose(result.as_numpy("boxes")[0], [box for box, _, _ in SEG_BOXES])
    for encoded, outline, (x1, y1, x2, y2) in zip(masks[0], polygons[0], SEG_MASKS, strict=True):
        decoded = coco_mask.decode(json.loads(encoded)).astype(bool)
        expected = np.zeros((64, 64), bool)
        expected[y1:y2, x1:x2] = True
        assert (decoded != expected).sum() <= 4  # bilinear upsampling rounds off the corner pixels
        (polygon,) = json.loads(outline)
        assert np.min(polygon, axis=0).tolist() == [x1 + 0.5, y1 + 0.5]


def test_keypoints_tensor(client: triton.InferenceServerClient) -> None:
    result = client.infer(POSE_MODEL, [image_input()], outputs=outputs("keypoints", "boxes", "num_detections"))
    keypoints = result.as_numpy("keypoints")
    assert keypoints.shape == (1, 1, len(KEYPOINT_NAMES), 3) and keypoints.dtype == np.float32
    np.testing.assert_allclose(keypoints[0, 0], POSE_KEYPOINTS, atol=1e-5)
    np.testing.assert_allclose(result.as_numpy("boxes")[0, 0], POSE_BOX[0])
    assert result.as_numpy("num_detections").tolist() == [1]


def test_classify_outputs_and_the_classification_extension(client: triton.InferenceServerClient) -> None:
    plain = client.infer(CLS_MODEL, [image_input(2)])
    order = np.argsort(CLASS_SCORES)[::-1]
    np.testing.assert_allclose(plain.as_numpy("scores")[1], np.array(CLASS_SCORES)[order], atol=1e-6)
    assert plain.as_numpy("labels")[0].tolist() == [CLASS_LABELS[i].encode() for i in order]
    assert plain.as_numpy("class_ids")[0].tolist() == order.tolist()
    for binary in (True, False):
        top = client.infer(CLS_MODEL, [image_input(2)], outputs=outputs("scores", binary=binary, scores=2))
        assert [[text(t) for t in row] for row in top.as_numpy("scores")] == [["0.700000:1:dog", "0.200000:2:bird"]] * 2
    every = client.infer(CLS_MODEL, [image_input()], outputs=outputs("scores", scores=10))
    assert every.as_numpy("scores").shape == (1, 3)


def test_classification_of_a_box_model_or_an_unknown_output_is_refused(client: triton.InferenceServerClient) -> None:
    with pytest.raises(InferenceServerException, match="classification extension applies"):
        client.infer(YOLO_MODEL, [image_input()], outputs=outputs("scores", scores=2))
    with pytest.raises(InferenceServerException, match="unexpected inference output 'masks'"):
        client.infer(POSE_MODEL, [image_input()], outputs=outputs("masks"))
