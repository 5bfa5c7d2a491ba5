"""Fuzzing the wire codecs: whatever a client sends, a parser returns a value or raises an
:class:`InputError` (a 4xx at the HTTP edge), never anything else (a 500).

Each codec starts from a valid request (as its real clients build it) and Hypothesis edits it: JSON
documents get nodes replaced by arbitrary JSON, keys deleted or added; binary bodies (KServe binary
tensors, ``.npy`` files, pickles, gzip) are truncated, flipped and spliced like the images of
:mod:`tests.unit.test_fuzz_images`. Parsing continues as far as the route would take it: images to
BGR arrays, options to the predictor's thresholds for a model's labels.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import io
import json
import os
import pickle
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.fuzz_corpus import mutated

from visionserve.api.wire import deepstack, kserve_v2, native, roboflow, tfserving
from visionserve.api.wire.common import RequestOptions, decode_base64
from visionserve.api.wire.jsonbody import parse_json
from visionserve.api.wire.kserve_tensors import serialize_bytes
from visionserve.api.wire.npy import load_npy
from visionserve.errors import InputError
from visionserve.models.labels import Labels

pytestmark = pytest.mark.slow
#: Small enough for CI (about 20 s in all); VISIONSERVE_FUZZ_EXAMPLES=20000 runs them far longer.
EXAMPLES = int(os.environ.get("VISIONSERVE_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LABELS = Labels({1: "person", 17: "cat"})
PIXELS = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
JPEG = b"\xff\xd8\xff\xe0 not really a jpeg"

json_leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**300, max_value=10**320)
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["", "image", "BYTES", "UINT8", "base64", "numpy", "b64", "RGB", "²", "1e999", "-1", "cat"])
)
json_values = st.recursive(
    json_leaves, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


def _edit(document: Any, path: tuple[Any, ...], change: Callable[[Any, Any], None]) -> Any:
    if not path:
        holder = [document]
        change(holder, 0)
        return holder[0] if holder else None
    node = document
    for step in path[:-1]:
        node = node[step]
    change(node, path[-1])
    return document


@st.composite
def edited(draw: st.DrawFn, valid: Any) -> Any:
    """``valid`` (a JSON document) with up to three nodes replaced by arbitrary JSON, deleted, or
    given an extra key."""
    document = json.loads(json.dumps(valid))
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.sampled_from(_paths(document)))
        kind = draw(st.sampled_from(["replace", "delete", "add"]))
        value = draw(json_values)
        if kind == "replace" or not path:

            def change(node: Any, key: Any, value: Any = value) -> None:
                node[key] = value
        elif kind == "delete":

            def change(node: Any, key: Any) -> None:
                del node[key]
        else:
            name = draw(st.text(max_size=8))

            def change(node: Any, key: Any, value: Any = value, name: str = name) -> None:
                if isinstance(node[key], dict):
                    node[key][name] = value
                elif isinstance(node[key], list):
                    node[key].append(value)

        document = _edit(document, path, change)
    return document


def as_json(document: Any) -> bytes:
    return json.dumps(document, allow_nan=True).encode()


def refuses_only_with_input_errors(parse: Callable[[], object]) -> None:
    """Run ``parse``; an :class:`InputError` is a fine answer, any other exception fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # as in production: warnings are logged, not raised
        with contextlib.suppress(InputError):
            parse()


def options_for_model(options: RequestOptions) -> None:
    options.to_predict_options(LABELS)


# -- KServe v2 -----------------------------------------------------------------------------------
KSERVE_JSON = {
    "inputs": [
        {
            "name": "image",
            "shape": [1],
            "datatype": "BYTES",
            "parameters": {"content_type": "base64"},
            "data": [b64(JPEG)],
        }
    ],
    "parameters": {"conf": 0.5, "iou": 0.4, "max_det": 10, "classes": "cat,1", "color_order": "RGB"},
    "outputs": [{"name": "boxes"}],
}
KSERVE_PIXELS = {
    "inputs": [{"name": "image", "shape": [1, 2, 3, 3], "datatype": "UINT8", "data": PIXELS.ravel().tolist()}],
}


def kserve_infer(body: bytes, header_length: int | None) -> None:
    parsed = kserve_v2.parse_infer_request(body, header_length)
    kserve_v2.image_inputs(parsed)
    options_for_model(kserve_v2.request_options(parsed.request))


@FUZZ
@given(document=edited(KSERVE_JSON) | edited(KSERVE_PIXELS))
def test_kserve_json_requests(document: Any) -> None:
    refuses_only_with_input_errors(lambda: kserve_infer(as_json(document), None))


def _kserve_binary_seeds() -> dict[str, bytes]:
    header = {"inputs": [{"name": "image", "shape": [2], "datatype": "BYTES", "parameters": {}}]}
    images = serialize_bytes([JPEG, JPEG[:5]])
    header["inputs"][0]["parameters"]["binary_data_size"] = len(images)
    pixels = {"inputs": [{"name": "image", "shape": [1, 2, 3, 3], "datatype": "UINT8", "parameters": {}}]}
    pixels["inputs"][0]["parameters"]["binary_data_size"] = PIXELS.size
    text, pixel_text = json.dumps(header).encode(), json.dumps(pixels).encode()
    return {"bytes": text + images, "pixels": pixel_text + PIXELS.tobytes(), "length": len(text).to_bytes(4, "big")}


