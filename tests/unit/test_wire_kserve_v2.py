"""The KServe v2 codec on hand-built bodies, and on bodies that tritonclient itself builds and reads."""

from __future__ import annotations

import gzip
import json
import struct
import zlib
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton

from visionserve.api.wire.kserve_outputs import ImagePrediction, OutputName, all_outputs, output_tensors
from visionserve.api.wire.kserve_tensors import (
    Datatype,
    deserialize_bytes,
    serialize_bytes,
    tensor_from_binary,
    tensor_from_json,
    tensor_to_binary,
    tensor_to_json,
)
from visionserve.api.wire.kserve_v2 import (
    InferenceRequest,
    decode_body,
    image_inputs,
    parse_infer_request,
    render_infer_response,
    render_model_metadata,
    request_options,
    requested_outputs,
)
from visionserve.core.detections import Detections
from visionserve.errors import ImageTooLargeError, InvalidParameterError
from visionserve.models.labels import Labels
from visionserve.models.spec import Task

LABELS = Labels({1: "person", 17: "cat"})


def body(header: dict[str, Any], *chunks: bytes) -> tuple[bytes, int | None]:
    text = json.dumps(header).encode()
    return text + b"".join(chunks), (len(text) if chunks else None)


def two_detections() -> Detections:
    return Detections(
        np.array([[10, 20, 30, 40], [1, 2, 3, 4]], np.float32),
        np.array([0.5, 0.9], np.float32),
        np.array([17, 1], np.int32),
    )


# --- BYTES serialization -------------------------------------------------------------------------


def test_bytes_elements_are_length_prefixed_little_endian() -> None:
    raw = serialize_bytes([b"ab", b"", b"\x00\xff"])
    assert raw == b"\x02\x00\x00\x00ab" + b"\x00\x00\x00\x00" + b"\x02\x00\x00\x00\x00\xff"
    assert deserialize_bytes("x", raw, 3) == [b"ab", b"", b"\x00\xff"]


@pytest.mark.parametrize(
    ("raw", "count", "message"),
    [
        (b"\x05\x00\x00\x00abc", 1, "claims 5 bytes"),
        (b"\x01\x00", 1, "truncated"),
        (b"\x01\x00\x00\x00a", 2, "expected 2 BYTES elements, got 1"),
    ],
)
def test_malformed_bytes_tensors_are_rejected(raw: bytes, count: int, message: str) -> None:
    with pytest.raises(InvalidParameterError, match=message):
        deserialize_bytes("image", raw, count)


def test_our_bytes_layout_is_tritonclients() -> None:
    elements = np.array([b"jpeg-1", b"png"], dtype=np.object_)
    theirs = triton.InferInput("image", [2], "BYTES").set_data_from_numpy(elements)._get_binary_data()
    assert tensor_to_binary(elements, Datatype.BYTES) == theirs


# --- tensors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("datatype", "values"),
    [
        (Datatype.FP32, np.array([[1.5, -2.0], [3.25, 0.0]], np.float32)),
        (Datatype.INT32, np.array([[-1, 7], [2**30, 0]], np.int32)),
        (Datatype.UINT8, np.array([[0, 255], [1, 2]], np.uint8)),
        (Datatype.BOOL, np.array([[True, False], [False, True]])),
        (Datatype.FP16, np.array([[0.5, 1.0], [2.0, -4.0]], np.float16)),
    ],
)
def test_fixed_size_tensors_round_trip_in_binary_and_json(datatype: Datatype, values: np.ndarray) -> None:
    raw = tensor_to_binary(values, datatype)
    assert raw == values.astype(values.dtype.newbyteorder("<")).tobytes()
    np.testing.assert_array_equal(tensor_from_binary("t", raw, datatype, [2, 2]), values)
    np.testing.assert_array_equal(tensor_from_json("t", tensor_to_json(values, datatype), datatype, [2, 2]), values)


def test_json_data_may_be_nested_or_flat() -> None:
    nested = tensor_from_json("t", [[1, 2, 3], [4, 5, 6]], Datatype.INT64, [2, 3])
    flat = tensor_from_json("t", [1, 2, 3, 4, 5, 6], Datatype.INT64, [2, 3])
    np.testing.assert_array_equal(nested, flat)
    assert nested.shape == (2, 3)


