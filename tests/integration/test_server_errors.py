"""Every error answers JSON ``{"error": {"code", "message"}}`` with the status of the one table."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from tests.conftest import encode, photo
from tests.integration.conftest import (
    BROKEN,
    CRASHY,
    SHARED_MAX_BODY_BYTES,
    SHARED_MAX_PIXELS,
    ServerProcess,
)


def error_of(response: httpx.Response, status: int, code: str) -> str:
    """Check status and shape; return the message."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    message = body["error"]["message"]
    assert isinstance(message, str) and message
    return message


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width x height`` pixels (its pixel data is one empty row)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


JPEG = encode(photo("coffee"), ".jpg")


def test_undecodable_image(client: httpx.Client) -> None:
    response = client.post("/v1/detect", files={"image": ("x.jpg", b"not an image at all", "image/jpeg")})
    assert "cannot decode" in error_of(response, 400, "undecodable_image")


def test_truncated_jpeg(client: httpx.Client) -> None:
    response = client.post("/v1/detect", content=JPEG[:200], headers={"Content-Type": "image/jpeg"})
    error_of(response, 400, "undecodable_image")


def test_second_image_undecodable_names_it(client: httpx.Client) -> None:
    files = [("image", ("a.jpg", JPEG, "image/jpeg")), ("image", ("b.jpg", b"garbage", "image/jpeg"))]
    assert "image 2 of 2" in error_of(client.post("/v1/detect", files=files), 400, "undecodable_image")


@pytest.mark.parametrize("content_type", ["text/plain", "application/json", "application/x-www-form-urlencoded"])
def test_unsupported_content_type(client: httpx.Client, content_type: str) -> None:
    response = client.post("/v1/detect", content=b"hello", headers={"Content-Type": content_type})
    assert content_type in error_of(response, 415, "unsupported_media_type")


def test_multipart_part_that_is_not_an_image(client: httpx.Client) -> None:
    response = client.post("/v1/detect", files={"image": ("notes.txt", b"hello", "text/plain")})
    error_of(response, 415, "unsupported_media_type")


def test_no_image(client: httpx.Client) -> None:
    error_of(client.post("/v1/detect", content=b""), 422, "invalid_parameter")
    response = client.post("/v1/detect", files={"picture": ("a.jpg", JPEG, "image/jpeg")})
    assert "picture" in error_of(response, 422, "invalid_parameter")


def test_unknown_model(client: httpx.Client) -> None:
    response = client.post("/v1/models/no-such-model/detect", content=JPEG, headers={"Content-Type": "image/jpeg"})
    assert "no-such-model" in error_of(response, 404, "model_not_found")
    error_of(client.get("/v1/models/no-such-model"), 404, "model_not_found")
    error_of(client.post("/v1/models/no-such-model/load"), 404, "model_not_found")


def test_unknown_route_and_wrong_method(client: httpx.Client) -> None:
    assert "/v1/nothing" in error_of(client.get("/v1/nothing"), 404, "not_found")
    kserve = client.get("/v2/nothing")  # under /v2, KServe's shape (tritonclient reads it)
    assert kserve.status_code == 404 and kserve.json() == {"error": "no route GET /v2/nothing"}
    assert "GET" in error_of(client.get("/v1/detect"), 405, "method_not_allowed")
    error_of(client.delete("/v1/models"), 405, "method_not_allowed")


def test_body_over_the_limit_is_refused_from_its_content_length(client: httpx.Client) -> None:
    body = b"\xff" * (SHARED_MAX_BODY_BYTES + 1)
    response = client.post("/v1/detect", content=body, headers={"Content-Type": "image/jpeg"})
    assert str(SHARED_MAX_BODY_BYTES) in error_of(response, 413, "too_large")


def test_streamed_body_over_the_limit_is_refused_while_reading(client: httpx.Client) -> None:
    sent = []

    def chunks() -> Iterator[bytes]:
        for _ in range(3 * SHARED_MAX_BODY_BYTES // 65536):
            sent.append(1)
            yield b"\xff" * 65536

    # No Content-Length: the body arrives chunked and the limit is enforced while it streams.
    try:
        response = client.post("/v1/detect", content=chunks(), headers={"Content-Type": "image/jpeg"})
    except httpx.TransportError:
        pytest.fail("the server should answer 413, not drop the connection")
    error_of(response, 413, "too_large")


def test_image_header_claiming_too_many_pixels(client: httpx.Client) -> None:
    response = client.post("/v1/detect", content=png_header(100_000, 100_000), headers={"Content-Type": "image/png"})
    assert "pixels" in error_of(response, 413, "too_large")


def test_real_image_over_the_pixel_limit(client: httpx.Client) -> None:
    side = int(SHARED_MAX_PIXELS**0.5) + 10
    image = np.full((side, side, 3), 90, np.uint8)
    response = client.post("/v1/detect", files={"image": ("big.png", encode(image, ".png"), "image/png")})
    error_of(response, 413, "too_large")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"conf": "2"}, "conf"),
        ({"conf": "high"}, "conf"),
        ({"iou": "-0.1"}, "iou"),
        ({"max_det": "0"}, "max_det"),
        ({"classes": "unicorn"}, "unicorn"),
        ({"format": "gif"}, "format"),
        ({"confidence": "0.5"}, "confidence"),
    ],
)
def test_bad_parameters(client: httpx.Client, params: dict[str, str], field: str) -> None:
    response = client.post("/v1/detect", files={"image": ("a.jpg", JPEG, "image/jpeg")}, params=params)
    assert field in error_of(response, 422, "invalid_parameter")


def test_bad_parameter_in_a_form_field(client: httpx.Client) -> None:
    response = client.post("/v1/detect", files={"image": ("a.jpg", JPEG, "image/jpeg")}, data={"max_det": "many"})
    assert "max_det" in error_of(response, 422, "invalid_parameter")


def test_annotated_image_needs_exactly_one_image(client: httpx.Client) -> None:
    files = [("image", ("a.jpg", JPEG, "image/jpeg")), ("image", ("b.jpg", JPEG, "image/jpeg"))]
    response = client.post("/v1/detect", files=files, params={"format": "image"})
    error_of(response, 422, "invalid_parameter")


def test_broken_model_is_unavailable(client: httpx.Client) -> None:
    response = client.post(f"/v1/models/{BROKEN}/detect", content=JPEG, headers={"Content-Type": "image/jpeg"})
    assert "thresholds.conf" in error_of(response, 503, "model_not_ready")


def test_unexpected_failure_is_a_500_with_an_id_that_the_log_has(
    client: httpx.Client, shared_server: ServerProcess
) -> None:
    red = np.zeros((40, 40, 3), np.uint8)
    red[..., 2] = 255
    response = client.post(f"/v1/models/{CRASHY}/detect", files={"image": ("r.png", encode(red, ".png"), "image/png")})
    message = error_of(response, 500, "internal_error")
    error_id = response.json()["error"]["id"]
    assert error_id in message
    assert "traceback" not in response.json()["error"]
    assert "crashed on purpose" not in response.text  # details stay in the log
    log = shared_server.log()
    assert error_id in log and "crashed on purpose" in log and "Traceback" in log
    # The model survives: a green image still works.
    green = np.zeros((40, 40, 3), np.uint8)
    green[..., 1] = 255
    ok = client.post(f"/v1/models/{CRASHY}/detect", files={"image": ("g.png", encode(green, ".png"), "image/png")})
    assert ok.status_code == 200 and ok.json()["detections"][0]["label"] == "green"
