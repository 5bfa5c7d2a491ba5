"""The Jobs view in a real browser against a real server with API keys on: submit images (files, then
a folder) and a video, follow the job to its end, see its results with annotated images and crops
(fetched with the key header), and download them as JSON and COCO."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
from tests.browser.conftest import expect
from tests.browser.live.live_support import write_frames
from tests.integration.streams_server import BLOB
from tests.streams_support import write_moving_video

#: How many <img> of the gallery have loaded.
LOADED_IMAGES = (
    "() => [...document.querySelectorAll('#job-gallery img')].filter(i => i.complete && i.naturalWidth > 0).length"
)


def submit(page: Any, field: str, files: Any) -> str:
    """Choose ``files`` in the input ``field``, submit, and wait for the job to succeed; its id."""
    page.goto("/#jobs")
    form = page.locator("#job-submit")
    form.locator("select[name=model]").select_option(BLOB)
    page.locator(field).set_input_files(files)
    form.get_by_role("button", name="Submit job").click()
    page.locator("#job-state[data-state=succeeded]").wait_for()
    return page.locator("#job-title").inner_text().removeprefix("Job ")


def download(page: Any, name: str) -> Any:
    with page.expect_download() as info:
        page.locator("#job-detail").get_by_role("button", name=name).click()
    return json.loads(Path(info.value.path()).read_text())


def test_submit_images_follow_the_job_and_browse_its_results(
    live_page: Any, api: httpx.Client, tmp_path: Path, screenshot: Any
) -> None:
    page = live_page
    frames = write_frames(tmp_path / "frames", 3)
    job_id = submit(page, "#job-files", [str(path) for path in frames])
    assert api.get(f"/v1/jobs/{job_id}").json()["progress"]["done"] == 3
    cards = page.locator("#job-gallery article")
    assert cards.count() == 3
    # each item: its annotated copy and one crop, and its detection listed
    page.wait_for_function(f"() => ({LOADED_IMAGES})() === 6")
    for index in range(3):
        card = page.locator(f'#job-gallery article[data-index="{index}"]')
        assert card.locator(".live-detections li").inner_text() == "person 0.90"
        assert card.locator(".live-crops img").count() == 1
    annotated = page.locator('#job-gallery article[data-index="0"] .live-item-media img')
    assert annotated.evaluate("image => image.naturalWidth") == 320
    assert (annotated.get_attribute("src") or "").startswith("blob:")
    row = page.locator(f'#jobs-table tr[data-job="{job_id}"]')
    expect(row.locator("td").nth(2)).to_have_text("succeeded")  # the list refreshes every 2 s
    screenshot(page, "jobs-results")

    document = download(page, "Download JSON")
    assert [item["source"] for item in document["items"]] == [path.name for path in frames]
    assert all(item["detections"][0]["label"] == "person" for item in document["items"])
    coco = download(page, "Download COCO")
    assert len(coco["images"]) == 3 and len(coco["annotations"]) == 3


def test_a_folder_of_images_leaves_other_files_out(live_page: Any, api: httpx.Client, tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    write_frames(folder, 2)
    (folder / "notes.txt").write_text("not an image")
    job_id = submit(live_page, "#job-folder", str(folder))
    items = api.get(f"/v1/jobs/{job_id}").json()["results"]
    assert sorted(item["source"] for item in items) == ["folder/frame-00.png", "folder/frame-01.png"]


def test_a_video_job_shows_its_tracks(live_page: Any, tmp_path: Path, screenshot: Any) -> None:
    video = write_moving_video(tmp_path / "walk.mp4", frames=20, fps=10.0)
    submit(live_page, "#job-files", str(video))
    gallery = live_page.locator("#job-gallery")
    gallery.get_by_text("Video: 1 tracks").wait_for()
    assert "#1 person: frames" in gallery.inner_text()
    frames = live_page.locator("#job-frames tbody tr")
    assert frames.count() == 20
    assert "person 0.90" in frames.nth(19).inner_text()
    assert "frames/s" in live_page.locator("#job-summary").inner_text()
    assert live_page.locator("#job-detail").get_by_role("button", name="Download annotated video").is_visible()
    screenshot(live_page, "jobs-video")
