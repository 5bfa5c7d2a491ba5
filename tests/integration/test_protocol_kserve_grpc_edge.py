"""KServe v2 over gRPC at the edge, with ``tritonclient[grpc]``: API keys as metadata, concurrent calls
batched together and counted in the metrics, and a graceful stop that drains gRPC calls too."""

from __future__ import annotations

import contextlib
import queue
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton
from tests.conftest import encode, photo
from tests.integration.conftest import ServerProcess, metric_sum, write_plugin_model
from tests.integration.protocol_servers import API_KEY, DEFAULT_MODEL, YOLO_MODEL, protocol_server
from tritonclient.utils import InferenceServerException

pytestmark = pytest.mark.slow
ROUTE = "/inference.GRPCInferenceService/ModelInfer"


def encoded_input(*images: bytes) -> triton.InferInput:
    tensor = np.array(images, dtype=np.object_)
    return triton.InferInput("image", [len(images)], "BYTES").set_data_from_numpy(tensor)


def grpc_client(server: ServerProcess) -> triton.InferenceServerClient:
    assert server.grpc_target is not None
    return triton.InferenceServerClient(server.grpc_target)


def refused(call: Callable[[], object]) -> tuple[str, str]:
    with pytest.raises(InferenceServerException) as caught:
        call()
    return str(caught.value.status()), str(caught.value.message())


def test_api_keys_travel_as_metadata() -> None:
    keyed = protocol_server("--api-keys", API_KEY)
    with grpc_client(keyed) as client:
        assert client.is_server_live() and client.is_server_ready()  # probes are public, as over HTTP
        status, message = refused(lambda: client.is_model_ready(YOLO_MODEL))
        assert status == "StatusCode.UNAUTHENTICATED" and "authorization: Bearer <key>" in message
        status, message = refused(lambda: client.get_model_metadata(YOLO_MODEL, headers={"x-api-key": "wrong"}))
        assert (status, message) == ("StatusCode.UNAUTHENTICATED", "invalid API key")
        assert client.is_model_ready(YOLO_MODEL, headers={"authorization": f"Bearer {API_KEY}"})
        image = encode(np.zeros((640, 640, 3), np.uint8), ".png")
        result = client.infer(YOLO_MODEL, [encoded_input(image)], headers={"x-api-key": API_KEY})
        assert result.as_numpy("num_detections").tolist() == [2]
        answers: queue.Queue[InferenceServerException | None] = queue.Queue()
        client.start_stream(callback=lambda result, error: answers.put(error))
        try:
            # The server refuses the stream as it opens: the client may already know when it sends.
            with contextlib.suppress(InferenceServerException):
                client.async_stream_infer(YOLO_MODEL, [encoded_input(image)])
            error = answers.get(timeout=30)
        finally:
            client.stop_stream()
        assert error is not None and "UNAUTHENTICATED" in str(error.status())


def test_concurrent_calls_share_forward_passes_and_are_counted() -> None:
    server = protocol_server()
    names = ["astronaut", "chelsea"] * 8
    images = {name: encode(photo(name)) for name in set(names)}
    with httpx.Client(base_url=server.url, timeout=30) as http, grpc_client(server) as client:
        before = http.get("/metrics").text
        answers: queue.Queue[tuple[int, object, InferenceServerException | None]] = queue.Queue()
        for index, name in enumerate(names):
            client.async_infer(
                DEFAULT_MODEL,
                [encoded_input(images[name])],
                callback=lambda result, error, index=index: answers.put((index, result, error)),
            )
        received = sorted((answers.get(timeout=120) for _ in names), key=lambda item: item[0])
        after = http.get("/metrics").text
    for index, result, error in received:
        assert error is None, error
        labels = result.as_numpy("labels")[0].tolist()  # type: ignore[attr-defined]
        assert {"astronaut": b"person", "chelsea": b"cat"}[names[index]] in labels

    def delta(name: str, **labels: str) -> float:
        return metric_sum(after, name, **labels) - metric_sum(before, name, **labels)

    assert delta("visionserve_images_total", model=DEFAULT_MODEL) == len(names)
    assert delta("visionserve_batch_size_count", model=DEFAULT_MODEL) < len(names), "no call shared a pass"
    ok = {"route": ROUTE, "method": "GRPC", "model": DEFAULT_MODEL, "status": "OK"}
    assert delta("visionserve_requests_total", **ok) == len(names)
    assert delta("visionserve_request_duration_seconds_count", route=ROUTE, model=DEFAULT_MODEL) == len(names)


def test_sigterm_drains_grpc_calls_then_exits_cleanly(
    tmp_path: Path, start_server: Callable[..., ServerProcess]
) -> None:
    write_plugin_model(tmp_path / "repo", "slow", delay_s=1.5, instances=1)
    server = start_server("--models", str(tmp_path / "repo"), "--preload", "slow", grpc=True)
    green = encode(np.full((24, 24, 3), (0, 220, 0), np.uint8), ".png")
    with grpc_client(server) as client, httpx.Client(base_url=server.url, timeout=10) as http:
        answers: queue.Queue[tuple[object, InferenceServerException | None]] = queue.Queue()
        client.async_infer("slow", [encoded_input(green)], callback=lambda result, error: answers.put((result, error)))
        deadline = time.monotonic() + 20
        while metric_sum(http.get("/metrics").text, "visionserve_requests_in_progress") < 2:
            assert time.monotonic() < deadline, "the gRPC call never started"
            time.sleep(0.02)
        server.terminate()
        while client.is_server_ready():
            assert time.monotonic() < deadline, "the server never started draining"
            time.sleep(0.02)
        status, message = refused(lambda: client.get_model_metadata("slow"))
        assert status == "StatusCode.UNAVAILABLE" and "shutting down" in message
        assert client.is_server_live()
        result, error = answers.get(timeout=30)
    assert error is None, error
    assert result.as_numpy("labels").tolist() == [[b"green"]]  # type: ignore[attr-defined]
    assert server.process.wait(30) == 0
