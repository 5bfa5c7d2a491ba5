"""KServe v2 over gRPC against a real server, driven by the official ``tritonclient[grpc]`` client, unchanged:
health, metadata, inference (BYTES images, UINT8 pixels, raw and typed contents), streaming, the
repository extension, model config and statistics, and the status codes of errors."""

from __future__ import annotations

import queue
from collections.abc import Iterator

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton
import tritonclient.http as triton_http
from google.protobuf import json_format
from tests.conftest import encode, photo
from tests.fuzz_corpus import huge_png
from tests.integration.conftest import ServerProcess
from tests.integration.protocol_servers import (
    CLS_MODEL,
    CRASHY_MODEL,
    DEFAULT_MODEL,
    POSE_MODEL,
    YOLO_BOXES,
    YOLO_MODEL,
    protocol_server,
)
from tests.protocol_task_models import CLASS_LABELS, CLASS_SCORES
from tritonclient.grpc import model_config_pb2 as mc
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

pytestmark = pytest.mark.slow
OUTPUTS = ["boxes", "scores", "class_ids", "labels", "num_detections"]
BLACK = encode(np.zeros((640, 640, 3), np.uint8), ".png")


@pytest.fixture(scope="module")
def server() -> ServerProcess:
    return protocol_server()


@pytest.fixture
def client(server: ServerProcess) -> Iterator[triton.InferenceServerClient]:
    assert server.grpc_target is not None
    with triton.InferenceServerClient(server.grpc_target) as grpc_client:
        yield grpc_client


def encoded_input(*images: bytes) -> triton.InferInput:
    tensor = np.array(images, dtype=np.object_)
    return triton.InferInput("image", [len(images)], "BYTES").set_data_from_numpy(tensor)


def status_of(call: object) -> tuple[str, str]:
    """The status and message of the :class:`InferenceServerException` that ``call()`` raises."""
    with pytest.raises(InferenceServerException) as caught:
        call()  # type: ignore[operator]
    return str(caught.value.status()), str(caught.value.message())


