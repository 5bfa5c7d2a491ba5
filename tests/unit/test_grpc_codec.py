"""KServe v2 over gRPC without a server: the message codec, the status-code table and the vendored stubs."""

from __future__ import annotations

import inspect
from typing import Any

import grpc
import numpy as np
import pytest
from tritonclient.grpc import model_config_pb2 as triton_model_config
from tritonclient.grpc import service_pb2 as triton_service

from visionserve import errors
from visionserve.api.errors import grpc_status_of, status_of
from visionserve.api.kserve_grpc import codec
from visionserve.api.kserve_grpc.guard import PROBES, SERVED, SERVICE
from visionserve.api.kserve_grpc.protos import grpc_service_pb2 as pb
from visionserve.api.kserve_grpc.protos import model_config_pb2
from visionserve.api.kserve_grpc.servicer import InferenceServicer
from visionserve.api.kserve_infer import InferOutcome
from visionserve.api.wire.kserve_outputs import OutputName, WantedOutput
from visionserve.api.wire.kserve_tensors import Datatype, serialize_bytes
from visionserve.errors import (
    AuthenticationError,
    ImageDecodeError,
    ImageTooLargeError,
    InferenceError,
    InvalidParameterError,
    ModelNotFoundError,
    ModelNotReadyError,
    ModelSpecError,
    OverloadedError,
    RequestTimeoutError,
    ShuttingDownError,
    VisionServeError,
    WrongTaskError,
)


def request(*inputs: tuple[str, str, list[int]], raw: list[bytes] | None = None) -> pb.ModelInferRequest:
    message = pb.ModelInferRequest(model_name="m", raw_input_contents=raw or [])
    for name, datatype, shape in inputs:
        message.inputs.add(name=name, datatype=datatype, shape=shape)
    return message


def test_raw_bytes_and_parameters_parse_as_over_http() -> None:
    message = request(("image", "BYTES", [2]), raw=[serialize_bytes([b"a", b"bc"])])
    message.id = "r1"
    message.parameters["conf"].double_param = 0.5
    message.parameters["max_det"].int64_param = 3
    message.parameters["classes"].string_param = "cat,dog"
    message.parameters["binary_data_output"].bool_param = True
    message.outputs.add(name="scores").parameters["classification"].int64_param = 2
    parsed = codec.parse_infer(message)
    assert parsed.tensors["image"].tolist() == [b"a", b"bc"]
    assert parsed.request.id == "r1" and parsed.request.inputs[0].datatype is Datatype.BYTES
    assert parsed.request.parameters == {"conf": 0.5, "max_det": 3, "classes": "cat,dog", "binary_data_output": True}
    assert parsed.request.outputs is not None and parsed.request.outputs[0].parameters == {"classification": 2}


def test_typed_contents_parse_into_their_dtype() -> None:
    message = request(("image", "UINT8", [1, 2, 2, 3]), ("flags", "BOOL", [2]), ("names", "BYTES", [1]))
    message.inputs[0].contents.uint_contents.extend(range(12))
    message.inputs[1].contents.bool_contents.extend([True, False])
    message.inputs[2].contents.bytes_contents.append(b"\xff")
    tensors = codec.parse_infer(message).tensors
    assert tensors["image"].dtype == np.uint8 and tensors["image"].reshape(-1).tolist() == list(range(12))
    assert tensors["flags"].tolist() == [True, False] and tensors["names"].tolist() == [b"\xff"]


def fp16_in_contents() -> pb.ModelInferRequest:
    return request(("image", "FP16", [1]))


def contents(datatype: str, values: list[int], field: str, shape: list[int]) -> pb.ModelInferRequest:
    message = request(("image", datatype, shape))
    getattr(message.inputs[0].contents, field).extend(values)
    return message


def shared_memory() -> pb.ModelInferRequest:
    message = request(("image", "BYTES", [1]), raw=[serialize_bytes([b"x"])])
    message.inputs[0].parameters["shared_memory_region"].string_param = "region"
    return message


