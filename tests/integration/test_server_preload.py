"""The ``preload`` setting through a real server: a model left out loads on its first request
(once, however many requests arrive together), answers, and still unloads and loads through the API."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from tests.conftest import encode
from tests.factories import constant_onnx, solid_image, yolov8_table
from tests.integration.conftest import ServerProcess, write_model

from visionserve.models.builtin import CLASSIFIER_NAME, POSE_NAME
from visionserve.models.default import DEFAULT_MODEL_NAME

LAZY = "tiny-lazy"
#: What ``tiny-lazy`` finds in any 64x64 image: one box of class "b".
BOX = [24.0, 28.0, 40.0, 36.0]
PNG = encode(solid_image(64, 64), ".png")


def write_tiny_model(root: Path) -> Path:
    """``root/tiny-lazy``: a 64x64 ONNX model whose output is one fixed YOLOv8 box."""
    folder = root / LAZY
    folder.mkdir(parents=True)
    constant_onnx(
        folder / "net.onnx", yolov8_table([(32, 32, 16, 8, 1, 0.9)], num_classes=2), input_shape=("batch", 3, 64, 64)
    )
    write_model(
        folder,
        {
            "name": LAZY,
            "backend": "onnxruntime",
            "files": {"model": "net.onnx"},
            "input": {"width": 64, "height": 64, "resize": "letterbox", "scale": 1 / 255},
            "decoder": {"layout": "yolov8"},
            "labels": ["a", "b"],
            "instances": 1,
        },
    )
    return root


def detect(client: httpx.Client, model: str) -> httpx.Response:
    return client.post(f"/v1/models/{model}/detect", content=PNG, headers={"Content-Type": "image/png"})


def state(client: httpx.Client, model: str) -> str:
    return str(client.get(f"/v1/models/{model}").json()["state"])


def check_detection(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text
    (found,) = response.json()["detections"]
    assert found["label"] == "b"
    assert [found["box"][k] for k in ("x1", "y1", "x2", "y2")] == BOX


def test_a_model_left_out_of_preload_loads_once_on_its_first_requests(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    repository = write_tiny_model(tmp_path / "models")
    server = start_server("--models", str(repository), "--preload", DEFAULT_MODEL_NAME)
    client = server.client()
    listed = {m["name"]: m["state"] for m in client.get("/v1/models").json()["models"]}
    assert listed == {
        DEFAULT_MODEL_NAME: "loaded",
        LAZY: "unloaded",
        CLASSIFIER_NAME: "unloaded",
        POSE_NAME: "unloaded",
    }
    assert "model tiny-lazy loaded" not in server.log()

    with ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(lambda _: detect(server.client(), LAZY), range(4)))
    for response in responses:
        check_detection(response)
    assert state(client, LAZY) == "loaded"
    assert server.log().count("model tiny-lazy loaded") == 1

    unloaded = client.post(f"/v1/models/{LAZY}/unload")
    assert unloaded.status_code == 200 and unloaded.json()["state"] == "unloaded"
    refused = detect(client, LAZY)
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "model_not_ready"
    loaded = client.post(f"/v1/models/{LAZY}/load")
    assert loaded.status_code == 200 and loaded.json()["state"] == "loaded"
    check_detection(detect(client, LAZY))


def test_preload_none_from_the_environment_is_ready_and_loads_on_demand(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    repository = write_tiny_model(tmp_path / "models")
    server = start_server("--models", str(repository), env={"VISIONSERVE_PRELOAD": "none"})
    client = server.client()
    assert client.get("/readyz").status_code == 200
    assert {m["state"] for m in client.get("/v1/models").json()["models"]} == {"unloaded"}
    check_detection(detect(client, LAZY))
    assert state(client, LAZY) == "loaded"
    assert state(client, DEFAULT_MODEL_NAME) == "unloaded"
