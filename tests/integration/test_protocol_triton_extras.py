"""Triton's model config and statistics, KServe-shaped errors under /v2, /file_upload and CORS,
against real server processes, driven by the official ``tritonclient[http]`` and by httpx."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tests.conftest import encode, photo
from tests.integration.conftest import ServerProcess
from tests.integration.protocol_servers import API_KEY, CLS_MODEL, DEFAULT_MODEL, YOLO_MODEL, protocol_server
from tritonclient.utils import InferenceServerException

pytestmark = pytest.mark.slow
ORIGIN = "https://app.example.com"


@pytest.fixture(scope="module")
def server() -> ServerProcess:
    return protocol_server()


@pytest.fixture
def triton_client(server: ServerProcess) -> Iterator[triton.InferenceServerClient]:
    with triton.InferenceServerClient(server.url.removeprefix("http://"), network_timeout=60) as client:
        yield client


def encoded_input(*images: bytes) -> triton.InferInput:
    tensor = np.array(images, dtype=np.object_)
    return triton.InferInput("image", [len(images)], "BYTES").set_data_from_numpy(tensor)


def test_model_config_in_tritons_shape(triton_client: triton.InferenceServerClient) -> None:
    config = triton_client.get_model_config(YOLO_MODEL)
    assert config["name"] == YOLO_MODEL and config["platform"] == "onnxruntime" and config["max_batch_size"] == 8
    assert [(i["name"], i["data_type"], i["dims"]) for i in config["input"]] == [("image", "TYPE_STRING", [1])]
    outputs = {o["name"]: (o["data_type"], o["dims"]) for o in config["output"]}
    assert outputs["boxes"] == ("TYPE_FP32", [-1, 4]) and outputs["labels"] == ("TYPE_STRING", [-1])
    assert config["dynamic_batching"]["max_queue_delay_microseconds"] == 2000
    (group,) = config["instance_group"]
    assert group["kind"] == "KIND_CPU" and group["count"] >= 1
    assert triton_client.get_model_config(YOLO_MODEL, "3") == config
    classify = triton_client.get_model_config(CLS_MODEL)
    assert [o["name"] for o in classify["output"]] == ["scores", "class_ids", "labels"]


def _stats(client: triton.InferenceServerClient, model: str) -> dict[str, Any]:
    (entry,) = client.get_inference_statistics(model)["model_stats"]
    return entry


def test_statistics_count_requests_passes_and_failures(triton_client: triton.InferenceServerClient) -> None:
    before = _stats(triton_client, YOLO_MODEL)
    images = [encode(np.zeros((640, 640, 3), np.uint8), ".png")] * 3
    triton_client.infer(YOLO_MODEL, [encoded_input(*images)])
    with pytest.raises(InferenceServerException, match="decode"):
        triton_client.infer(YOLO_MODEL, [encoded_input(b"not an image")])
    after = _stats(triton_client, YOLO_MODEL)
    assert after["name"] == YOLO_MODEL and after["version"] == "3" and after["last_inference"] > 0
    assert after["inference_count"] - before["inference_count"] == 3
    assert 1 <= after["execution_count"] - before["execution_count"] <= 3
    success, fail = after["inference_stats"]["success"], after["inference_stats"]["fail"]
    assert success["count"] - before["inference_stats"]["success"]["count"] == 1
    assert fail["count"] - before["inference_stats"]["fail"]["count"] == 1
    assert success["ns"] > before["inference_stats"]["success"]["ns"]
    infer_ns = after["inference_stats"]["compute_infer"]["ns"] - before["inference_stats"]["compute_infer"]["ns"]
    assert 0 < infer_ns <= success["ns"] - before["inference_stats"]["success"]["ns"]
    images_done = sum(b["batch_size"] * b["compute_infer"]["count"] for b in after["batch_stats"])
    assert images_done == after["inference_count"]
    every = triton_client.get_inference_statistics()["model_stats"]
    assert {DEFAULT_MODEL, YOLO_MODEL, CLS_MODEL} <= {entry["name"] for entry in every}
    assert triton_client.get_inference_statistics(YOLO_MODEL, "3")["model_stats"][0]["name"] == YOLO_MODEL


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.get_model_config("nope"),
        lambda c: c.get_inference_statistics("nope"),
        lambda c: c.get_model_config(YOLO_MODEL, "9"),
        lambda c: c.get_model_metadata("nope"),
        lambda c: c.infer(YOLO_MODEL, [encoded_input(b"junk")], outputs=[triton.InferRequestedOutput("nope")]),
        lambda c: c.unregister_cuda_shared_memory(),  # a route visionserve does not have
        lambda c: c.get_trace_settings(),
        lambda c: c.get_log_settings(),
    ],
    ids=["config", "stats", "version", "metadata", "bad-output", "cudashm", "trace", "logging"],
)
def test_every_v2_error_raises_tritons_own_exception(triton_client: triton.InferenceServerClient, call: Any) -> None:
    with pytest.raises(InferenceServerException) as raised:
        call(triton_client)
    assert raised.value.message() and "{" not in raised.value.message()


def test_v2_errors_are_kserve_shaped_before_routes_run(server: ServerProcess) -> None:
    missing = httpx.get(f"{server.url}/v2/no/such/route", timeout=10)
    assert missing.status_code == 404 and missing.json() == {"error": "no route GET /v2/no/such/route"}
    wrong = httpx.delete(f"{server.url}/v2/models/{YOLO_MODEL}/config", timeout=10)
    assert wrong.status_code == 405 and isinstance(wrong.json()["error"], str)
    keyed = protocol_server("--api-keys", API_KEY)
    refused = httpx.get(f"{keyed.url}/v2/models/{YOLO_MODEL}/config", timeout=10)
    assert refused.status_code == 401 and isinstance(refused.json()["error"], str)
    assert refused.headers["www-authenticate"].startswith("Bearer")
    with triton.InferenceServerClient(keyed.url.removeprefix("http://")) as client:
        with pytest.raises(InferenceServerException, match="API key"):
            client.get_model_config(YOLO_MODEL)
        assert client.get_model_config(YOLO_MODEL, headers={"Authorization": f"Bearer {API_KEY}"})["name"] == YOLO_MODEL
    native = httpx.get(f"{server.url}/v1/no/such/route", timeout=10).json()
    assert native["error"]["code"] == "not_found"  # outside /v2 the native shape stays


def upload(url: str, image: bytes, **kwargs: Any) -> httpx.Response:
    """A POST as the Android app sends it: multipart field ``file`` with a file name and image/jpeg."""
    return httpx.post(f"{url}/file_upload", files={"file": ("IMG_0001.jpg", image, "image/jpeg")}, timeout=60, **kwargs)


def test_file_upload_answers_native_detections(server: ServerProcess) -> None:
    answer = upload(server.url, encode(photo("astronaut")))
    assert answer.status_code == 200
    body = answer.json()
    assert body["model"] == DEFAULT_MODEL and body["width"] == 512 and body["height"] == 512
    assert body["detections"][0]["label"] == "person" and set(body["detections"][0]["box"]) == {"x1", "y1", "x2", "y2"}
    same = httpx.post(f"{server.url}/v1/detect", files={"image": ("a.jpg", encode(photo("astronaut")), "image/jpeg")})
    assert [d["box"] for d in same.json()["detections"]] == [d["box"] for d in body["detections"]]
    yolo = upload(server.url, encode(np.zeros((640, 640, 3), np.uint8), ".png"), params={"model": YOLO_MODEL})
    assert yolo.json()["model"] == YOLO_MODEL and [d["label"] for d in yolo.json()["detections"]] == ["person", "car"]
    blank = encode(np.zeros((640, 640, 3), np.uint8), ".png")
    options = upload(server.url, blank, params={"model": YOLO_MODEL, "conf": "0.7"})
    assert [d["label"] for d in options.json()["detections"]] == ["person"]


def test_file_upload_errors_and_form(server: ServerProcess) -> None:
    wrong_field = httpx.post(f"{server.url}/file_upload", files={"image": ("a.jpg", b"x", "image/jpeg")}, timeout=10)
    assert wrong_field.status_code == 422 and "'file'" in wrong_field.json()["error"]["message"]
    broken = upload(server.url, b"not a jpeg")
    assert broken.status_code == 400 and broken.json()["error"]["code"] == "undecodable_image"
    unknown = upload(server.url, encode(photo("astronaut")), params={"model": "nope"})
    assert unknown.status_code == 404
    form = httpx.get(f"{server.url}/file_upload", timeout=10)
    assert form.status_code == 200 and form.headers["content-type"].startswith("text/html")
    assert 'name="file"' in form.text and 'enctype="multipart/form-data"' in form.text and "<script" not in form.text


def test_file_upload_takes_the_key_as_header_or_form_field() -> None:
    keyed = protocol_server("--api-keys", API_KEY)
    image = encode(photo("astronaut"))
    assert upload(keyed.url, image).status_code == 401
    assert upload(keyed.url, image, headers={"X-API-Key": API_KEY}).status_code == 200
    as_field = httpx.post(
        f"{keyed.url}/file_upload",
        files={"file": ("IMG_0001.jpg", image, "image/jpeg")},
        data={"api_key": API_KEY},
        timeout=60,
    )
    assert as_field.status_code == 200 and as_field.json()["detections"][0]["label"] == "person"


def test_cors_preflight_before_the_key_and_requests_still_need_it() -> None:
    cors = protocol_server("--api-keys", API_KEY, "--cors-origins", f"{ORIGIN},http://localhost:3000")
    ask = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}
    allowed = httpx.options(f"{cors.url}/v1/detect", headers={"Origin": ORIGIN, **ask}, timeout=10)
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    assert allowed.headers["access-control-allow-credentials"] == "true"
    other = httpx.options(f"{cors.url}/v1/detect", headers={"Origin": "https://evil.example", **ask}, timeout=10)
    assert "access-control-allow-origin" not in other.headers
    files = {"image": ("a.jpg", encode(photo("astronaut")), "image/jpeg")}
    refused = httpx.post(f"{cors.url}/v1/detect", files=files, headers={"Origin": ORIGIN}, timeout=60)
    assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == ORIGIN
    headers = {"Origin": ORIGIN, "Authorization": f"Bearer {API_KEY}"}
    answered = httpx.post(f"{cors.url}/v1/detect", files=files, headers=headers, timeout=60)
    assert answered.status_code == 200 and answered.headers["access-control-allow-origin"] == ORIGIN
    assert "Retry-After" in answered.headers["access-control-expose-headers"]
