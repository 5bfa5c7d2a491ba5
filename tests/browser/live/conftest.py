"""Fixtures of the live-view browser tests (streams, jobs, webcam): one server for all of them, with
API keys on, so that every view is driven the hard way (the key in a header, signed tokens in the
URLs of <img>, EventSource and the WebSocket) and a server process starts once, not per module.

``page_server`` (overriding the parent's) is that server; ``live_page`` is the parent's ``page``
signed in; ``api`` is an httpx client with the key that removes the streams a test left.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from tests.browser.live.live_support import KEY, blob_server, sign_in
from tests.integration.conftest import ServerProcess


@pytest.fixture(scope="session")
def page_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with blob_server(tmp_path_factory.mktemp("live-views"), "--api-keys", KEY) as server:
        yield server


@pytest.fixture
def live_page(page: Any) -> Any:
    sign_in(page)
    return page


@pytest.fixture
def api(page_server: ServerProcess) -> Iterator[httpx.Client]:
    client = page_server.client(headers={"X-API-Key": KEY})
    yield client
    for stream in client.get("/v1/streams").json()["streams"]:
        client.delete(f"/v1/streams/{stream['id']}")
