"""``conf=best`` on every interface of a real server: the default model's saved per-class thresholds
(in the repository, as ``visionserve eval --save-thresholds`` writes them) change what each answers.

On astronaut.jpg the default model finds a person (0.79) and a mouse (0.42). The saved thresholds ask
person >= 0.9 and mouse >= 0.3, so ``best`` answers the mouse alone, and the default (conf 0.4) the person.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml
from tests.conftest import encode, photo
from tests.integration.conftest import ServerProcess, running_server, write_default_model_copy
from tests.integration.streams_server import sse_events
from tests.streams_support import write_video
from websockets.sync.client import connect

from visionserve.client import Client
from visionserve.models.default import DEFAULT_MODEL_NAME

pytestmark = pytest.mark.slow

THRESHOLDS = {"person": 0.9, "mouse": 0.3}
BEST_MODEL = "ssd-best"  # a copy of the default model whose model.yaml says conf: best


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("conf-best")
    models = root / "models"
    for name in (DEFAULT_MODEL_NAME, BEST_MODEL):
        (models / name).mkdir(parents=True)
        (models / name / "thresholds.yaml").write_text(yaml.safe_dump({"classes": THRESHOLDS}))
    write_default_model_copy(models, BEST_MODEL, thresholds={"conf": "best"})
    videos = root / "videos"
    videos.mkdir()
    write_video(videos / "astronaut.mp4", [photo("astronaut")] * 12, 6.0)
    args = ("--models", str(models), "--video-dir", str(videos), "--preload", f"{DEFAULT_MODEL_NAME},{BEST_MODEL}")
    with running_server(args, log_dir=root) as started:
        yield started


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    return encode(photo("astronaut"))


def native(server: ServerProcess, jpeg: bytes, path: str = "/v1/detect", **params: str) -> list[str]:
    response = httpx.post(server.url + path, params=params, files={"image": ("a.jpg", jpeg)}, timeout=60)
    assert response.status_code == 200, response.text
    return sorted(d["label"] for d in response.json()["detections"])


def test_native_detect_and_predict(server: ServerProcess, jpeg: bytes) -> None:
    assert "person" in native(server, jpeg)
    assert native(server, jpeg, conf="best") == ["mouse"]
    assert native(server, jpeg, f"/v1/models/{DEFAULT_MODEL_NAME}/predict", conf="best") == ["mouse"]
    # The model whose model.yaml says conf: best answers that way by default; a number overrides it.
    assert native(server, jpeg, f"/v1/models/{BEST_MODEL}/detect") == ["mouse"]
    assert "person" in native(server, jpeg, f"/v1/models/{BEST_MODEL}/detect", conf="0.4")
    with Client(server.url) as client:  # the Python client passes it through
        assert client.detect(jpeg, conf="best").labels == ("mouse",)


def test_best_on_a_model_without_thresholds_is_422(server: ServerProcess, jpeg: bytes) -> None:
    response = httpx.post(
        f"{server.url}/v1/models/movenet-lightning/predict?conf=best", files={"image": ("a.jpg", jpeg)}, timeout=120
    )
    assert response.status_code == 422
    assert "no saved per-class thresholds" in response.json()["error"]["message"]
    bad = httpx.post(f"{server.url}/v1/detect?conf=high", files={"image": ("a.jpg", jpeg)}, timeout=60)
    assert bad.status_code == 422


def test_deepstack_kserve_roboflow_and_tf_serving(server: ServerProcess, jpeg: bytes) -> None:
    answer = httpx.post(
        server.url + "/v1/vision/detection", files={"image": ("a.jpg", jpeg)}, data={"min_confidence": "best"}
    ).json()
    assert [p["label"] for p in answer["predictions"]] == ["mouse"]
    b64 = base64.b64encode(jpeg).decode()
    tensor = {
        "name": "image",
        "shape": [1],
        "datatype": "BYTES",
        "parameters": {"content_type": "base64"},
        "data": [b64],
    }
    kserve = httpx.post(
        f"{server.url}/v2/models/{DEFAULT_MODEL_NAME}/infer", json={"inputs": [tensor], "parameters": {"conf": "best"}}
    ).json()
    assert next(o for o in kserve["outputs"] if o["name"] == "labels")["data"] == ["mouse"]
    roboflow = httpx.post(
        server.url + "/infer/object_detection",
        json={"model_id": DEFAULT_MODEL_NAME, "confidence": "best", "image": {"type": "base64", "value": b64}},
    ).json()
    assert [p["class"] for p in roboflow["predictions"]] == ["mouse"]
    # Roboflow's "best" on a model without saved thresholds falls back to its default, as Roboflow does.
    plain = httpx.post(
        server.url + "/infer/keypoints_detection",
        json={"model_id": "movenet-lightning", "confidence": "best", "image": {"type": "base64", "value": b64}},
        timeout=120,
    )
    assert plain.status_code == 200, plain.text
    # TF Serving requests carry no threshold: the model's default (conf: best in its model.yaml) applies.
    tf = httpx.post(f"{server.url}/v1/models/{BEST_MODEL}:predict", json={"instances": [{"b64": b64}]}).json()
    assert tf["predictions"][0]["detection_class_names"] == ["mouse"]


def wait_job(server: ServerProcess, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job: dict[str, Any] = httpx.get(f"{server.url}/v1/jobs/{job_id}").json()
        if job["state"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not end")


def test_jobs(server: ServerProcess, jpeg: bytes) -> None:
    created = httpx.post(server.url + "/v1/jobs", files={"image": ("a.jpg", jpeg)}, data={"conf": "best"})
    assert created.status_code == 202, created.text
    job = wait_job(server, created.json()["id"])
    assert job["state"] == "succeeded"
    results = httpx.get(f"{server.url}/v1/jobs/{job['id']}/results").json()
    assert [d["label"] for d in results["items"][0]["detections"]] == ["mouse"]
    refused = httpx.post(
        server.url + "/v1/jobs", files={"image": ("a.jpg", jpeg)}, data={"conf": "best", "model": "movenet-lightning"}
    )
    assert refused.status_code == 422


def first_event_labels(server: ServerProcess, body: dict[str, Any]) -> set[str]:
    created = httpx.post(server.url + "/v1/streams", json={"source": "astronaut.mp4", "loop": True, **body})
    assert created.status_code == 201, created.text
    stream_id = created.json()["id"]
    try:
        with httpx.stream("GET", f"{server.url}/v1/streams/{stream_id}/events", timeout=60) as response:
            labels: set[str] = set()
            for count, event in enumerate(sse_events(response)):
                labels |= {d["label"] for d in event["detections"]}
                if count >= 4:
                    return labels
    finally:
        httpx.delete(f"{server.url}/v1/streams/{stream_id}")
    raise AssertionError("the stream ended early")


@pytest.mark.parametrize("track", [False, True], ids=["untracked", "tracked"])
def test_streams(server: ServerProcess, track: bool) -> None:
    assert "person" in first_event_labels(server, {"track": track})
    assert "person" not in first_event_labels(server, {"conf": "best", "track": track})


def test_websocket(server: ServerProcess, jpeg: bytes) -> None:
    ws_url = server.url.replace("http://", "ws://") + "/v1/detect/ws"
    with connect(f"{ws_url}?conf=best") as socket:
        socket.send(jpeg)
        answer = json.loads(socket.recv(timeout=30))
    assert [d["label"] for d in answer["detections"]] == ["mouse"]


def test_the_model_document_shows_the_saved_thresholds(server: ServerProcess) -> None:
    model = httpx.get(f"{server.url}/v1/models/{BEST_MODEL}").json()
    assert model["thresholds"]["best"] is True and model["thresholds"]["classes"] == THRESHOLDS
    plain = httpx.get(f"{server.url}/v1/models/movenet-lightning").json()
    assert plain["thresholds"]["best"] is False and plain["thresholds"]["classes"] == {}
