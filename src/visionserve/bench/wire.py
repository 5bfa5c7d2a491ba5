"""Each protocol's request for one image, and its answer read back as an :class:`Answer`.

The requests are shaped as each protocol's usual client sends them (see ``docs/protocols.md`` and
the protocol tests), key included where that client puts it:

- ``native``: multipart ``POST /v1/predict`` (or ``/v1/models/{name}/predict``) with
  ``mask_format=none``; any task (rows are detections or classes); key as ``Authorization: Bearer``;
- ``deepstack``: multipart ``POST /v1/vision/detection`` (or ``/v1/vision/custom/{name}``), key as
  the form field ``api_key``;
- ``kserve``: ``POST /v2/models/{name}/infer``, the image as a ``BYTES`` tensor in the binary
  extension (as ``tritonclient`` sends it), outputs asked for as JSON; key as a Bearer header;
- ``tfserving``: ``POST /v1/models/{name}:predict`` with ``{"instances": [{"b64": ...}]}`` (boxes
  come back normalized ``[ymin, xmin, ymax, xmax]`` and are scaled to the image's pixels);
- ``roboflow``: ``POST /infer/object_detection`` with the image as base64 and ``api_key`` in the JSON
  body, as Roboflow's ``inference-sdk`` posts.

Only ``native`` needs no model name (the server's default); the bench asks the native route for the
default's name when the other protocols need it. Parsers raise ``ValueError``, ``KeyError`` or
``TypeError`` on an answer they cannot read.
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import quote

import numpy as np

from visionserve.bench.answers import Answer
from visionserve.bench.http import Request, upload


class WireProtocol(StrEnum):
    NATIVE = "native"
    DEEPSTACK = "deepstack"
    KSERVE = "kserve"
    TFSERVING = "tfserving"
    ROBOFLOW = "roboflow"


@dataclass(frozen=True)
class BenchImage:
    """One image to send: a name for messages, its encoded bytes and its size in pixels."""

    name: str
    data: bytes
    width: int
    height: int


Box = tuple[float, float, float, float]


def _bearer(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def _json_request(path: str, document: dict[str, Any], api_key: str | None) -> Request:
    headers = {"Content-Type": "application/json", **_bearer(api_key)}
    return Request("POST", path, json.dumps(document).encode(), headers)


def _required(model: str | None) -> str:
    if model is None:
        raise ValueError("this protocol needs a model name")
    return model


def _name(model: str | None) -> str:
    return quote(_required(model), safe="")


def native_request(image: BenchImage, model: str | None, api_key: str | None) -> Request:
    path = "/v1/predict" if model is None else f"/v1/models/{_name(model)}/predict"
    request = upload(path, "image", image.data, fields={"mask_format": "none"})
    return Request(request.method, request.path, request.body, {**request.headers, **_bearer(api_key)})


def native_answer(body: bytes, image: BenchImage) -> Answer:
    document = json.loads(body)
    rows = document["detections"] if "detections" in document else document["classes"]
    return Answer.of([(str(r["label"]), float(r["score"]), _native_box(r.get("box"))) for r in rows])


def _native_box(box: dict[str, float] | None) -> Box | None:
    return None if box is None else (float(box["x1"]), float(box["y1"]), float(box["x2"]), float(box["y2"]))


def deepstack_request(image: BenchImage, model: str | None, api_key: str | None) -> Request:
    path = "/v1/vision/detection" if model is None else f"/v1/vision/custom/{_name(model)}"
    return upload(path, "image", image.data, fields={"api_key": api_key} if api_key else None)


def deepstack_answer(body: bytes, image: BenchImage) -> Answer:
    document = json.loads(body)
    if document.get("success") is not True:
        raise ValueError(f"DeepStack answer without success: {str(document)[:200]}")
    return Answer.of(
        [
            (str(p["label"]), float(p["confidence"]), (p["x_min"], p["y_min"], p["x_max"], p["y_max"]))
            for p in document["predictions"]
        ]
    )


_KSERVE_OUTPUTS = ("boxes", "scores", "labels", "num_detections")


def kserve_request(image: BenchImage, model: str | None, api_key: str | None) -> Request:
    tensor = struct.pack("<I", len(image.data)) + image.data
    header = {
        "inputs": [
            {"name": "image", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": len(tensor)}}
        ],
        "outputs": [{"name": name, "parameters": {"binary_data": False}} for name in _KSERVE_OUTPUTS],
    }
    head = json.dumps(header).encode()
    headers = {
        "Content-Type": "application/octet-stream",
        "Inference-Header-Content-Length": str(len(head)),
        **_bearer(api_key),
    }
    return Request("POST", f"/v2/models/{_name(model)}/infer", head + tensor, headers)


def kserve_answer(body: bytes, image: BenchImage) -> Answer:
    outputs = {o["name"]: o for o in json.loads(body)["outputs"]}
    count = int(outputs["num_detections"]["data"][0])
    boxes = np.asarray(outputs["boxes"]["data"], np.float64).reshape(-1, 4)[:count]
    scores = np.asarray(outputs["scores"]["data"], np.float64)[:count]
    labels = [str(v) for v in outputs["labels"]["data"][:count]]
    return Answer(tuple(labels), scores, boxes.reshape(count, 4))


def tfserving_request(image: BenchImage, model: str | None, api_key: str | None) -> Request:
    document = {"instances": [{"b64": base64.b64encode(image.data).decode()}]}
    return _json_request(f"/v1/models/{_name(model)}:predict", document, api_key)


def tfserving_answer(body: bytes, image: BenchImage) -> Answer:
    (prediction,) = json.loads(body)["predictions"]
    count = int(prediction["num_detections"])
    scale = np.array([image.height, image.width, image.height, image.width], np.float64)
    normalized = np.asarray(prediction["detection_boxes"], np.float64).reshape(-1, 4)[:count] * scale
    boxes = normalized[:, [1, 0, 3, 2]]
    scores = np.asarray(prediction["detection_scores"], np.float64)[:count]
    names = tuple(str(n) for n in prediction["detection_class_names"][:count])
    return Answer(names, scores, boxes.reshape(count, 4))


def roboflow_request(image: BenchImage, model: str | None, api_key: str | None) -> Request:
    document: dict[str, Any] = {
        "model_id": _required(model),
        "image": {"type": "base64", "value": base64.b64encode(image.data).decode()},
    }
    if api_key:
        document["api_key"] = api_key
    return _json_request("/infer/object_detection", document, None)


def roboflow_answer(body: bytes, image: BenchImage) -> Answer:
    rows = []
    for p in json.loads(body)["predictions"]:
        x, y, w, h = (float(p[k]) for k in ("x", "y", "width", "height"))
        rows.append((str(p["class"]), float(p["confidence"]), (x - w / 2, y - h / 2, x + w / 2, y + h / 2)))
    return Answer.of(rows)


@dataclass(frozen=True)
class Codec:
    """How one protocol asks (``request(image, model, api_key)``) and how its answer reads."""

    request: Callable[[BenchImage, str | None, str | None], Request]
    answer: Callable[[bytes, BenchImage], Answer]
    needs_model_name: bool


CODECS: dict[WireProtocol, Codec] = {
    WireProtocol.NATIVE: Codec(native_request, native_answer, False),
    WireProtocol.DEEPSTACK: Codec(deepstack_request, deepstack_answer, False),
    WireProtocol.KSERVE: Codec(kserve_request, kserve_answer, True),
    WireProtocol.TFSERVING: Codec(tfserving_request, tfserving_answer, True),
    WireProtocol.ROBOFLOW: Codec(roboflow_request, roboflow_answer, True),
}
