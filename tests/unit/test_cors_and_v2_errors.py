"""CORS settings and middleware, and the KServe error shape under /v2, in process."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from visionserve.api.app import create_app
from visionserve.api.errors import kserve_error_body
from visionserve.errors import ConfigError
from visionserve.models.repository import ModelRepository
from visionserve.settings import Settings

pytestmark = pytest.mark.anyio
KEY = "k-123"
PREFLIGHT = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-api-key"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def client_for(tmp_path: Path, **settings: object) -> httpx.AsyncClient:
    app = create_app(Settings(data_dir=tmp_path, **settings), ModelRepository.scan(None), set_threads=lambda n: None)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_a_wildcard_never_allows_credentials(tmp_path: Path) -> None:
    async with client_for(tmp_path, cors_origins="*", api_keys=KEY) as client:
        preflight = await client.options("/v1/detect", headers={"Origin": "https://any.example", **PREFLIGHT})
        assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in preflight.headers
        # No lifespan here, so no service: the answer is a 503, with the CORS headers all the same.
        simple = await client.get("/v1/models", headers={"Origin": "https://any.example", "X-API-Key": KEY})
        assert simple.status_code == 503 and simple.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in simple.headers


async def test_cors_is_off_by_default(tmp_path: Path) -> None:
    async with client_for(tmp_path, api_keys=KEY) as client:
        preflight = await client.options("/v1/detect", headers={"Origin": "https://any.example", **PREFLIGHT})
        assert preflight.status_code == 401 and "access-control-allow-origin" not in preflight.headers


async def test_listed_origins_only(tmp_path: Path) -> None:
    async with client_for(tmp_path, cors_origins="https://a.example/, http://b.example:8080") as client:
        for origin in ("https://a.example", "http://b.example:8080"):
            answer = await client.options("/v2/models/x/config", headers={"Origin": origin, **PREFLIGHT})
            assert answer.headers["access-control-allow-origin"] == origin
            assert answer.headers["access-control-allow-credentials"] == "true"
        other = await client.options("/v2/models/x/config", headers={"Origin": "https://c.example", **PREFLIGHT})
        assert other.status_code == 400 and "access-control-allow-origin" not in other.headers


@pytest.mark.parametrize("origins", ["*,https://a.example", "ftp://a.example", "https://a.example/app", "a.example"])
def test_bad_origins_are_refused(origins: str) -> None:
    with pytest.raises(ConfigError, match="cors_origins"):
        Settings.load(cors_origins=origins)


async def test_v2_errors_raised_before_any_route_are_kserve_shaped(tmp_path: Path) -> None:
    async with client_for(tmp_path, api_keys=KEY, max_body_bytes=2048) as client:
        refused = await client.get("/v2/models/x/stats")
        assert refused.status_code == 401 and set(refused.json()) == {"error"}
        assert "API key" in refused.json()["error"] and refused.headers["www-authenticate"]
        too_big = await client.post("/v2/models/x/infer", content=b"x" * 4000, headers={"X-API-Key": KEY})
        assert too_big.status_code == 413 and isinstance(too_big.json()["error"], str)
        unknown = await client.get("/v2/nothing/here", headers={"X-API-Key": KEY})
        assert unknown.status_code == 404 and unknown.json() == {"error": "no route GET /v2/nothing/here"}
        assert int(unknown.headers["content-length"]) == len(unknown.content)
        native = await client.get("/v1/nothing", headers={"X-API-Key": KEY})
        assert native.json()["error"]["code"] == "not_found"


def test_kserve_error_body_keeps_what_is_not_ours() -> None:
    assert kserve_error_body(b'{"error": {"code": "c", "message": "m", "id": "1"}}') == b'{"error":"m"}'
    for body in (b'{"error": "already"}', b"plain text", b"[1, 2]", b'{"error": {"code": 1}}'):
        assert kserve_error_body(body) == body
