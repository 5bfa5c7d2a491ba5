"""The web page in a real browser: Playwright for Python driving Debian's chromium, against a real
server process (the helpers of ``tests/integration/conftest.py``).

Playwright never downloads a browser here: chromium is launched from ``$VISIONSERVE_CHROMIUM`` or
``chromium`` on the PATH (``apt-get install chromium``; ``.ci/run`` does it), headless, with
``--no-sandbox`` (CI runs as root) and chromium's fake camera (``getUserMedia`` answers at once with
a generated 640x480 test pattern). When playwright or chromium is missing the tests skip with the
reason, except with ``VISIONSERVE_REQUIRE_SERVICES=1`` (CI), where they fail.

Fixtures: ``browser`` (one per module), ``page_server`` (one server per session, started while
the browser launches; a module that needs other settings overrides it, e.g. with
``tests.integration.conftest.running_server``), ``page`` (a fresh context and page per test, with
the page's JavaScript and console errors failing the test), ``photo_jpegs`` (the scikit-image
photos as JPEG files). :func:`screenshot` writes a PNG to ``$VISIONSERVE_SCREENSHOTS``
or ``<basetemp>/screenshots`` and prints where.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import PHOTOS, encode, photo

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture skips (or fails, in CI) and says why
    expect = None
from tests.integration.conftest import ServerProcess, launch_server, wait_until_ready

#: Milliseconds Playwright waits for what a test expects on the page.
EXPECT_TIMEOUT_MS = 30_000


def _unavailable(reason: str) -> None:
    if os.environ.get("VISIONSERVE_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason}, and VISIONSERVE_REQUIRE_SERVICES=1 requires the browser tests to run")
    pytest.skip(reason)


def chromium_path() -> str | None:
    """The chromium executable: ``$VISIONSERVE_CHROMIUM``, else ``chromium`` on the PATH."""
    return os.environ.get("VISIONSERVE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless chromium (see the module doc); ``expect`` waits up to :data:`EXPECT_TIMEOUT_MS`.

    One per module, not per session: Playwright's sync API runs an event loop in the main thread
    for as long as it is open, and the asyncio tests that run after these would find it running."""
    if expect is None:
        _unavailable("playwright is not installed (pip install -e '.[dev]')")
    from playwright.sync_api import sync_playwright

    expect.set_options(timeout=EXPECT_TIMEOUT_MS)  # a loaded CI machine is slower than the 5 s default

    executable = chromium_path()
    if executable is None:
        _unavailable("chromium is not installed (apt-get install chromium; .ci/run does)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable,
            headless=True,
            # a fake camera (a generated test pattern) that getUserMedia gets without asking
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
            ],
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="session")
def page_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The server the pages are opened on: the built-in models (the detector preloaded, the
    classifier and the pose model loading on their first request), one instance each. It starts
    without waiting, so that the browser launches while it loads; ``page`` waits until it is ready.
    A module that needs other settings overrides this fixture (any scope) with its own server."""
    server = launch_server(("--instances", "1"), log_dir=tmp_path_factory.mktemp("logs"), wait_ready=False)
    try:
        yield server
    finally:
        if server.process.poll() is None:
            server.stop()


@pytest.fixture
def page(page_server: ServerProcess, browser: Any) -> Iterator[Any]:
    """A new page (own context: own sessionStorage) for ``page_server`` (relative URLs: ``page.goto("/")``),
    1280x900, once the server is ready. JavaScript errors and console errors fail the test (but for
    refused requests, which sign-in tests make on purpose)."""
    wait_until_ready(page_server)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=page_server.url)
    context.set_default_timeout(EXPECT_TIMEOUT_MS)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(f"page error: {error}"))
    opened.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    try:
        yield opened
    finally:
        context.close()
    unexpected = [e for e in errors if "status of 401" not in e]
    assert not unexpected, f"the page logged errors: {unexpected}"


@pytest.fixture(scope="session")
def photo_jpegs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """scikit-image's photos (astronaut, chelsea, coffee) as JPEG files; name -> path."""
    folder = tmp_path_factory.mktemp("page-photos")
    paths = {}
    for name in PHOTOS:
        path = folder / f"{name}.jpg"
        path.write_bytes(encode(photo(name), ".jpg", IMWRITE_JPEG_QUALITY=92))
        paths[name] = path
    return paths


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get("VISIONSERVE_SCREENSHOTS")
    folder = Path(configured) if configured else tmp_path_factory.getbasetemp() / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def screenshot(screenshot_dir: Path) -> Any:
    """``screenshot(page, name)``: a full-page PNG ``<name>.png`` in the screenshot folder."""

    def take(page: Any, name: str) -> Path:
        path = screenshot_dir / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        print(f"screenshot: {path}")
        return path

    return take
