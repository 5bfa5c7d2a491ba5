"""Class filters name classes of the model: ids outside its labels are refused like unknown names,
with the same message on every interface (native, KServe v2, Roboflow, jobs)."""

from __future__ import annotations

import base64
from collections.abc import Callable

import httpx
import numpy as np
import pytest
from tests.conftest import encode
from tests.integration.protocol_servers import YOLO_MODEL, protocol_server

pytestmark = pytest.mark.slow
SQUARE = encode(np.zeros((640, 640, 3), np.uint8), ".png")


@pytest.fixture(scope="module")
def client() -> httpx.Client:
    return protocol_server().client()


def native(client: httpx.Client, classes: str) -> httpx.Response:
    files = {"image": ("a.png", SQUARE, "image/png")}
    return client.post(f"/v1/models/{YOLO_MODEL}/detect", params={"classes": classes}, files=files)


def kserve(client: httpx.Client, classes: str) -> httpx.Response:
    image = {"name": "image", "shape": [1], "datatype": "BYTES", "parameters": {"content_type": "base64"}}
    body = {"inputs": [{**image, "data": [base64.b64encode(SQUARE).decode()]}], "parameters": {"classes": classes}}
    return client.post(f"/v2/models/{YOLO_MODEL}/infer", json=body)


def roboflow(client: httpx.Client, classes: str) -> httpx.Response:
    image = {"type": "base64", "value": base64.b64encode(SQUARE).decode()}
    body = {"model_id": YOLO_MODEL, "image": image, "class_filter": [classes]}
    return client.post("/infer/object_detection", json=body)


def jobs(client: httpx.Client, classes: str) -> httpx.Response:
    files = {"image": ("a.png", SQUARE, "image/png")}
    return client.post("/v1/jobs", data={"model": YOLO_MODEL, "classes": classes}, files=files)


INTERFACES: dict[str, Callable[[httpx.Client, str], httpx.Response]] = {
    "native": native,
    "kserve": kserve,
    "roboflow": roboflow,
    "jobs": jobs,
}


@pytest.mark.parametrize("interface", INTERFACES)
@pytest.mark.parametrize("classes", ["99999", "2", "-1", "unicorn"])
def test_ids_and_names_outside_the_labels_are_refused_alike(client: httpx.Client, interface: str, classes: str) -> None:
    response = INTERFACES[interface](client, classes)
    assert response.status_code == 422, response.text
    assert f"unknown class '{classes}': not among this model's label names or ids" in response.text


@pytest.mark.parametrize("interface", INTERFACES)
def test_an_id_of_the_labels_is_accepted(client: httpx.Client, interface: str) -> None:
    response = INTERFACES[interface](client, "1")
    assert response.status_code in (200, 202), response.text