@pytest.mark.parametrize(
    ("data", "datatype", "shape", "message"),
    [
        ([1, 2, 3], Datatype.INT32, [2, 2], "needs 4 elements, got 3"),
        ([300], Datatype.UINT8, [1], "do not fit UINT8"),
        (["a"], Datatype.FP32, [1], "must be numbers"),
        ([1], Datatype.BYTES, [1], "must be strings"),
        ([1], Datatype.INT32, [-1], "negative dimension"),
    ],
)
def test_bad_json_tensors_are_rejected(data: Any, datatype: Datatype, shape: list[int], message: str) -> None:
    with pytest.raises(InvalidParameterError, match=message):
        tensor_from_json("t", data, datatype, shape)


def test_binary_size_must_match_shape() -> None:
    with pytest.raises(InvalidParameterError, match="needs 8 bytes, got 7"):
        tensor_from_binary("t", b"\x00" * 7, Datatype.FP32, [2])


def test_json_bytes_can_be_base64_with_content_type() -> None:
    tensor = tensor_from_json("image", ["/9j/"], Datatype.BYTES, [1], "base64")
    assert tensor[0] == b"\xff\xd8\xff"
    with pytest.raises(InvalidParameterError, match="not valid base64"):
        tensor_from_json("image", ["%%%"], Datatype.BYTES, [1], "base64")


# --- requests -------------------------------------------------------------------------------------


def test_binary_inputs_follow_the_json_header_in_order() -> None:
    images = serialize_bytes([b"first", b"second"])
    other = np.arange(3, dtype=np.float32).tobytes()
    header = {
        "inputs": [
            {"name": "image", "shape": [2], "datatype": "BYTES", "parameters": {"binary_data_size": len(images)}},
            {"name": "extra", "shape": [3], "datatype": "FP32", "parameters": {"binary_data_size": 12}},
        ]
    }
    parsed = parse_infer_request(*body(header, images, other))
    assert list(parsed.tensors["image"]) == [b"first", b"second"]
    np.testing.assert_array_equal(parsed.tensors["extra"], [0, 1, 2])


@pytest.mark.parametrize(
    ("header", "chunks", "length", "message"),
    [
        ({"inputs": []}, (), None, "inputs"),
        ({"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES"}]}, (), None, "neither data"),
        ({"inputs": [{"name": "image", "shape": [1], "datatype": "NOPE", "data": ["x"]}]}, (), None, "datatype"),
        (
            {"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 9}}]},
            (b"\x01\x00\x00\x00a",),
            None,
            "binary data ends before",
        ),
        (
            {"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": ["a"]}]},
            (b"junk",),
            None,
            "4 bytes of binary data follow",
        ),
        (
            {"inputs": [{"name": "i", "shape": [1], "datatype": "BYTES", "parameters": {"shared_memory_region": "r"}}]},
            (),
            None,
            "shared memory",
        ),
        (
            {"inputs": [{"name": "i", "shape": [1], "datatype": "INT8", "data": [1]}] * 2},
            (),
            None,
            "more than once",
        ),
    ],
)
def test_bad_requests_are_rejected(
    header: dict[str, Any], chunks: tuple[bytes, ...], length: Any, message: str
) -> None:
    raw, header_length = body(header, *chunks)
    with pytest.raises(InvalidParameterError, match=message):
        parse_infer_request(raw, header_length)


def test_invalid_json_and_bad_header_length_are_rejected() -> None:
    with pytest.raises(InvalidParameterError, match="failed to parse the request JSON"):
        parse_infer_request(b"{not json")
    with pytest.raises(InvalidParameterError, match="Inference-Header-Content-Length is 99"):
        parse_infer_request(b"{}", 99)


def test_tritonclient_binary_request_parses_to_its_images() -> None:
    infer_input = triton.InferInput("image", [2], "BYTES")
    infer_input.set_data_from_numpy(np.array([b"\xff\xd8jpeg", b"\x89PNG"], dtype=np.object_))
    outputs = [triton.InferRequestedOutput("boxes", binary_data=True)]
    raw, length = triton.InferenceServerClient.generate_request_body(
        [infer_input], outputs=outputs, parameters={"conf": 0.25, "classes": "person,cat", "max_det": 5}
    )
    parsed = parse_infer_request(raw, length)
    assert image_inputs(parsed) == [b"\xff\xd8jpeg", b"\x89PNG"]
    options = request_options(parsed.request)
    assert (options.conf, options.iou, options.max_det, options.classes) == (0.25, None, 5, ("person", "cat"))


