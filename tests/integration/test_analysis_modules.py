"""Analysis modules (a seed-style ``main.py`` folder, tests/module_support.py) dropped into the model
repository of a real server process: the native answer with every candidate label, DeepStack and
KServe v2 (the official ``tritonclient``) with the top label, a job of the in-process runner, and a
broken module folder listed with its error."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tests.integration.conftest import ServerProcess, running_server
from tests.jobs_support import wait_for
from tests.module_support import blobs_image, loads, png, write_colour_module

from visionserve.api.wire.predictions import PredictResponse

RED_BOX = {"x1": 20.0, "y1": 30.0, "x2": 80.0, "y2": 70.0}
GREEN_BOX = {"x1": 200.0, "y1": 150.0, "x2": 210.0, "y2": 160.0}


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("modules")
    write_colour_module(root, "colours")  # no model.yaml: the one class of main.py
    declared = write_colour_module(root, "declared", "module: {class: ColourAnalyser}\nthresholds: {conf: 0.7}\n")
    (declared / "labels.txt").write_text("blue\nred\ngreen\n")
    broken = root / "two-classes"
    broken.mkdir()
    (broken / "main.py").write_text(
        "class A:\n    def inference_by_path(self, p): return []\n\n"
        "class B:\n    def inference_by_path(self, p): return []\n"
    )
    return root


@pytest.fixture(scope="module")
def server(repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    args = ("--models", str(repository), "--preload", "colours,declared")
    with running_server(args, log_dir=tmp_path_factory.mktemp("logs")) as running:
        yield running


@pytest.fixture
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60.0) as client:
        yield client


def predict(http: httpx.Client, model: str, **params: str) -> httpx.Response:
    files = {"image": ("blobs.png", png(blobs_image()), "image/png")}
    return http.post(f"/v1/models/{model}/predict", files=files, params=params)


def test_native_answer_keeps_every_candidate_label(http: httpx.Client, repository: Path) -> None:
    answer = predict(http, "colours")
    assert answer.status_code == 200, answer.text
    PredictResponse.model_validate(answer.json())
    red, green = answer.json()["detections"]
    assert (red["label"], red["score"], red["box"]) == ("red", 0.9, RED_BOX)
    assert [(c["label"], c["score"]) for c in red["candidates"]] == [("red", 0.9), ("red-ish", 0.3)]
    assert (green["label"], green["box"]) == ("green", GREEN_BOX)
    assert [(c["label"], c["score"]) for c in green["candidates"]] == [("green", 0.6), ("green-ish", 0.5)]
    listed = http.get("/v1/models/colours").json()
    assert listed["backend"] == "module"
    names = {red["class_id"]: "red", red["candidates"][1]["class_id"]: "red-ish", green["class_id"]: "green"}
    assert all(listed["labels"][str(i)] == name for i, name in names.items())  # ids given as labels appear
    only_green = predict(http, "colours", classes="green").json()["detections"]
    assert [d["label"] for d in only_green] == ["green"]
    assert loads(repository / "colours")[0][1:] == ["None", "None", "-"]  # one instance, no device named


def test_declared_labels_keep_their_ids_and_thresholds_apply(http: httpx.Client) -> None:
    (red,) = predict(http, "declared").json()["detections"]  # conf 0.7 of its model.yaml: not green (0.6)
    assert red["class_id"] == 1 and red["candidates"][1]["class_id"] >= 3  # red-ish: after blue, red, green
    everything = predict(http, "declared", conf="0").json()["detections"]
    assert [(d["label"], d["class_id"]) for d in everything] == [("red", 1), ("green", 2)]


def test_deepstack_custom_route_gives_the_top_label(http: httpx.Client) -> None:
    files = {"image": ("blobs.png", png(blobs_image()), "image/png")}
    answer = http.post("/v1/vision/custom/colours", files=files, data={"min_confidence": "0.5"})
    assert answer.status_code == 200, answer.text
    red, green = answer.json()["predictions"]
    assert (red["label"], red["confidence"]) == ("red", 0.9)
    assert (red["x_min"], red["y_min"], red["x_max"], red["y_max"]) == (20, 30, 80, 70)
    assert green["label"] == "green" and "candidates" not in red


def test_kserve_v2_infer_with_tritonclient(server: ServerProcess) -> None:
    with triton.InferenceServerClient(server.url.removeprefix("http://"), network_timeout=60) as client:
        assert client.is_model_ready("colours")
        image = np.array([png(blobs_image())], dtype=np.object_)
        tensor = triton.InferInput("image", [1], "BYTES").set_data_from_numpy(image)
        result = client.infer("colours", [tensor])
    assert result.as_numpy("labels")[0].tolist() == [b"red", b"green"]
    np.testing.assert_allclose(result.as_numpy("boxes")[0], [[20, 30, 80, 70], [200, 150, 210, 160]])
    np.testing.assert_allclose(result.as_numpy("scores")[0], [0.9, 0.6], atol=1e-6)


def test_a_job_of_the_in_process_runner(http: httpx.Client) -> None:
    files = [("image", (f"{i}.png", png(blobs_image()), "image/png")) for i in range(2)]
    answer = http.post("/v1/jobs", files=files, data={"model": "colours"})
    assert answer.status_code == 202, answer.text
    url = f"/v1/jobs/{answer.json()['id']}"
    wait_for(lambda: http.get(url).json()["state"] not in ("queued", "running"), 60, 0.05)
    job = http.get(url).json()
    assert job["state"] == "succeeded", job
    for result in job["results"]:
        assert [(d["label"], d["box"]) for d in result["detections"]] == [("red", RED_BOX), ("green", GREEN_BOX)]


def test_a_folder_with_two_module_classes_is_listed_with_its_error(http: httpx.Client) -> None:
    listed = {m["name"]: m for m in http.get("/v1/models").json()["models"]}
    broken = listed["two-classes"]
    assert broken["state"] == "failed"
    assert "two-classes" in broken["error"] and "2 classes" in broken["error"] and "A, B" in broken["error"]
    answer = predict(http, "two-classes")
    assert answer.status_code == 503 and "module: {class: ClassName}" in answer.text
