"""The web page: ``GET /`` serves ``index.html``, ``/static/<version>/...`` its modules and styles.

The files live in :data:`visionserve.web.STATIC_DIR` (no build step). ``<version>`` is the package
version and a digest of the files, so a changed file gets a new URL: assets are cached for a year
(``immutable``), the page itself is revalidated on every load (``no-cache``), and an upgraded
server's page loads its own modules, never a stale copy. Every other answer of the app (the API's
JSON, annotated images, crops, metrics) is ``Cache-Control: no-store`` unless its route says
otherwise (:class:`NoStoreMiddleware`).

The page and its assets are public even when API keys are on (they hold no data; the page asks for
a key and sends it as a header to the API). They carry a Content-Security-Policy that forbids inline
script and framing, and the usual security headers (:data:`PAGE_HEADERS`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from starlette.datastructures import MutableHeaders
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from visionserve import __version__
from visionserve.web import STATIC_DIR

#: Where the assets are mounted; the page's URLs are ``static/<version>/<file>``.
STATIC_PREFIX = "/static/"
#: What ``index.html`` says where its assets' folder goes (replaced when the page is served).
_STATIC_MARK = "__STATIC__"

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' blob: data:",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
#: Headers of the page and of every asset.
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Permissions-Policy": "camera=(self), microphone=(), geolocation=()",
}
_ASSET_CACHE = "public, max-age=31536000, immutable"


def asset_version(folder: Path = STATIC_DIR) -> str:
    """``<package version>-<digest>``: the first 10 hex digits of the SHA-256 of every file's
    relative path and bytes under ``folder`` (sorted), so any change to a file changes it."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return f"{__version__}-{digest.hexdigest()[:10]}"


@dataclass(frozen=True)
class _RouteLabel:
    """What the request metrics read as the route of an asset (``scope["route"].path``), so that
    assets count under one route, not as ``unmatched``."""

    path: str


class _Assets(StaticFiles):
    """Static files with the page's security headers and a long, immutable cache lifetime (the
    URL changes with the files)."""

    def __init__(self, directory: Path, route: str) -> None:
        super().__init__(directory=directory)
        self._route = _RouteLabel(route)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = self._route
        await super().__call__(scope, receive, send)

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(PAGE_HEADERS)
        if response.status_code in {200, 304}:
            response.headers["Cache-Control"] = _ASSET_CACHE
        return response


def install_web(app: FastAPI, folder: Path = STATIC_DIR) -> str:
    """Serve ``folder/index.html`` at ``GET /`` and ``folder`` under ``/static/<version>/``;
    returns the version."""
    version = asset_version(folder)
    base = f"{STATIC_PREFIX.strip('/')}/{version}"
    page = (folder / "index.html").read_text(encoding="utf-8").replace(_STATIC_MARK, base)

    async def index() -> HTMLResponse:
        return HTMLResponse(page, headers={**PAGE_HEADERS, "Cache-Control": "no-cache"})

    app.add_api_route("/", index, methods=["GET", "HEAD"], include_in_schema=False, name="web_page")
    mounted = f"{STATIC_PREFIX}{version}"
    app.mount(mounted, _Assets(folder, route=mounted + "/{path}"), name="web_static")
    return version


class NoStoreMiddleware:
    """``Cache-Control: no-store`` (and ``X-Content-Type-Options: nosniff``) on every HTTP answer
    that does not set them itself: API answers and annotated images are never cached, so a browser
    never shows the result of a previous upload."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("Cache-Control", "no-store")
                headers.setdefault("X-Content-Type-Options", "nosniff")
            await send(message)

        await self.app(scope, receive, sending)
