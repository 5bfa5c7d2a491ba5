"""Expected errors (a model not loaded, a client that went away) log one line at WARNING/INFO; only
real internal errors log at ERROR with a traceback."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.jobs_support import PLUGIN_MODEL, numbered_image, write_plugin_model

from visionserve.api.app import create_app
from visionserve.models.repository import ModelRepository
from visionserve.serving import DetectionService, ServiceConfig
from visionserve.settings import Settings

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[Any]:
    write_plugin_model(tmp_path / "models", tmp_path / "seen.log")
    repository = ModelRepository.scan(tmp_path / "models")
    service = DetectionService(repository, ServiceConfig(cores=1), set_threads=lambda n: None)
    app = create_app(Settings(models=tmp_path / "models", data_dir=tmp_path / "data"), repository, service=service)
    async with app.router.lifespan_context(app):
        await service.wait_started()
        yield app


def _problems(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


ROUTES = [
    ("/v1/vision/custom/" + PLUGIN_MODEL, "image"),
    ("/v1/models/" + PLUGIN_MODEL + "/detect", "image"),
    ("/upload?model=" + PLUGIN_MODEL, "file"),
]


@pytest.mark.parametrize(("path", "field"), ROUTES)
async def test_a_model_not_loaded_is_a_warning_without_traceback(
    app: Any, caplog: pytest.LogCaptureFixture, path: str, field: str
) -> None:
    await app.state.service.unload(PLUGIN_MODEL)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://visionserve.test") as client:
        with caplog.at_level(logging.INFO):
            answer = await client.post(path, files={field: ("a.png", numbered_image(1), "image/png")})
    assert answer.status_code == 503
    assert not _problems(caplog)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "503" in r.getMessage()]
    assert len(warnings) == 1 and PLUGIN_MODEL in warnings[0].getMessage()


@pytest.mark.parametrize(("path", "field"), ROUTES)
async def test_a_client_that_disconnects_is_logged_at_info(
    app: Any, caplog: pytest.LogCaptureFixture, path: str, field: str
) -> None:
    """The client sends its headers, then goes away before the body."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    route, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": route,
        "raw_path": route.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"visionserve.test"), (b"content-type", b"multipart/form-data; boundary=x")],
        "client": ("127.0.0.1", 1234),
        "server": ("visionserve.test", 80),
        "state": {},
    }
    with caplog.at_level(logging.INFO):
        await app(scope, receive, send)
    assert not _problems(caplog)
    assert any("client disconnected" in r.getMessage() and r.levelno == logging.INFO for r in caplog.records)
    assert sent[0]["status"] < 500


async def test_a_real_internal_error_is_still_logged_with_its_traceback(
    app: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(app.state.service, "detect", broken)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://visionserve.test") as client:
        with caplog.at_level(logging.INFO):
            answer = await client.post(ROUTES[0][0], files={"image": ("a.png", numbered_image(1), "image/png")})
    assert answer.status_code == 500
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is not None
