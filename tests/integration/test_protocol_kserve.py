"""KServe v2 against a real server, driven by the official ``tritonclient[http]`` client, unchanged."""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np
import pytest
import tritonclient.http as triton
from tests.conftest import encode, photo
from tests.integration.conftest import ServerProcess
from tests.integration.protocol_servers import DEFAULT_MODEL, YOLO_BOXES, YOLO_MODEL, protocol_server
from tritonclient.utils import InferenceServerException

pytestmark = pytest.mark.slow
OUTPUTS = ["boxes", "scores", "class_ids", "labels", "num_detections"]


@pytest.fixture(scope="module")
def server() -> ServerProcess:
    return protocol_server()


@pytest.fixture
def triton_client(server: ServerProcess) -> Iterator[triton.InferenceServerClient]:
    with triton.InferenceServerClient(server.url.removeprefix("http://"), network_timeout=60) as triton_client:
        yield triton_client


def encoded_input(*images: bytes) -> triton.InferInput:
    tensor = np.array(images, dtype=np.object_)
    return triton.InferInput("image", [len(images)], "BYTES").set_data_from_numpy(tensor)


def test_health_and_metadata(triton_client: triton.InferenceServerClient) -> None:
    assert triton_client.is_server_live() and triton_client.is_server_ready()
    metadata = triton_client.get_server_metadata()
    assert metadata["name"] == "visionserve" and "binary_tensor_data" in metadata["extensions"]
    model = triton_client.get_model_metadata(YOLO_MODEL)
    assert model["versions"] == ["3"] and model["platform"] == "onnxruntime"
    assert model["inputs"] == [{"name": "image", "datatype": "BYTES", "shape": [-1]}]
    assert [o["name"] for o in model["outputs"]] == OUTPUTS
    assert triton_client.is_model_ready(YOLO_MODEL) and triton_client.is_model_ready(YOLO_MODEL, "3")
    assert not triton_client.is_model_ready(YOLO_MODEL, "9") and not triton_client.is_model_ready("nope")


def test_binary_infer_of_a_batch_of_encoded_images(triton_client: triton.InferenceServerClient) -> None:
    images = [encode(photo("astronaut")), encode(photo("chelsea")), encode(np.zeros((64, 64, 3), np.uint8), ".png")]
    outputs = [triton.InferRequestedOutput(name, binary_data=True) for name in OUTPUTS]
    result = triton_client.infer(DEFAULT_MODEL, [encoded_input(*images)], outputs=outputs, request_id="batch-1")
    counts = result.as_numpy("num_detections")
    boxes, scores, labels = result.as_numpy("boxes"), result.as_numpy("scores"), result.as_numpy("labels")
    assert counts.shape == (3,) and counts[0] >= 1 and counts[1] >= 1 and counts[2] == 0
    assert boxes.shape == (3, counts.max(), 4) and boxes.dtype == np.float32
    assert labels[0, 0] == b"person" and labels[1, 0] == b"cat"
    assert (scores[0, : counts[0]] >= 0.4).all() and (np.diff(scores[0, : counts[0]]) <= 0).all()
    assert (result.as_numpy("class_ids")[2] == -1).all() and (labels[2] == b"").all()
    assert result.get_response()["id"] == "batch-1"
    assert result.get_response()["model_version"] == "2018_03_29"


def test_json_infer_of_decoded_pixels_gives_the_exact_yolo_boxes(triton_client: triton.InferenceServerClient) -> None:
    rgb = np.zeros((1, 640, 640, 3), np.uint8)
    pixels = triton.InferInput("image", list(rgb.shape), "UINT8").set_data_from_numpy(rgb, binary_data=False)
    outputs = [triton.InferRequestedOutput(name, binary_data=False) for name in OUTPUTS]
    result = triton_client.infer(YOLO_MODEL, [pixels], outputs=outputs)
    response = result.get_response()
    assert all("data" in output for output in response["outputs"])
    np.testing.assert_allclose(result.as_numpy("boxes")[0], [box for box, _, _ in YOLO_BOXES], atol=1e-3)
    np.testing.assert_allclose(result.as_numpy("scores")[0], [s for _, _, s in YOLO_BOXES], atol=1e-5)
    assert result.as_numpy("labels")[0].tolist() == ["person", "car"]  # JSON BYTES read back as text
    assert result.as_numpy("class_ids")[0].tolist() == [0, 1]


