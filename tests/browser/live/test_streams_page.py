"""The Streams view in a real browser against a real server with API keys on: watch a stream (MJPEG
frames arrive and change, its events are listed live, through signed tokens in the URLs, never the
key), start one with a zone and a line drawn on a snapshot, stop it from the list."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from tests.browser.conftest import expect
from tests.browser.live.live_support import HEIGHT, KEY, VIDEO, WIDTH
from tests.integration.streams_server import BLOB, wait_for

#: The pixels of the MJPEG <img> as drawn on a canvas (the frame the browser shows now).
IMAGE_PIXELS = """() => {
  const image = document.querySelector("#stream-viewer img");
  const canvas = document.createElement("canvas");
  canvas.width = image.naturalWidth;
  canvas.height = image.naturalHeight;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(image, 0, 0);
  return Array.from(ctx.getImageData(0, 0, canvas.width, canvas.height).data.filter((_, i) => i % 16 === 0));
}"""


def start_stream(api: httpx.Client, **body: Any) -> dict[str, Any]:
    response = api.post("/v1/streams", json={"source": VIDEO, "model": BLOB, "loop": True, **body})
    assert response.status_code == 201, response.text
    stream: dict[str, Any] = response.json()
    return stream


def watch(page: Any, stream_id: str) -> None:
    """Open the Streams view and press Watch on the row of ``stream_id``; wait for a frame."""
    page.goto("/#streams")
    page.locator(f'tr[data-stream="{stream_id}"] button', has_text="Watch").click()
    page.wait_for_function("() => document.querySelector('#stream-viewer img').naturalWidth > 0")


def test_watch_a_stream_frames_arrive_and_events_are_listed(live_page: Any, api: httpx.Client, screenshot: Any) -> None:
    page = live_page
    stream = start_stream(api)
    watch(page, stream["id"])
    for url in (
        page.locator("#stream-viewer img").get_attribute("src") or "",
        page.evaluate("() => performance.getEntriesByType('resource').map(e => e.name).join(' ')"),
    ):
        assert KEY not in url
    assert "token=" in (page.locator("#stream-viewer img").get_attribute("src") or "")
    assert page.locator("#stream-viewer img").evaluate("image => image.naturalWidth") == WIDTH
    first = page.evaluate(IMAGE_PIXELS)
    # the photo slides across the frames: a later frame differs
    page.wait_for_function(f"(first) => ({IMAGE_PIXELS})().some((v, i) => v !== first[i])", arg=first)
    rows = page.locator("#stream-detections tbody tr")
    rows.first.wait_for()
    assert rows.first.locator("td").nth(0).inner_text() == "person"
    assert "events" in page.locator("#stream-viewer .live-hint").inner_text()
    # events keep coming: the listed frame number moves on
    seen = page.locator("#stream-viewer .live-hint").inner_text()
    page.wait_for_function(
        "(seen) => document.querySelector('#stream-viewer .live-hint').textContent !== seen", arg=seen
    )
    row = page.locator(f'tr[data-stream="{stream["id"]}"]')
    expect(row.locator("td").nth(3)).to_have_text("running")  # the list refreshes every 2 s
    wait_for(lambda: api.get(f"/v1/streams/{stream['id']}").json()["stats"]["viewers"] == 1, what="one MJPEG viewer")
    screenshot(page, "streams-watch")
    row.get_by_role("button", name="Pause").click()
    page.locator(f'tr[data-stream="{stream["id"]}"][data-state="paused"]').wait_for()
    assert api.get(f"/v1/streams/{stream['id']}").json()["state"] == "paused"
    page.locator(f'tr[data-stream="{stream["id"]}"]').get_by_role("button", name="Resume").click()
    page.locator(f'tr[data-stream="{stream["id"]}"][data-state="running"]').wait_for()


def test_start_with_a_zone_and_a_line_drawn_on_a_snapshot_then_stop(
    live_page: Any, api: httpx.Client, screenshot: Any
) -> None:
    page = live_page
    page.goto("/#streams")
    form = page.locator("#stream-start")
    form.locator("input[name=source]").fill(VIDEO)
    form.locator("select[name=model]").select_option(BLOB)
    form.locator("input[name=loop]").check()
    form.get_by_role("button", name="Snapshot to draw zones").click()
    canvas = page.locator(".live-zone-canvas")
    canvas.wait_for()
    box = canvas.bounding_box()
    assert box is not None
    scale = box["width"] / WIDTH
    for x, y in ((0, 0), (160, 0), (160, 240), (0, 240)):  # the left half of the frame
        canvas.click(position={"x": max(1, x * scale - 1), "y": max(1, y * scale - 1)})
    form.get_by_role("button", name="Close zone").click()
    form.locator("select[aria-label='what a click draws']").select_option("line")
    canvas.click(position={"x": 160 * scale, "y": 10 * scale})
    canvas.click(position={"x": 160 * scale, "y": 230 * scale})
    assert form.locator(".live-shapes li").count() == 2
    screenshot(page, "streams-zones")
    assert api.get("/v1/streams").json()["streams"] == []  # the snapshot's stream is gone
    form.get_by_role("button", name="Start stream").click()

    page.wait_for_function("() => document.querySelector('#stream-viewer img').naturalWidth > 0")
    (stream,) = api.get("/v1/streams").json()["streams"]
    (zone,) = stream["options"]["zones"]
    assert zone["name"] == "zone-1"
    xs, ys = zip(*zone["polygon"], strict=True)
    assert max(xs) == pytest.approx(WIDTH // 2, abs=3) and min(xs) == pytest.approx(0, abs=3)
    assert max(ys) == pytest.approx(HEIGHT, abs=3) and min(ys) == pytest.approx(0, abs=3)
    (line,) = stream["options"]["lines"]
    assert line["start"][0] == pytest.approx(160, abs=3) and line["end"][1] == pytest.approx(230, abs=3)
    counts = page.locator("#stream-viewer .live-counts")
    counts.get_by_text("zone zone-1").wait_for()
    counts.get_by_text("line line-1").wait_for()

    page.locator(f'tr[data-stream="{stream["id"]}"] button', has_text="Stop").click()
    page.locator(f'tr[data-stream="{stream["id"]}"]').wait_for(state="detached")
    assert api.get("/v1/streams").json()["streams"] == []
    assert page.locator("#stream-viewer").is_hidden()


def test_bad_source_shows_the_servers_error(live_page: Any) -> None:
    page = live_page
    page.allowed_errors.append("status of 422")  # the browser logs the refused POST
    page.goto("/#streams")
    page.locator("#stream-start input[name=source]").fill("no-such-video.mp4")
    page.locator("#stream-start").get_by_role("button", name="Start stream").click()
    page.locator("#stream-start .live-error").wait_for()
    assert "no-such-video.mp4" in page.locator("#stream-start .live-error").inner_text()


def test_the_live_views_fit_a_phone(live_page: Any, api: httpx.Client, screenshot: Any) -> None:
    """At 390 px wide nothing is wider than the screen (tables scroll inside their card)."""
    page = live_page
    stream = start_stream(api)
    page.set_viewport_size({"width": 390, "height": 844})
    watch(page, stream["id"])
    page.locator("#stream-detections tbody tr").first.wait_for()
    for view in ("streams", "jobs", "webcam"):
        page.goto(f"/#{view}")
        page.locator(f"#view-{view}").wait_for()
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 390, view
        screenshot(page, f"{view}-phone")