def empty_parameter() -> pb.ModelInferRequest:
    message = request(("image", "BYTES", [1]), raw=[serialize_bytes([b"x"])])
    message.parameters["conf"].CopyFrom(pb.InferParameter())
    return message


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (pb.ModelInferRequest(model_name="m"), "no inputs"),
        (request(("image", "BYTES", [1]), ("x", "BYTES", [1]), raw=[b""]), "1 buffers for 2 inputs"),
        (
            request(("image", "BYTES", [1]), ("image", "BYTES", [1]), raw=[serialize_bytes([b"x"])] * 2),
            "more than once",
        ),
        (request(("image", "TEXT", [1]), raw=[b""]), "unknown datatype 'TEXT'"),
        (request(("image", "BYTES", [2]), raw=[serialize_bytes([b"x"])]), "expected 2 BYTES elements"),
        (request(("image", "UINT8", [1, 4, 4, 3]), raw=[bytes(10)]), "needs 48 bytes"),
        (request(("image", "UINT8", [-1, 4]), raw=[b""]), "negative dimension"),
        (fp16_in_contents(), "must be sent in raw_input_contents"),
        (contents("UINT8", [1, 2], "uint_contents", [3]), "needs 3 elements, got 2"),
        (contents("UINT8", [256], "uint_contents", [1]), "do not fit UINT8"),
        (contents("INT8", [-129], "int_contents", [1]), "do not fit INT8"),
        (shared_memory(), "shared memory is not supported"),
        (empty_parameter(), "request parameter 'conf' has no value"),
    ],
)
def test_malformed_requests_raise_invalid_parameter(message: pb.ModelInferRequest, error: str) -> None:
    with pytest.raises(InvalidParameterError, match=error):
        codec.parse_infer(message)


def test_outputs_go_back_as_raw_contents() -> None:
    tensors: dict[OutputName, Any] = {
        OutputName.BOXES: np.arange(8, dtype=np.float32).reshape(1, 2, 4),
        OutputName.LABELS: np.array([[b"cat", b""]], dtype=np.object_),
    }
    wanted = [WantedOutput(OutputName.LABELS), WantedOutput(OutputName.BOXES)]
    response = codec.render_infer(InferOutcome("m", "2", wanted, tensors), "id-7")
    assert (response.model_name, response.model_version, response.id) == ("m", "2", "id-7")
    assert [(o.name, o.datatype, list(o.shape)) for o in response.outputs] == [
        ("labels", "BYTES", [1, 2]),
        ("boxes", "FP32", [1, 2, 4]),
    ]
    assert response.raw_output_contents[0] == serialize_bytes([b"cat", b""])
    assert np.frombuffer(response.raw_output_contents[1], "<f4").tolist() == list(range(8))


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ImageDecodeError("x"), grpc.StatusCode.INVALID_ARGUMENT),
        (InvalidParameterError("x"), grpc.StatusCode.INVALID_ARGUMENT),
        (WrongTaskError("x"), grpc.StatusCode.INVALID_ARGUMENT),
        (ImageTooLargeError("x"), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (OverloadedError("x"), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (RequestTimeoutError("x"), grpc.StatusCode.DEADLINE_EXCEEDED),
        (AuthenticationError("x"), grpc.StatusCode.UNAUTHENTICATED),
        (ModelNotFoundError("x"), grpc.StatusCode.NOT_FOUND),
        (ModelNotReadyError("x"), grpc.StatusCode.UNAVAILABLE),
        (ShuttingDownError("x"), grpc.StatusCode.UNAVAILABLE),
        (InferenceError("x"), grpc.StatusCode.INTERNAL),
        (ModelSpecError("x"), grpc.StatusCode.INTERNAL),
    ],
)
def test_the_error_tree_maps_to_grpc_codes(error: VisionServeError, code: grpc.StatusCode) -> None:
    assert grpc_status_of(error) is code


@pytest.mark.parametrize(
    "cls", [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, VisionServeError)]
)
def test_grpc_and_http_tables_agree_on_whose_fault_it_is(cls: type[VisionServeError]) -> None:
    """A client error over HTTP (4xx) is one over gRPC; 503 is UNAVAILABLE; other 5xx are INTERNAL."""
    http, _ = status_of(cls("x"))
    code = grpc_status_of(cls("x"))
    if http == 503:
        assert code is grpc.StatusCode.UNAVAILABLE
    elif http >= 500:
        assert code is grpc.StatusCode.INTERNAL
    else:
        assert code not in {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE}


def test_the_stubs_are_tritons_protocol_byte_for_byte() -> None:
    """Same descriptors as tritonclient's stubs: the wire protocol is Triton's, and both import together."""
    assert pb.DESCRIPTOR.serialized_pb == triton_service.DESCRIPTOR.serialized_pb
    assert model_config_pb2.DESCRIPTOR.serialized_pb == triton_model_config.DESCRIPTOR.serialized_pb


def test_every_served_method_is_a_coroutine_of_the_servicer() -> None:
    methods = {method.name for method in pb.DESCRIPTOR.services_by_name[SERVICE.split(".")[1]].methods}
    assert methods >= SERVED and PROBES <= SERVED
    for name in SERVED:
        own = InferenceServicer.__dict__.get(name)
        assert own is not None and (inspect.iscoroutinefunction(own) or inspect.isasyncgenfunction(own)), name