def test_uint8_input_is_rgb_unless_told_bgr() -> None:
    pixels = np.zeros((1, 2, 3, 3), np.uint8)
    pixels[..., 0] = 200  # red in RGB
    infer_input = triton.InferInput("image", list(pixels.shape), "UINT8").set_data_from_numpy(pixels, binary_data=False)
    raw, length = triton.InferenceServerClient.generate_request_body([infer_input])
    (image,) = image_inputs(parse_infer_request(raw, length))
    assert isinstance(image, np.ndarray) and image.shape == (2, 3, 3)
    assert image[0, 0].tolist() == [0, 0, 200]
    raw, length = triton.InferenceServerClient.generate_request_body([infer_input], parameters={"color_order": "BGR"})
    (image,) = image_inputs(parse_infer_request(raw, length))
    assert isinstance(image, np.ndarray) and image[0, 0].tolist() == [200, 0, 0]


@pytest.mark.parametrize(
    ("name", "datatype", "shape", "data", "message"),
    [
        ("pixels", "BYTES", [1], ["x"], "unexpected inference input 'pixels'"),
        ("image", "FP32", [1], [1.0], "must be BYTES or UINT8"),
        ("image", "UINT8", [2, 2], [1, 2, 3, 4], r"\[B, H, W, 3\]"),
        ("image", "UINT8", [1, 1, 1, 4], [1, 2, 3, 4], r"\(height, width, 3\)"),
        ("image", "BYTES", [0], [], "B >= 1"),
    ],
)
def test_image_input_must_be_named_and_shaped(
    name: str, datatype: str, shape: list[int], data: Any, message: str
) -> None:
    raw, _ = body({"inputs": [{"name": name, "shape": shape, "datatype": datatype, "data": data}]})
    with pytest.raises(InvalidParameterError, match=message):
        image_inputs(parse_infer_request(raw))


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"conf": "high"}, "'conf' must be a number"),
        ({"max_det": 2.5}, "must be an integer"),
        ({"iou": True}, "number"),
    ],
)
def test_bad_threshold_parameters_are_rejected(parameters: dict[str, Any], message: str) -> None:
    raw, _ = body(
        {"parameters": parameters, "inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": ["x"]}]}
    )
    with pytest.raises(InvalidParameterError, match=message):
        request_options(parse_infer_request(raw).request)


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compressed_bodies_are_inflated_within_a_limit(encoding: str) -> None:
    payload = b'{"inputs": []}' * 10
    packed = gzip.compress(payload) if encoding == "gzip" else zlib.compress(payload)
    assert decode_body(packed, encoding, max_bytes=1000) == payload
    with pytest.raises(ImageTooLargeError, match="inflates to more than 100 bytes"):
        decode_body(packed, encoding, max_bytes=100)
    with pytest.raises(InvalidParameterError, match="corrupt"):
        decode_body(b"not compressed", encoding, max_bytes=1000)
    with pytest.raises(InvalidParameterError, match="unsupported Content-Encoding"):
        decode_body(payload, "br", max_bytes=1000)


# --- responses ------------------------------------------------------------------------------------

BOX_OUTPUTS = [n for n in OutputName if n.value in {"boxes", "scores", "class_ids", "labels", "num_detections"}]


def detection_tensors(found: list[Detections], labels: Labels) -> dict[OutputName, Any]:
    """Every box output of detections on 100x100 images."""
    images = [ImagePrediction(d, 100, 100) for d in found]
    return output_tensors(all_outputs(Task.DETECT, False), images, labels)


def render(request: InferenceRequest, found: list[Detections], version: str | None = "1") -> tuple[bytes, int | None]:
    wanted = requested_outputs(request, Task.DETECT, "ssd")
    tensors = output_tensors(wanted, [ImagePrediction(d, 100, 100) for d in found], LABELS)
    return render_infer_response("ssd", version, request, wanted, tensors)


