"""With API keys on, the page shows only its sign-in form until a right key is given; the key is
kept for the tab's session and never put in a URL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from tests.browser.conftest import expect
from tests.integration.conftest import ServerProcess, launch_server

KEY = "page-secret-key-1"


@pytest.fixture(scope="module")
def page_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A keyed server that loads no model at start (sign-in needs none)."""
    args = ("--api-keys", KEY, "--preload", "none")
    server = launch_server(args, log_dir=tmp_path_factory.mktemp("logs"), wait_ready=False)
    try:
        yield server
    finally:
        if server.process.poll() is None:
            server.stop()


def test_sign_in_refuses_a_wrong_key_and_keeps_the_right_one_for_the_session(page: Any, screenshot: Any) -> None:
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    page.goto("/")
    expect(page.locator("#signin")).to_be_visible()
    expect(page.locator("#nav")).to_be_hidden()
    screenshot(page, "signin")

    page.fill("#signin-key", "a-wrong-key")
    page.click("#signin button[type=submit]")
    expect(page.locator("#signin-error")).to_contain_text("refused")
    expect(page.locator("#nav")).to_be_hidden()

    page.fill("#signin-key", KEY)
    page.click("#signin button[type=submit]")
    expect(page.locator("#nav")).to_be_visible()
    expect(page.locator("#signin")).to_be_hidden()
    expect(page.locator("#try-model option[value=ssd-mobilenet-v2-coco]")).to_have_count(1)
    assert page.evaluate("() => sessionStorage.getItem('visionserve.apiKey')") == KEY

    page.reload()  # same tab: still signed in
    expect(page.locator("#nav")).to_be_visible()
    page.click("#sign-out")
    expect(page.locator("#signin")).to_be_visible()
    assert page.evaluate("() => sessionStorage.getItem('visionserve.apiKey')") is None
    assert urls and not [url for url in urls if KEY in url or "a-wrong-key" in url]
