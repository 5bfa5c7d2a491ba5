"""API keys are checked before any route code runs, on every route of the app, by construction."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from starlette.routing import Mount, Route

from visionserve.api.app import create_app
from visionserve.api.auth import body_key_candidates
from visionserve.models.repository import ModelRepository
from visionserve.settings import Settings

pytestmark = pytest.mark.anyio
KEY = "s3cret-key"
PUBLIC = {"/healthz", "/readyz", "/v2/health/live", "/v2/health/ready", "/"}
#: The web page's assets (``/static/<version>/...``) are public too: they hold no data.
PUBLIC_PREFIX = "/static/"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def keyed_app(tmp_path: Path) -> httpx.AsyncClient:
    settings = Settings(api_keys=(KEY,), data_dir=tmp_path, max_body_bytes=64 * 1024)
    app = create_app(settings, ModelRepository.scan(None), set_threads=lambda n: None)
    app.state.route_table = route_table(app.routes)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


def route_table(routes: Sequence[Any]) -> list[tuple[str, set[str]]]:
    """(path, methods) of every route in ``routes``, looking inside included routers (FastAPI 0.165
    lists them as one entry each, with their routes as ``effective_candidates``)."""
    table: list[tuple[str, set[str]]] = []
    for route in routes:
        if isinstance(route, Route | APIRoute):
            table.append((route.path, set(route.methods or {"GET"})))
        elif isinstance(route, Mount):
            table.append((route.path + "/app.js", {"GET"}))
        elif hasattr(route, "effective_candidates"):
            # a websocket route's candidate has no path of its own: its starlette route has it
            table += [
                (c.path or c.starlette_route.path, set(c.methods or {"GET"})) for c in route.effective_candidates()
            ]
        else:
            raise AssertionError(f"unexpected route {route!r}")
    return table


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


async def test_every_route_but_the_public_probes_refuses_a_missing_key(tmp_path: Path) -> None:
    client = keyed_app(tmp_path)
    app = client._transport.app  # type: ignore[attr-defined]
    checked = 0
    async with client:
        for path, methods in app.state.route_table:
            for method in sorted(methods - {"HEAD"}):
                answer = await client.request(method, concrete(path), content=b"x" * 100)
                if path in PUBLIC or path.startswith(PUBLIC_PREFIX):
                    assert answer.status_code != 401, path
                else:
                    assert answer.status_code == 401, (method, path, answer.text)
                    checked += 1
    assert checked >= 40


async def test_deepstack_form_keys_are_found_without_parsing_and_wrong_ones_refused(tmp_path: Path) -> None:
    image = b"\x93NUMPY\x01\x00v\x00{'descr': '|u1', 'fortran_order': False, 'shape': (99999999, 99999999, 3), }"
    async with keyed_app(tmp_path) as client:
        wrong = await client.post("/v1/vision/detection", files={"image": ("a.npy", image)}, data={"api_key": "guess"})
        assert wrong.status_code == 401 and wrong.json()["error"] == "Incorrect api key"
        missing = await client.post("/v1/vision/detection", files={"image": ("a.npy", image)})
        assert missing.status_code == 401 and missing.json()["success"] is False
        # The key after a large image part passes; the route then runs (no models here: 503).
        big = b"\xff" * 40_000
        right = await client.post("/v1/vision/detection", files={"image": ("a.jpg", big)}, data={"api_key": KEY})
        assert right.status_code == 503 and right.json()["success"] is False
        too_big = await client.post("/v1/vision/detection", files={"image": ("a.jpg", b"\xff" * 70_000)})
        assert too_big.status_code == 413


async def test_roboflow_keys_in_the_body_or_query_pass_and_others_do_not(tmp_path: Path) -> None:
    async with keyed_app(tmp_path) as client:
        denied = await client.post("/infer/object_detection", json={"api_key": "guess", "model_id": "m"})
        assert denied.status_code == 401 and set(denied.json()) == {"message"}
        body = await client.post("/model/add", json={"model_id": "m", "api_key": KEY})
        assert body.status_code == 503
        query = await client.get("/model/registry", params={"api_key": KEY})
        assert query.status_code == 503
        elsewhere = await client.get("/v1/models", params={"api_key": KEY})  # query keys only for the SDK's paths
        assert elsewhere.status_code == 401


def test_body_key_candidates_cover_the_three_encodings() -> None:
    multipart = b'--b\r\nContent-Disposition: form-data; name="api_key"\r\n\r\nk1\r\n--b--\r\n'
    assert list(body_key_candidates(multipart)) == ["k1"]
    assert list(body_key_candidates(b'{"model_id": "m", "api_key" : "k\\u0032"}')) == ["k2"]
    assert list(body_key_candidates(b"a=1&api_key=k%203")) == ["k 3"]
