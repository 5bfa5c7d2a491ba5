"""The Python client against ``httpx.MockTransport`` servers: requests, answers, retries and errors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import cv2
import httpx
import numpy as np
import pytest

from visionserve.client import AsyncClient, Client, RetryPolicy
from visionserve.errors import (
    AuthenticationError,
    ConnectionFailedError,
    ImageDecodeError,
    InputError,
    InvalidParameterError,
    JobNotFoundError,
    ModelNotFoundError,
    ModelNotReadyError,
    OverloadedError,
    ServerError,
    ShuttingDownError,
)

RESULT = {
    "model": "ssd",
    "version": "1",
    "width": 640,
    "height": 480,
    "detections": [
        {"label": "cat", "class_id": 17, "score": 0.9, "box": {"x1": 1.5, "y1": 2, "x2": 30, "y2": 40}},
        {"label": "person", "class_id": 1, "score": 0.5, "box": {"x1": 5, "y1": 6, "x2": 7, "y2": 8}},
    ],
    "timings": {"inference": 35.5, "total": 41.0},
}
Handler = Callable[[httpx.Request], httpx.Response]


def client(handler: Handler, sleeps: list[float] | None = None, **kwargs: Any) -> Client:
    record = sleeps if sleeps is not None else []
    return Client("http://vs.test", transport=httpx.MockTransport(handler), sleep=record.append, **kwargs)


def multipart(request: httpx.Request) -> tuple[list[bytes], dict[str, str]]:
    """The image parts and the plain fields of a multipart request (parsed by hand)."""
    boundary = request.headers["content-type"].split("boundary=")[1].encode()
    images, fields = [], {}
    for part in request.content.split(b"--" + boundary)[1:-1]:
        head, _, body = part.strip(b"\r\n").partition(b"\r\n\r\n")
        name = head.split(b'name="')[1].split(b'"')[0].decode()
        if name == "image":
            images.append(body)
        else:
            fields[name] = body.decode()
    return images, fields


def test_detect_posts_the_image_and_options_and_reads_the_result() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=RESULT)

    with client(handler, api_key="s3cret") as c:
        result = c.detect(b"\xff\xd8jpeg", "ssd", conf=0.25, classes=["cat", "person"], max_det=5)
    (request,) = seen
    assert request.method == "POST" and request.url.path == "/v1/models/ssd/detect"
    assert request.headers["authorization"] == "Bearer s3cret"
    images, fields = multipart(request)
    assert images == [b"\xff\xd8jpeg"]
    assert fields == {"conf": "0.25", "max_det": "5", "classes": "cat,person"}
    assert (result.model, result.version, result.width, result.height) == ("ssd", "1", 640, 480)
    assert result.labels == ("cat", "person")
    np.testing.assert_allclose(result.detections.xyxy, [[1.5, 2, 30, 40], [5, 6, 7, 8]])
    np.testing.assert_allclose(result.detections.confidence, [0.9, 0.5])
    assert result.detections.class_id.tolist() == [17, 1]
    assert result.timings == {"inference": 35.5, "total": 41.0}


def test_default_model_path_and_arrays_and_files(tmp_path: Any) -> None:
    bodies: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/detect"
        images, fields = multipart(request)
        assert fields == {}
        bodies.extend(images)
        item = {k: v for k, v in RESULT.items() if k not in {"model", "version"}}
        return httpx.Response(200, json={"model": "ssd", "version": "1", "results": [item] * len(images)})

    image = np.random.default_rng(0).integers(0, 255, (8, 9, 3), dtype=np.uint8)
    path = tmp_path / "photo.jpg"
    path.write_bytes(b"\xff\xd8file")
    with client(handler) as c:
        results = c.detect_many([image, path, str(path)])
    assert len(results) == 3 and all((r.model, r.version) == ("ssd", "1") for r in results)
    decoded = cv2.imdecode(np.frombuffer(bodies[0], np.uint8), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(decoded, image)
    assert bodies[1:] == [b"\xff\xd8file", b"\xff\xd8file"]


def test_bad_local_images_fail_before_any_request(tmp_path: Any) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no request expected")

    with client(handler) as c:
        with pytest.raises(ImageDecodeError, match="cannot read image file"):
            c.detect(tmp_path / "missing.jpg")
        with pytest.raises(InvalidParameterError, match="uint8 BGR array"):
            c.detect(np.zeros((4, 4), np.float32))


def test_503_and_429_are_retried_with_retry_after_or_backoff() -> None:
    answers = iter(
        [
            httpx.Response(503, headers={"Retry-After": "0.7"}, json={"error": {"code": "busy", "message": "full"}}),
            httpx.Response(429, json={"error": {"code": "busy", "message": "full"}}),
            httpx.Response(200, json=RESULT),
        ]
    )
    sleeps: list[float] = []
    with client(lambda request: next(answers), sleeps, retry=RetryPolicy(attempts=4, backoff=0.1)) as c:
        assert c.detect(b"x").labels == ("cat", "person")
    assert sleeps == [0.7, 0.2]


def test_retries_give_up_with_overloaded_error() -> None:
    sleeps: list[float] = []
    answer = httpx.Response(
        429, headers={"Retry-After": "9"}, json={"error": {"code": "busy", "message": "queue full"}}
    )
    policy = RetryPolicy(attempts=3, max_delay=2.0)
    with (
        client(lambda request: answer, sleeps, retry=policy) as c,
        pytest.raises(OverloadedError, match="429 from /v1/detect: queue full") as caught,
    ):
        c.detect(b"x")
    assert sleeps == [2.0, 2.0]
    assert caught.value.retry_after == 9.0


@pytest.mark.parametrize(
    ("status", "body", "error", "message"),
    [
        (400, {"error": {"code": "image_decode", "message": "cannot decode image"}}, InputError, "cannot decode image"),
        (
            401,
            {"error": {"code": "unauthorized", "message": "missing API key"}},
            AuthenticationError,
            "missing API key",
        ),
        (404, {"error": {"code": "model_not_found", "message": "no model 'x'"}}, ModelNotFoundError, "no model 'x'"),
        (422, {"error": {"code": "invalid", "message": "conf"}}, InvalidParameterError, "conf"),
        (500, {"error": {"code": "internal", "message": "error id 42"}}, ServerError, "error id 42"),
        (502, "<html>bad gateway</html>", ServerError, "bad gateway"),
    ],
)
def test_error_answers_raise_classes_of_the_error_tree(status: int, body: Any, error: type, message: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body) if isinstance(body, dict) else httpx.Response(status, text=body)

    with client(handler) as c, pytest.raises(error, match=message):
        c.detect(b"x")


def test_503_without_retry_after_means_the_model_is_not_ready() -> None:
    answer = httpx.Response(503, json={"error": {"code": "not_ready", "message": "model unloaded"}})
    with client(lambda request: answer, retry=RetryPolicy(attempts=1)) as c, pytest.raises(ModelNotReadyError):
        c.detect(b"x", "ssd")


def test_unreadable_answers_are_server_errors() -> None:
    for answer in (
        httpx.Response(200, text="not json"),
        httpx.Response(200, json={"detections": "nope"}),
        httpx.Response(200, json={"model": "ssd", "results": [RESULT, RESULT]}),
        httpx.Response(200, json={"model": "ssd", "results": ["x"]}),
    ):
        with client(lambda request, a=answer: a) as c, pytest.raises(ServerError):  # type: ignore[misc]
            c.detect(b"x")


def refuse(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def test_unreachable_server_is_retried_then_reported() -> None:
    sleeps: list[float] = []
    with client(refuse, sleeps, retry=RetryPolicy(attempts=3, backoff=0.5)) as c:
        with pytest.raises(ConnectionFailedError, match=r"cannot reach http://vs\.test after 3 attempts"):
            c.detect(b"x")
        assert c.health() is False and c.ready() is False
    assert sleeps == [0.5, 1.0]


def test_models_and_health() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"models": [{"name": "ssd", "version": "1", "state": "ready", "x": 1}]})
        return httpx.Response(200 if request.url.path == "/healthz" else 503, json={})

    with client(handler) as c:
        (info,) = c.models()
        assert (info.name, info.version, info.state, info.raw["x"]) == ("ssd", "1", "ready", 1)
        assert c.health() is True and c.ready() is False


def test_async_client_shares_the_logic() -> None:
    answers = iter([httpx.Response(503, headers={"Retry-After": "0"}), httpx.Response(200, json=RESULT)])
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async def run() -> None:
        transport = httpx.MockTransport(lambda request: next(answers))
        async with AsyncClient("http://vs.test", "key", transport=transport, sleep=sleep) as c:
            result = await c.detect(b"x", conf=0.3)
            assert result.labels == ("cat", "person")
        transport = httpx.MockTransport(refuse)
        async with AsyncClient("http://vs.test", transport=transport, sleep=sleep, retry=RetryPolicy(attempts=1)) as c:
            assert await c.health() is False
            with pytest.raises(ConnectionFailedError):
                await c.models()

    asyncio.run(run())
    assert sleeps == [0.0]


def test_the_json_of_a_result_survives_a_round_trip() -> None:
    with client(lambda request: httpx.Response(200, content=json.dumps(RESULT).encode())) as c:
        result = c.detect(b"x")
    assert result.detections.xyxy.dtype == np.float32 and len(result.detections) == 2


def test_client_classes_are_importable_from_the_package_root() -> None:
    import visionserve

    assert visionserve.Client is Client and visionserve.AsyncClient is AsyncClient
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = visionserve.Nope  # type: ignore[attr-defined]


def test_every_client_error_code_is_the_servers_code_for_that_class() -> None:
    from visionserve.api.errors import ERROR_STATUS
    from visionserve.client._protocol import CODE_ERRORS

    # 500 (internal) and 502 (remote) answers raise ServerError in the client
    server_codes = {code: cls for cls, (status, code) in ERROR_STATUS.items() if status not in {500, 502}}
    assert server_codes == CODE_ERRORS


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [
        (422, "invalid_parameter", InvalidParameterError),
        (400, "undecodable_image", ImageDecodeError),
        (503, "shutting_down", ShuttingDownError),
        (503, "model_not_ready", ModelNotReadyError),
        (404, "not_found", JobNotFoundError),
    ],
)
def test_error_codes_choose_the_exact_class(status: int, code: str, error: type) -> None:
    answer = httpx.Response(status, json={"error": {"code": code, "message": "m"}})
    with client(lambda request: answer, retry=RetryPolicy(attempts=1)) as c, pytest.raises(error):
        c.detect(b"x")


def test_model_names_are_quoted_into_one_path_segment() -> None:
    from visionserve.client._protocol import detect_path

    assert detect_path(None) == "/v1/detect"
    assert detect_path("yolo-v8") == "/v1/models/yolo-v8/detect"
    assert detect_path("../jobs") == "/v1/models/..%2Fjobs/detect"
    assert detect_path("x#y?z") == "/v1/models/x%23y%3Fz/detect"
