"""Fixtures of the live-view browser tests (streams, jobs, webcam): one server for all of them, with
API keys on, so that every view is driven the hard way (the key in a header, signed tokens in the
URLs of <img>, EventSource and the WebSocket) and a server process starts once, not per module.

``page_server`` (overriding the parent's) is that server; ``live_page`` a new page signed in;
``api`` is an httpx client with the key that removes the streams a test left.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from tests.browser.conftest import EXPECT_TIMEOUT_MS
from tests.browser.live.live_support import KEY, blob_server, sign_in
from tests.integration.conftest import ServerProcess, wait_until_ready


@pytest.fixture(scope="session")
def page_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with blob_server(tmp_path_factory.mktemp("live-views"), "--api-keys", KEY) as server:
        yield server


@pytest.fixture
def live_page(page_server: ServerProcess, browser: Any) -> Iterator[Any]:
    """A new page, signed in, 1280x900. JavaScript and console errors fail the test, but for those
    holding one of the strings a test appends to ``live_page.allowed_errors`` (the browser logs every
    refused request, and some tests make one on purpose)."""
    wait_until_ready(page_server)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=page_server.url)
    context.set_default_timeout(EXPECT_TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.allowed_errors = ["status of 401"]  # the page's first request, before it signs in
    try:
        sign_in(page)
        yield page
    finally:
        context.close()
    unexpected = [e for e in errors if not any(allowed in e for allowed in page.allowed_errors)]
    assert not unexpected, f"the page logged errors: {unexpected}"


@pytest.fixture
def api(page_server: ServerProcess) -> Iterator[httpx.Client]:
    client = page_server.client(headers={"X-API-Key": KEY})
    yield client
    for stream in client.get("/v1/streams").json()["streams"]:
        client.delete(f"/v1/streams/{stream['id']}")
