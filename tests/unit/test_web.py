"""The web page's serving: versioned assets, cache headers, security headers, public with keys on."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from visionserve.api.app import create_app
from visionserve.api.web import asset_version, install_web
from visionserve.models.repository import ModelRepository
from visionserve.settings import Settings
from visionserve.web import STATIC_DIR

pytestmark = pytest.mark.anyio
KEY = "page-key"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def client_of(tmp_path: Path, **settings: object) -> httpx.AsyncClient:
    app = create_app(Settings(data_dir=tmp_path, **settings), ModelRepository.scan(None), set_threads=lambda n: None)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


def asset_urls(page: str) -> list[str]:
    return re.findall(r'(?:src|href)="(static/[^"]+)"', page)


async def test_the_page_links_versioned_assets_with_security_headers(tmp_path: Path) -> None:
    async with client_of(tmp_path) as client:
        page = await client.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy and "unsafe" not in policy
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["referrer-policy"] == "no-referrer"
        assert page.headers["cache-control"] == "no-cache"
        head = await client.head("/")  # uptime checks and link previews ask with HEAD
        assert (
            head.status_code == 200
            and head.headers["content-security-policy"] == page.headers["content-security-policy"]
        )
        urls = asset_urls(page.text)
        version = asset_version()
        assert sorted(urls) == [f"static/{version}/{name}" for name in ("app.js", "live.css", "style.css")]
        script = await client.get(f"/static/{version}/app.js")
        assert script.status_code == 200 and "javascript" in script.headers["content-type"]
        assert "immutable" in script.headers["cache-control"]
        assert script.headers["content-security-policy"] == policy
        imported = await client.get(f"/static/{version}/draw.js")
        assert "export function drawPrediction" in imported.text
        assert (await client.get("/static/0.0.0-old/app.js")).status_code == 404


async def test_api_answers_are_never_cached(tmp_path: Path) -> None:
    async with client_of(tmp_path) as client:
        for path in ("/v1/models", "/healthz", "/metrics", "/v1/nowhere"):
            answer = await client.get(path)
            assert answer.headers["cache-control"] == "no-store", path


async def test_the_page_and_its_assets_need_no_key_but_the_api_does(tmp_path: Path) -> None:
    async with client_of(tmp_path, api_keys=(KEY,)) as client:
        page = await client.get("/")
        assert page.status_code == 200
        for url in asset_urls(page.text):
            assert (await client.get("/" + url)).status_code == 200
        assert (await client.get("/v1/models")).status_code == 401
        assert (await client.get("/static/../v1/models")).status_code in {401, 404}


def test_the_version_changes_with_any_file(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text('<script type="module" src="__STATIC__/app.js"></script>')
    (tmp_path / "app.js").write_text("export const a = 1;\n")
    before = asset_version(tmp_path)
    (tmp_path / "app.js").write_text("export const a = 2;\n")
    after = asset_version(tmp_path)
    assert before != after and before.split("-")[0] == after.split("-")[0]
    app = FastAPI()
    assert install_web(app, tmp_path) == after


def test_no_inline_script_style_or_html_injection_in_the_page() -> None:
    """The CSP forbids inline script and style attributes: the page must not need them, and the
    modules build the DOM from text (server labels are never parsed as HTML)."""
    page = (STATIC_DIR / "index.html").read_text()
    for tag in re.findall(r"<script\b[^>]*>", page):
        assert 'src="__STATIC__/' in tag, tag
    assert not re.search(r"\son[a-z]+=", page) and " style=" not in page
    for module in STATIC_DIR.glob("*.js"):
        text = module.read_text()
        assert "innerHTML" not in text and "eval(" not in text and "document.write" not in text, module.name