@FUZZ
@given(body=mutated(_kserve_binary_seeds), header_length=st.none() | st.integers(-5, 400))
def test_kserve_binary_requests(body: bytes, header_length: int | None) -> None:
    refuses_only_with_input_errors(lambda: kserve_infer(body, header_length))


@FUZZ
@given(
    body=mutated(lambda: {"gzip": gzip.compress(as_json(KSERVE_JSON)), "plain": as_json(KSERVE_JSON)}),
    encoding=st.sampled_from(["gzip", "deflate", "identity", "br", " GZIP ", ""]) | st.text(max_size=6),
)
def test_kserve_compressed_bodies(body: bytes, encoding: str) -> None:
    refuses_only_with_input_errors(lambda: kserve_v2.decode_body(body, encoding, 10_000))


@FUZZ
@given(document=edited({"ready": True}))
def test_kserve_repository_index(document: Any) -> None:
    refuses_only_with_input_errors(lambda: kserve_v2.parse_index_request(as_json(document)))


# -- TensorFlow Serving --------------------------------------------------------------------------
TF_ROWS = {"signature_name": "serving_default", "instances": [{"b64": b64(JPEG)}, PIXELS.tolist()]}
TF_COLUMNS = {"inputs": {"inputs": [PIXELS.tolist()]}}


@FUZZ
@given(document=edited(TF_ROWS) | edited(TF_COLUMNS))
def test_tfserving_predict_requests(document: Any) -> None:
    refuses_only_with_input_errors(lambda: tfserving.parse_predict_request(as_json(document)))


# -- Roboflow ------------------------------------------------------------------------------------
def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


ROBOFLOW = {
    "model_id": "ssd",
    "image": [{"type": "base64", "value": b64(JPEG)}, {"type": "numpy", "value": b64(_npy(PIXELS))}],
    "confidence": 0.3,
    "iou_threshold": 0.5,
    "max_detections": 5,
    "class_filter": ["cat"],
}


def roboflow_detect(body: bytes) -> None:
    parsed = roboflow.parse_object_detection_request(body)
    options_for_model(parsed.options)


@FUZZ
@given(document=edited(ROBOFLOW))
def test_roboflow_requests(document: Any) -> None:
    refuses_only_with_input_errors(lambda: roboflow_detect(as_json(document)))


def _numpy_seeds() -> dict[str, bytes]:
    return {
        "pickle": pickle.dumps(PIXELS, protocol=pickle.HIGHEST_PROTOCOL),
        "pickle-2": pickle.dumps(PIXELS, protocol=2),
        "npy": _npy(PIXELS),
        "npy-float": _npy(PIXELS.astype(np.float32)),
    }


@FUZZ
@given(data=mutated(_numpy_seeds))
def test_roboflow_numpy_images(data: bytes) -> None:
    body = as_json({"model_id": "ssd", "image": {"type": "numpy", "value": b64(data)}})
    refuses_only_with_input_errors(lambda: roboflow_detect(body))


@FUZZ
@given(data=mutated(_numpy_seeds))
def test_npy_files(data: bytes) -> None:
    refuses_only_with_input_errors(lambda: load_npy(data, "image"))


@FUZZ
@given(document=edited({"model_id": "ssd", "api_key": "k"}))
def test_roboflow_model_requests(document: Any) -> None:
    refuses_only_with_input_errors(lambda: roboflow.parse_add_request(as_json(document)))
    refuses_only_with_input_errors(lambda: roboflow.parse_clear_request(as_json(document)))


# -- the native API, DeepStack, shared pieces ----------------------------------------------------
params_text = st.text(max_size=10) | st.sampled_from(["0.5", "1e999", "nan", "-0", "²", "person,cat", "json", "rle"])


@FUZZ
@given(
    query=st.dictionaries(
        st.sampled_from(["conf", "iou", "classes", "max_det", "top_k", "format", "mask_format", "render", "x"]),
        st.lists(params_text, max_size=3),
        max_size=5,
    )
)
def test_native_predict_parameters(query: dict[str, list[str]]) -> None:
    def parse() -> None:
        params = native.parse_params(query, {})
        native.predict_options(params, LABELS)
        native.wants_image(params, None)

    refuses_only_with_input_errors(parse)


@FUZZ
@given(raw=st.none() | params_text)
def test_deepstack_min_confidence(raw: str | None) -> None:
    refuses_only_with_input_errors(lambda: deepstack.parse_min_confidence(raw))


@FUZZ
@given(text=json_values | st.text(alphabet="ABCDEFab012+/=-_ \n:;,data/image", max_size=40))
def test_base64_fields(text: Any) -> None:
    refuses_only_with_input_errors(lambda: decode_base64("image", text))


@FUZZ
@given(body=mutated(lambda: {"doc": as_json(KSERVE_JSON), "deep": b"[" * 5000 + b"]" * 5000, "big": b"9" * 5000}))
def test_json_bodies(body: bytes) -> None:
    refuses_only_with_input_errors(lambda: parse_json(body))


@pytest.mark.parametrize(
    "body",
    [b"[" * 100_000, b'{"a":' * 50_000, b"1" * 10_000, b"\xff\xfe{}", b'"\\ud800"'],
)
def test_pathological_json_is_refused_cleanly(body: bytes) -> None:
    refuses_only_with_input_errors(lambda: parse_json(body))