def test_detection_tensors_are_sorted_and_padded_per_batch() -> None:
    tensors = detection_tensors([two_detections(), Detections.empty()], LABELS)
    assert tensors[OutputName.BOXES].shape == (2, 2, 4)
    np.testing.assert_array_equal(tensors[OutputName.BOXES][0], [[1, 2, 3, 4], [10, 20, 30, 40]])
    np.testing.assert_array_equal(tensors[OutputName.BOXES][1], np.zeros((2, 4)))
    np.testing.assert_allclose(tensors[OutputName.SCORES], [[0.9, 0.5], [0, 0]])
    np.testing.assert_array_equal(tensors[OutputName.CLASS_IDS], [[1, 17], [-1, -1]])
    assert tensors[OutputName.LABELS].tolist() == [[b"person", b"cat"], [b"", b""]]
    np.testing.assert_array_equal(tensors[OutputName.NUM_DETECTIONS], [2, 0])
    assert detection_tensors([Detections.empty()], LABELS)[OutputName.BOXES].shape == (1, 0, 4)


def infer_request(**fields: Any) -> Any:
    raw, _ = body({"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": ["x"]}], **fields})
    return parse_infer_request(raw).request


def test_binary_response_is_read_back_by_tritonclient() -> None:
    tensors = detection_tensors([two_detections()], LABELS)
    request = infer_request(id="req-7", parameters={"binary_data_output": True})
    raw, length = render(request, [two_detections()])
    assert length is not None and json.loads(raw[:length])["id"] == "req-7"
    result = triton.InferenceServerClient.parse_response_body(raw, header_length=length)
    for name in BOX_OUTPUTS:
        np.testing.assert_array_equal(result.as_numpy(name), tensors[name])
    assert result.get_response()["model_name"] == "ssd"


def test_json_response_carries_flat_data_and_no_header_length() -> None:
    raw, length = render(infer_request(), [two_detections()])
    assert length is None
    outputs = {o["name"]: o for o in json.loads(raw)["outputs"]}
    assert list(outputs) == [n.value for n in BOX_OUTPUTS]
    assert outputs["labels"] == {"name": "labels", "datatype": "BYTES", "shape": [1, 2], "data": ["person", "cat"]}
    assert outputs["boxes"]["data"] == [1, 2, 3, 4, 10, 20, 30, 40]
    result = triton.InferenceServerClient.parse_response_body(raw)
    np.testing.assert_array_equal(result.as_numpy("class_ids"), [[1, 17]])


def test_requested_outputs_choose_names_order_and_binary_each() -> None:
    request = infer_request(
        outputs=[{"name": "num_detections"}, {"name": "scores", "parameters": {"binary_data": True}}]
    )
    raw, length = render(request, [two_detections()], version=None)
    assert length is not None
    header = json.loads(raw[:length])
    assert [o["name"] for o in header["outputs"]] == ["num_detections", "scores"]
    assert header["outputs"][0]["data"] == [2]
    assert header["outputs"][1]["parameters"] == {"binary_data_size": 8}
    assert "model_version" not in header
    assert struct.unpack("<2f", raw[length:]) == pytest.approx((0.9, 0.5))


def test_unknown_or_classification_outputs_of_box_models_are_rejected() -> None:
    with pytest.raises(InvalidParameterError, match="unexpected inference output 'logits'"):
        render(infer_request(outputs=[{"name": "logits"}]), [two_detections()])
    with pytest.raises(InvalidParameterError, match="unexpected inference output 'keypoints'"):
        render(infer_request(outputs=[{"name": "keypoints"}]), [two_detections()])
    request = infer_request(outputs=[{"name": "scores", "parameters": {"classification": 3}}])
    with pytest.raises(InvalidParameterError, match=r"classification extension applies to .* classify models"):
        render(request, [two_detections()])


def test_model_metadata_names_the_input_and_outputs() -> None:
    metadata = render_model_metadata("ssd", "3", "opencv_dnn").model_dump()
    assert metadata["versions"] == ["3"]
    assert metadata["inputs"] == [{"name": "image", "datatype": "BYTES", "shape": [-1]}]
    assert [(o["name"], o["datatype"]) for o in metadata["outputs"]] == [
        ("boxes", "FP32"),
        ("scores", "FP32"),
        ("class_ids", "INT32"),
        ("labels", "BYTES"),
        ("num_detections", "INT32"),
    ]
