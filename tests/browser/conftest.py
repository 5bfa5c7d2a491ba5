"""The web page in a real browser: Playwright for Python driving Debian's chromium, against a real
server process (the helpers of ``tests/integration/conftest.py``).

Playwright never downloads a browser here: chromium is launched from ``$VISIONSERVE_CHROMIUM`` or
``chromium`` on the PATH (``apt-get install chromium``; ``.ci/run`` does it), headless, with
``--no-sandbox`` (CI runs as root). When playwright or chromium is missing the tests skip with the
reason, except with ``VISIONSERVE_REQUIRE_SERVICES=1`` (CI), where they fail.

Fixtures: ``browser`` (one per session), ``page_server`` (one server per test module: override it
in a module for other settings, with :func:`running_server`), ``page`` (a fresh context and page
per test, with the page's console errors collected and failing the test), ``photo_jpegs`` (the
scikit-image photos as JPEG files). :func:`screenshot` writes a PNG to ``$VISIONSERVE_SCREENSHOTS``
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
from tests.integration.conftest import ServerProcess, running_server

#: Milliseconds Playwright waits for what a test expects on the page.
EXPECT_TIMEOUT_MS = 30_000


def _unavailable(reason: str) -> None:
    if os.environ.get("VISIONSERVE_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason}, and VISIONSERVE_REQUIRE_SERVICES=1 requires the browser tests to run")
    pytest.skip(reason)


def chromium_path() -> str | None:
    """The chromium executable: ``$VISIONSERVE_CHROMIUM``, else ``chromium`` on the PATH."""
    return os.environ.get("VISIONSERVE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install -e '.[dev]')")
    executable = chromium_path()
    if executable is None:
        _unavailable("chromium is not installed (apt-get install chromium; .ci/run does)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def page_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with the built-in models (the detector preloaded, the classifier and the pose
    model loading on their first request)."""
    with running_server(log_dir=tmp_path_factory.mktemp("logs")) as server:
        yield server


@pytest.fixture
def page(browser: Any, page_server: ServerProcess) -> Iterator[Any]:
    """A new page (own context: own sessionStorage) at the server's URL, 1280x900. JavaScript errors
    and console errors fail the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=page_server.url)
    context.set_default_timeout(EXPECT_TIMEOUT_MS)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(f"page error: {error}"))
    opened.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    opened.console_errors = errors  # type: ignore[attr-defined]
    try:
        yield opened
    finally:
        context.close()
    expected = [e for e in errors if "401" not in e]  # sign-in tests make the browser log refused requests
    assert not expected, f"the page logged errors: {expected}"


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