def test_all_outputs_come_binary_when_none_is_named(triton_client: triton.InferenceServerClient) -> None:
    image = cv2.imencode(".png", np.zeros((640, 640, 3), np.uint8))[1].tobytes()
    result = triton_client.infer(YOLO_MODEL, [encoded_input(image)], model_version="3")
    assert all("binary_data_size" in o["parameters"] for o in result.get_response()["outputs"])
    assert result.as_numpy("num_detections").tolist() == [2]


def test_threshold_parameters_and_gzip_bodies(triton_client: triton.InferenceServerClient) -> None:
    image = encode(np.zeros((640, 640, 3), np.uint8), ".png")
    result = triton_client.infer(
        YOLO_MODEL,
        [encoded_input(image)],
        parameters={"conf": 0.7},
        request_compression_algorithm="gzip",
        response_compression_algorithm="gzip",
    )
    assert result.as_numpy("labels").tolist() == [[b"person"]]
    result = triton_client.infer(YOLO_MODEL, [encoded_input(image)], parameters={"classes": "car"})
    assert result.as_numpy("labels").tolist() == [[b"car"]]


@pytest.mark.parametrize(
    ("model", "tensor", "status", "message"),
    [
        ("nope", ("image", [1], "BYTES"), "404", "nope"),
        (YOLO_MODEL, ("pixels", [1], "BYTES"), "422", "unexpected inference input 'pixels'"),
        (YOLO_MODEL, ("image", [1], "FP32"), "422", "must be BYTES or UINT8"),
        (YOLO_MODEL, ("image", [1], "BYTES"), "400", "cannot decode image"),
    ],
)
def test_errors_reach_tritonclient_as_exceptions(
    triton_client: triton.InferenceServerClient,
    model: str,
    tensor: tuple[str, list[int], str],
    status: str,
    message: str,
) -> None:
    name, shape, datatype = tensor
    data = np.array([b"not an image"], dtype=np.object_) if datatype == "BYTES" else np.zeros(shape, np.float32)
    infer_input = triton.InferInput(name, shape, datatype).set_data_from_numpy(data)
    with pytest.raises(InferenceServerException) as caught:
        triton_client.infer(model, [infer_input])
    assert caught.value.status() == status and message in caught.value.message()


def test_repository_index_load_and_unload(triton_client: triton.InferenceServerClient) -> None:
    index = {entry["name"]: entry for entry in triton_client.get_model_repository_index()}
    assert index[YOLO_MODEL] == {"name": YOLO_MODEL, "version": "3", "state": "READY", "reason": ""}
    image = encode(np.zeros((640, 640, 3), np.uint8), ".png")
    triton_client.unload_model(YOLO_MODEL)
    try:
        assert not triton_client.is_model_ready(YOLO_MODEL)
        index = {entry["name"]: entry for entry in triton_client.get_model_repository_index()}
        assert index[YOLO_MODEL]["state"] == "UNAVAILABLE"
        with pytest.raises(InferenceServerException) as caught:
            triton_client.infer(YOLO_MODEL, [encoded_input(image)])
        assert caught.value.status() == "503"
    finally:
        triton_client.load_model(YOLO_MODEL)
    assert triton_client.is_model_ready(YOLO_MODEL)
    assert triton_client.infer(YOLO_MODEL, [encoded_input(image)]).as_numpy("num_detections").tolist() == [2]
    with pytest.raises(InferenceServerException, match="nope"):
        triton_client.load_model("nope")
