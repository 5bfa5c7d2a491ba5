"""/v1/jobs against hostile input: huge integers, pathological JSON, oversized JSON bodies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from tests.jobs_support import PLUGIN_MODEL, write_plugin_model

from visionserve.api.app import create_app
from visionserve.models.repository import ModelRepository
from visionserve.settings import Settings

pytestmark = pytest.mark.anyio
JOB_ID = "a" * 32
BIG = str(2**63)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    models = tmp_path / "models"
    write_plugin_model(models, tmp_path / "seen.log")
    settings = Settings(models=models, data_dir=tmp_path / "data", max_body_bytes=16384, jobs_max_body_bytes=1 << 20)
    app = create_app(settings, ModelRepository.scan(models), set_threads=lambda n: None)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://visionserve.test") as test_client:
            yield test_client


@pytest.mark.parametrize(
    "path",
    [
        f"/v1/jobs?offset={BIG}",
        f"/v1/jobs/{JOB_ID}?items_offset={BIG}",
        f"/v1/jobs/{JOB_ID}/items/{BIG}",
        f"/v1/jobs/{JOB_ID}/items/{BIG}/annotated",
        f"/v1/jobs/{JOB_ID}/items/0/crops/{BIG}",
        f"/v1/jobs/{JOB_ID}/items/{BIG}/crops/0",
    ],
)
async def test_integers_past_the_database_range_are_422(client: httpx.AsyncClient, path: str) -> None:
    answer = await client.get(path)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "invalid_parameter"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[" * 5000 + b"]" * 5000, "nested too deeply"),
        (b'{"model": ' + b"7" * 5000 + b"}", "digits"),
        (b"\xff\xfe{}", "invalid JSON body"),
    ],
)
async def test_json_that_python_refuses_is_422(client: httpx.AsyncClient, body: bytes, message: str) -> None:
    answer = await client.post("/v1/jobs", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 422, answer.text
    assert message in answer.json()["error"]["message"]


async def test_json_job_bodies_get_the_ordinary_body_limit(client: httpx.AsyncClient) -> None:
    urls = [f"http://example.invalid/{i}.png" for i in range(600)]
    answer = await client.post("/v1/jobs", json={"model": PLUGIN_MODEL, "urls": urls})
    assert answer.status_code == 413, answer.text
