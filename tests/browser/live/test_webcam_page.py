"""The Webcam view in a real browser against a real server with API keys on: Chromium's fake camera
(``--use-fake-device-for-media-stream``) plays a Y4M file of the moving photo, the page sends its
frames over ``WS /v1/detect/ws`` (opened with a signed token, never the key), draws the boxes on the
overlay and shows the measured frame rate and latency."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from tests.browser.conftest import chromium_path
from tests.browser.live.live_support import KEY, sign_in, write_y4m
from tests.integration.conftest import ServerProcess
from tests.integration.streams_server import BLOB

#: [red, green, blue, alpha] summed over the overlay canvas: how much was drawn on it.
OVERLAY_INK = """() => {
  const canvas = document.querySelector(".live-overlay");
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let alpha = 0;
  for (let i = 3; i < data.length; i += 4) alpha += data[i] > 0 ? 1 : 0;
  return {alpha, width: canvas.width, height: canvas.height};
}"""


@pytest.fixture(scope="module")
def camera_browser(browser: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A second chromium of the same Playwright, whose camera plays the moving photo."""
    y4m = write_y4m(tmp_path_factory.mktemp("camera") / "camera.y4m")
    args = [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={y4m}",
    ]
    launched = browser.browser_type.launch(executable_path=chromium_path(), headless=True, args=args)
    yield launched
    launched.close()


@pytest.fixture
def camera_page(camera_browser: Any, page_server: ServerProcess) -> Iterator[Any]:
    context = camera_browser.new_context(viewport={"width": 1280, "height": 900}, base_url=page_server.url)
    context.set_default_timeout(30_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    sockets: list[str] = []
    page.on("websocket", lambda socket: sockets.append(socket.url))
    page.sockets = sockets
    sign_in(page, view="webcam")
    yield page
    context.close()
    assert not errors, errors


def test_webcam_frames_go_through_the_websocket_with_boxes_fps_and_latency(camera_page: Any, screenshot: Any) -> None:
    page = camera_page
    page.locator("#view-webcam select[name=model]").select_option(BLOB)
    page.locator("#webcam-toggle").click()
    page.wait_for_function("() => parseInt(document.querySelector('#webcam-frames').textContent) >= 10")
    assert page.locator("#webcam-detections li").first.inner_text() == "person 0.90"
    fps = float(page.locator("#webcam-fps").inner_text())
    latency = page.locator("#webcam-latency").inner_text()
    assert fps > 0 and latency.endswith(" ms") and float(latency.split()[0]) > 0
    ink = page.evaluate(OVERLAY_INK)
    assert (ink["width"], ink["height"]) == (320, 240)
    assert 0 < ink["alpha"] < 320 * 240 // 2  # a box and its label, not a filled frame
    (url,) = page.sockets
    assert "token=" in url and KEY not in url and f"model={BLOB}" in url
    screenshot(page, "webcam")
    page.locator("#webcam-toggle").click()
    assert page.locator("#webcam-toggle").inner_text() == "Start camera"
    assert page.locator("#view-webcam video").evaluate("video => video.srcObject === null")
