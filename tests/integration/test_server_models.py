"""Model listing, load/unload at run time, health probes and metrics."""

from __future__ import annotations

import os

import httpx
from tests.conftest import encode, photo
from tests.integration.conftest import BROKEN, CRASHY, SINGLE, SLEEPY, metric_sum

from visionserve.api.wire.native import ModelDocument, ModelList
from visionserve.models.builtin import CLASSIFIER_NAME, POSE_NAME
from visionserve.models.default import DEFAULT_MODEL_NAME, default_spec

JPEG = encode(photo("astronaut"), ".jpg")


def detect(client: httpx.Client, model: str) -> httpx.Response:
    return client.post(f"/v1/models/{model}/detect", content=JPEG, headers={"Content-Type": "image/jpeg"})


def test_list_models(client: httpx.Client) -> None:
    response = client.get("/v1/models")
    assert response.status_code == 200
    models = {m["name"]: m for m in ModelList.model_validate(response.json()).model_dump()["models"]}
    assert set(models) == {DEFAULT_MODEL_NAME, CLASSIFIER_NAME, POSE_NAME, SLEEPY, CRASHY, SINGLE, BROKEN}
    assert {name: m["state"] for name, m in models.items()} == {
        DEFAULT_MODEL_NAME: "loaded",
        CLASSIFIER_NAME: "unloaded",  # built-ins other than the default load on their first request
        POSE_NAME: "unloaded",
        SLEEPY: "loaded",
        CRASHY: "loaded",
        SINGLE: "loaded",
        BROKEN: "failed",
    }
    assert "thresholds.conf" in models[BROKEN]["error"]
    assert response.json()["default"] == DEFAULT_MODEL_NAME


def test_model_document(client: httpx.Client) -> None:
    response = client.get(f"/v1/models/{DEFAULT_MODEL_NAME}")
    assert response.status_code == 200
    document = ModelDocument.model_validate(response.json()).model_dump()
    spec = default_spec()
    assert document["version"] == spec.version
    assert (document["backend"], document["task"], document["state"]) == ("opencv_dnn", "detect", "loaded")
    assert document["input"] == {"width": 300, "height": 300, "resize": "stretch", "color": "rgb"}
    assert document["labels"]["1"] == "person" and document["labels"]["17"] == "cat"
    # the default thresholds, and the per-class ones saved by `visionserve eval` (none here)
    assert document["thresholds"] == {**spec.thresholds.model_dump(), "classes": {}}
    assert document["batching"] == spec.batching.model_dump()
    # Without instances in its spec, an OpenCV DNN model runs one instance per core.
    assert document["instances"] == len(os.sched_getaffinity(0))
    single = client.get(f"/v1/models/{SINGLE}").json()
    assert single["instances"] == 1
    assert single["batching"]["max_queue_delay_ms"] == 200
    plugin = client.get(f"/v1/models/{SLEEPY}").json()
    assert plugin["labels"] == {"0": "blue", "1": "green", "2": "red"}
    assert plugin["input"] is None


def test_unload_then_load(client: httpx.Client) -> None:
    assert detect(client, SINGLE).status_code == 200
    unloaded = client.post(f"/v1/models/{SINGLE}/unload")
    assert unloaded.status_code == 200 and unloaded.json()["state"] == "unloaded"
    try:
        refused = detect(client, SINGLE)
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "model_not_ready"
        assert "unloaded" in refused.json()["error"]["message"]
        assert client.get(f"/v1/models/{SINGLE}").json()["state"] == "unloaded"
        assert client.get("/readyz").status_code == 200  # the other models still serve
        assert client.post(f"/v1/models/{SINGLE}/unload").json()["state"] == "unloaded"  # idempotent
    finally:
        loaded = client.post(f"/v1/models/{SINGLE}/load")
    assert loaded.status_code == 200 and loaded.json()["state"] == "loaded"
    assert detect(client, SINGLE).status_code == 200


def test_loading_a_broken_model_fails_clearly(client: httpx.Client) -> None:
    response = client.post(f"/v1/models/{BROKEN}/load")
    assert response.status_code == 503
    assert "thresholds.conf" in response.json()["error"]["message"]


def test_health_probes(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "alive"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert ready.json()["models"][DEFAULT_MODEL_NAME] == "loaded"
    assert ready.json()["models"][BROKEN] == "failed"


def test_metrics_move(client: httpx.Client) -> None:
    before = client.get("/metrics")
    assert before.status_code == 200
    assert before.headers["content-type"].startswith("text/plain")
    model = {"model": DEFAULT_MODEL_NAME}
    route = {"route": "/v1/detect", "method": "POST", **model}
    files = [("image", ("a.jpg", JPEG, "image/jpeg"))] * 2
    assert client.post("/v1/detect", files=files).status_code == 200
    assert client.post("/v1/detect", content=b"junk", headers={"Content-Type": "image/jpeg"}).status_code == 400
    after = client.get("/metrics").text
    b = before.text
    assert metric_sum(after, "visionserve_requests_total", status="200", **route) == (
        metric_sum(b, "visionserve_requests_total", status="200", **route) + 1
    )
    assert metric_sum(after, "visionserve_requests_total", status="400", **route) == (
        metric_sum(b, "visionserve_requests_total", status="400", **route) + 1
    )
    assert (
        metric_sum(after, "visionserve_images_total", **model) == metric_sum(b, "visionserve_images_total", **model) + 2
    )
    for name in ("visionserve_batch_size_count", "visionserve_inference_seconds_count"):
        assert metric_sum(after, name, **model) == metric_sum(b, name, **model) + 1
    latency = "visionserve_request_duration_seconds_count"
    assert (
        metric_sum(after, latency, route="/v1/detect", **model)
        == metric_sum(b, latency, route="/v1/detect", **model) + 2
    )
    assert metric_sum(after, "visionserve_model_loaded", **model) == 1
    assert metric_sum(after, "visionserve_queue_depth", **model) == 0
    assert "visionserve_requests_in_progress" in after
    assert metric_sum(after, "visionserve_requests_total", route="unmatched") == metric_sum(
        b, "visionserve_requests_total", route="unmatched"
    )
