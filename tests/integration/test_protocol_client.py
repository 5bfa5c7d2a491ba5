"""The Python client against a real server: detect from paths, bytes and arrays, models, health,
errors, API keys, and the async twin."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest
from tests.conftest import encode, photo
from tests.integration.conftest import ServerProcess
from tests.integration.protocol_servers import API_KEY, DEFAULT_MODEL, YOLO_BOXES, YOLO_MODEL, protocol_server

from visionserve import AsyncClient, Client
from visionserve.client import RetryPolicy
from visionserve.errors import AuthenticationError, ImageDecodeError, InvalidParameterError, ModelNotFoundError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server() -> ServerProcess:
    return protocol_server()


def test_detect_from_a_path_bytes_and_an_array(server: ServerProcess, photo_files: dict[str, str]) -> None:
    with Client(server.url) as client:
        from_path = client.detect(Path(photo_files["chelsea"]))
        from_bytes = client.detect(Path(photo_files["chelsea"]).read_bytes(), DEFAULT_MODEL, conf=0.5)
        from_array = client.detect(np.zeros((640, 640, 3), np.uint8), YOLO_MODEL)
    assert from_path.model == DEFAULT_MODEL and from_path.labels[0] == "cat"
    assert (from_path.width, from_path.height) == (451, 300)
    assert from_bytes.labels[0] == "cat" and (from_bytes.detections.confidence >= 0.5).all()
    assert from_path.timings["inference"] > 0
    np.testing.assert_allclose(from_array.detections.xyxy, [box for box, _, _ in YOLO_BOXES], atol=1e-3)
    assert from_array.labels == ("person", "car") and from_array.version == "3"


def test_several_images_in_one_request_and_options(server: ServerProcess) -> None:
    images = [encode(photo("astronaut")), encode(photo("coffee"))]
    with Client(server.url) as client:
        astronaut, coffee = client.detect_many(images, classes=["person", "cup"], max_det=1)
    assert astronaut.labels == ("person",) and coffee.labels == ("cup",)
    assert astronaut.model == coffee.model == DEFAULT_MODEL


def test_models_health_and_errors(server: ServerProcess) -> None:
    with Client(server.url, retry=RetryPolicy(attempts=1)) as client:
        assert client.health() and client.ready()
        assert {m.name for m in client.models()} >= {DEFAULT_MODEL, YOLO_MODEL}
        with pytest.raises(ModelNotFoundError, match="nope"):
            client.detect(b"x", "nope")
        with pytest.raises(ImageDecodeError, match="cannot decode image"):
            client.detect(b"not an image")
        with pytest.raises(InvalidParameterError, match="conf"):
            client.detect(encode(photo("coffee")), conf=3.0)


def test_api_keys(server: ServerProcess) -> None:
    keyed = protocol_server("--api-keys", API_KEY)
    with Client(keyed.url, retry=RetryPolicy(attempts=1)) as client, pytest.raises(AuthenticationError):
        client.models()
    with Client(keyed.url, API_KEY) as client:
        assert client.detect(encode(photo("coffee"))).labels[0] == "cup"


def test_async_client(server: ServerProcess) -> None:
    async def run() -> list[str]:
        async with AsyncClient(server.url) as client:
            assert await client.health()
            results = await asyncio.gather(*(client.detect(encode(photo(n))) for n in ("astronaut", "chelsea")))
            return [result.labels[0] for result in results]

    assert asyncio.run(run()) == ["person", "cat"]


def test_cli_detect_with_url_uses_the_server(
    server: ServerProcess, photo_files: dict[str, str], tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from visionserve.cli.main import main

    args = ["detect", photo_files["chelsea"], photo_files["coffee"], "--url", server.url, "--json", "--conf", "0.5"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["model"] == DEFAULT_MODEL
    assert [r["detections"][0]["label"] for r in document["results"]] == ["cat", "cup"]
    out = tmp_path / "out"
    table = CliRunner().invoke(
        main, ["detect", photo_files["chelsea"], "--url", server.url, "--out", str(out), "--crops"]
    )
    assert table.exit_code == 0 and "cat" in table.output
    assert (out / "chelsea.jpg").is_file() and any(p.name.startswith("chelsea_000_cat") for p in out.iterdir())
    down = CliRunner().invoke(main, ["detect", photo_files["chelsea"], "--url", "http://127.0.0.1:9"])
    assert down.exit_code == 1 and "cannot reach" in down.output