def test_health_metadata_and_readiness(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live() and client.is_server_ready()
    metadata = client.get_server_metadata(as_json=True)
    assert metadata["name"] == "visionserve" and "model_repository" in metadata["extensions"]
    model = client.get_model_metadata(YOLO_MODEL, as_json=True)
    assert model["versions"] == ["3"] and model["platform"] == "onnxruntime"
    assert model["inputs"] == [{"name": "image", "datatype": "BYTES", "shape": ["-1"]}]
    assert [o["name"] for o in model["outputs"]] == OUTPUTS
    assert client.is_model_ready(YOLO_MODEL) and client.is_model_ready(YOLO_MODEL, "3")
    assert not client.is_model_ready(YOLO_MODEL, "9") and not client.is_model_ready("nope")
    assert status_of(lambda: client.get_model_metadata("nope"))[0] == "StatusCode.NOT_FOUND"
    assert status_of(lambda: client.get_model_metadata(YOLO_MODEL, "9"))[0] == "StatusCode.NOT_FOUND"


def test_infer_a_batch_of_encoded_images(client: triton.InferenceServerClient) -> None:
    images = [encode(photo("astronaut")), encode(photo("chelsea")), encode(np.zeros((64, 64, 3), np.uint8), ".png")]
    outputs = [triton.InferRequestedOutput(name) for name in OUTPUTS]
    result = client.infer(DEFAULT_MODEL, [encoded_input(*images)], outputs=outputs, request_id="batch-1")
    counts, labels, scores = result.as_numpy("num_detections"), result.as_numpy("labels"), result.as_numpy("scores")
    assert counts.shape == (3,) and counts[0] >= 1 and counts[1] >= 1 and counts[2] == 0
    assert result.as_numpy("boxes").shape == (3, counts.max(), 4)
    assert labels[0, 0] == b"person" and labels[1, 0] == b"cat" and (labels[2] == b"").all()
    assert (scores[0, : counts[0]] >= 0.4).all() and (np.diff(scores[0, : counts[0]]) <= 0).all()
    response = result.get_response()
    assert (response.id, response.model_name, response.model_version) == ("batch-1", DEFAULT_MODEL, "2018_03_29")


def test_uint8_pixels_give_the_exact_yolo_boxes_and_parameters_filter(client: triton.InferenceServerClient) -> None:
    rgb = np.zeros((1, 640, 640, 3), np.uint8)
    pixels = triton.InferInput("image", list(rgb.shape), "UINT8").set_data_from_numpy(rgb)
    result = client.infer(YOLO_MODEL, [pixels], model_version="3")
    np.testing.assert_allclose(result.as_numpy("boxes")[0], [box for box, _, _ in YOLO_BOXES], atol=1e-3)
    np.testing.assert_allclose(result.as_numpy("scores")[0], [s for _, _, s in YOLO_BOXES], atol=1e-5)
    assert result.as_numpy("labels")[0].tolist() == [b"person", b"car"]
    assert client.infer(YOLO_MODEL, [pixels], parameters={"conf": 0.7}).as_numpy("labels").tolist() == [[b"person"]]
    by_class = client.infer(YOLO_MODEL, [encoded_input(BLACK)], parameters={"classes": "car", "max_det": 5})
    assert by_class.as_numpy("labels").tolist() == [[b"car"]]


def test_typed_contents_instead_of_raw_contents(server: ServerProcess) -> None:
    """Inputs in ``contents`` (what clients other than tritonclient send) mean the same as raw ones."""
    assert server.grpc_target is not None
    with grpc.insecure_channel(server.grpc_target) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        request = service_pb2.ModelInferRequest(model_name=YOLO_MODEL, id="typed")
        tensor = request.inputs.add(name="image", datatype="UINT8", shape=[1, 640, 640, 3])
        tensor.contents.uint_contents.extend(np.zeros(640 * 640 * 3, np.uint32).tolist())
        request.outputs.add(name="num_detections")
        response = stub.ModelInfer(request, timeout=60)
        assert response.id == "typed" and [o.name for o in response.outputs] == ["num_detections"]
        assert np.frombuffer(response.raw_output_contents[0], "<i4").tolist() == [2]
        tensor.contents.uint_contents[0] = 256
        with pytest.raises(grpc.RpcError) as caught:
            stub.ModelInfer(request, timeout=60)
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT and "do not fit UINT8" in caught.value.details()


def test_classification_extension(client: triton.InferenceServerClient) -> None:
    wanted = [triton.InferRequestedOutput("scores", class_count=2)]
    scores = client.infer(CLS_MODEL, [encoded_input(BLACK, BLACK)], outputs=wanted).as_numpy("scores")
    order = np.argsort(CLASS_SCORES)[::-1][:2]
    expected = [f"{CLASS_SCORES[i]:f}:{i}:{CLASS_LABELS[i]}".encode() for i in order]
    assert scores.shape == (2, 2) and scores[0].tolist() == expected and scores[1].tolist() == expected


@pytest.mark.parametrize(
    ("model", "tensor", "code", "message"),
    [
        ("nope", ("image", [1], "BYTES"), "NOT_FOUND", "nope"),
        (YOLO_MODEL, ("pixels", [1], "BYTES"), "INVALID_ARGUMENT", "unexpected inference input 'pixels'"),
        (YOLO_MODEL, ("image", [1], "FP32"), "INVALID_ARGUMENT", "must be BYTES or UINT8"),
        (YOLO_MODEL, ("image", [1], "BYTES"), "INVALID_ARGUMENT", "cannot decode image"),
        (YOLO_MODEL, ("image", [1], "huge"), "RESOURCE_EXHAUSTED", "pixels"),
        (CRASHY_MODEL, ("image", [1], "red"), "INTERNAL", "error id"),
    ],
)
def test_errors_are_grpc_status_codes(
    client: triton.InferenceServerClient, model: str, tensor: tuple[str, list[int], str], code: str, message: str
) -> None:
    name, shape, kind = tensor
    elements = {"huge": huge_png(10_000, 10_000), "red": encode(np.full((32, 32, 3), (0, 0, 255), np.uint8), ".png")}
    if kind == "FP32":
        infer_input = triton.InferInput(name, shape, kind).set_data_from_numpy(np.zeros(shape, np.float32))
    else:
        data = np.array([elements.get(kind, b"not an image")], dtype=np.object_)
        infer_input = triton.InferInput(name, shape, "BYTES").set_data_from_numpy(data)
    status, text = status_of(lambda: client.infer(model, [infer_input]))
    assert status == f"StatusCode.{code}" and message in text, text


def test_unknown_outputs_and_unserved_methods(client: triton.InferenceServerClient) -> None:
    wanted = [triton.InferRequestedOutput("masks")]
    status, text = status_of(lambda: client.infer(YOLO_MODEL, [encoded_input(BLACK)], outputs=wanted))
    assert status == "StatusCode.INVALID_ARGUMENT" and "unexpected inference output 'masks'" in text
    status, text = status_of(client.get_system_shared_memory_status)
    assert status == "StatusCode.UNIMPLEMENTED" and "SystemSharedMemoryStatus" in text


def test_a_message_over_max_body_bytes_is_refused(client: triton.InferenceServerClient) -> None:
    """gRPC itself refuses a message over ``--max-body-bytes`` (20 MiB by default), before anything is parsed."""
    status, _ = status_of(lambda: client.infer(YOLO_MODEL, [encoded_input(bytes(20 * 1024 * 1024 + 1))]))
    assert status == "StatusCode.RESOURCE_EXHAUSTED"
    assert client.infer(YOLO_MODEL, [encoded_input(BLACK)]).as_numpy("num_detections").tolist() == [2]


def test_stream_answers_every_request_with_its_id_and_goes_on_after_an_error(
    client: triton.InferenceServerClient,
) -> None:
    answers: queue.Queue[tuple[object, InferenceServerException | None]] = queue.Queue()
    client.start_stream(callback=lambda result, error: answers.put((result, error)))
    try:
        for index in range(6):
            client.async_stream_infer(YOLO_MODEL, [encoded_input(BLACK)], request_id=f"s{index}")
        client.async_stream_infer("nope", [encoded_input(BLACK)], request_id="bad")
        client.async_stream_infer(YOLO_MODEL, [encoded_input(BLACK)], request_id="after")
        received = [answers.get(timeout=60) for _ in range(8)]
    finally:
        client.stop_stream()
    results = {result.get_response().id: result for result, error in received if error is None}  # type: ignore[attr-defined]
    errors = [error for _, error in received if error is not None]
    assert sorted(results) == sorted([f"s{i}" for i in range(6)] + ["after"])
    assert all(r.as_numpy("num_detections").tolist() == [2] for r in results.values())  # type: ignore[attr-defined]
    assert len(errors) == 1 and "unknown model 'nope'" in errors[0].message()


def test_repository_index_unload_and_load(client: triton.InferenceServerClient) -> None:
    index = {model.name: model for model in client.get_model_repository_index().models}
    assert (index[YOLO_MODEL].version, index[YOLO_MODEL].state, index[YOLO_MODEL].reason) == ("3", "READY", "")
    assert {"name": YOLO_MODEL, "version": "3", "state": "READY"} in client.get_model_repository_index(as_json=True)[
        "models"
    ]
    client.load_model(POSE_MODEL)
    client.unload_model(POSE_MODEL)
    try:
        assert not client.is_model_ready(POSE_MODEL)
        index = {model.name: model for model in client.get_model_repository_index().models}
        assert index[POSE_MODEL].state == "UNAVAILABLE"
        status, _ = status_of(lambda: client.infer(POSE_MODEL, [encoded_input(BLACK)]))
        assert status == "StatusCode.UNAVAILABLE"
    finally:
        client.load_model(POSE_MODEL)
    assert client.is_model_ready(POSE_MODEL)
    assert status_of(lambda: client.load_model("nope"))[0] == "StatusCode.NOT_FOUND"
    assert status_of(lambda: client.load_model(POSE_MODEL, config="{}"))[0] == "StatusCode.INVALID_ARGUMENT"


def test_model_config_is_the_http_document_as_a_message(
    server: ServerProcess, client: triton.InferenceServerClient
) -> None:
    config = client.get_model_config(YOLO_MODEL).config
    assert (config.name, config.platform, config.max_batch_size) == (YOLO_MODEL, "onnxruntime", 8)
    assert [(i.name, i.data_type, list(i.dims)) for i in config.input] == [("image", mc.TYPE_STRING, [1])]
    assert config.dynamic_batching.max_queue_delay_microseconds == 2000
    assert [group.kind for group in config.instance_group] == [mc.ModelInstanceGroup.KIND_CPU]
    with triton_http.InferenceServerClient(server.url.removeprefix("http://")) as http:
        over_http = json_format.ParseDict(http.get_model_config(YOLO_MODEL), mc.ModelConfig())
    assert config == over_http
    assert client.get_model_config(YOLO_MODEL, "3").config == config
    assert status_of(lambda: client.get_model_config("nope"))[0] == "StatusCode.NOT_FOUND"


def test_statistics_count_grpc_requests(client: triton.InferenceServerClient) -> None:
    def stats(model: str) -> service_pb2.ModelStatistics:
        (entry,) = client.get_inference_statistics(model).model_stats
        return entry

    before = stats(YOLO_MODEL)
    client.infer(YOLO_MODEL, [encoded_input(BLACK, BLACK, BLACK)])
    bad = encoded_input(b"not an image")
    status_of(lambda: client.infer(YOLO_MODEL, [bad]))
    after = stats(YOLO_MODEL)
    assert after.inference_count - before.inference_count == 3
    assert after.inference_stats.success.count - before.inference_stats.success.count == 1
    assert after.inference_stats.fail.count - before.inference_stats.fail.count == 1
    assert after.execution_count > before.execution_count and after.version == "3"
    every = {entry.name for entry in client.get_inference_statistics().model_stats}
    assert {YOLO_MODEL, DEFAULT_MODEL, CLS_MODEL} <= every
    assert status_of(lambda: client.get_inference_statistics("nope"))[0] == "StatusCode.NOT_FOUND"
