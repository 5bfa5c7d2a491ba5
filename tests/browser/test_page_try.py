""" "Try a model" and "Models & server" in a real browser, against one real server (built-in models)."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tests.browser.conftest import expect

#: Reads columns of the Try canvas (RGB), rows y0..y1; returns [[r, g, b] per row] per column.
_READ_COLUMNS = """([columns, y0, y1]) => {
  const ctx = document.getElementById("try-canvas").getContext("2d");
  return columns.map((x) => {
    const data = ctx.getImageData(x, y0, 1, y1 - y0).data;
    const rows = [];
    for (let i = 0; i < data.length; i += 4) rows.push([data[i], data[i + 1], data[i + 2]]);
    return rows;
  });
}"""

#: A DataTransfer holding one JPEG file given as base64 (what a drop or a paste carries).
_TRANSFER = """(b64) => {
  const transfer = new DataTransfer();
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  transfer.items.add(new File([bytes], "given.jpg", { type: "image/jpeg" }));
  return transfer;
}"""


def upload(page: Any, *files: Path) -> None:
    page.goto("/#try")
    expect(page.locator("#try-model")).to_have_value(re.compile("ssd-mobilenet"))
    if files:
        page.set_input_files("#try-file", [str(f) for f in files])


def answer(page: Any) -> dict[str, Any]:
    return dict(json.loads(page.locator("#try-json").text_content()))


def column_difference(page: Any, original: np.ndarray, columns: list[int], y0: int, y1: int) -> np.ndarray:
    """Per row, the largest channel difference between the canvas and ``original`` (BGR) over ``columns``."""
    drawn = np.array(page.evaluate(_READ_COLUMNS, [columns, y0, y1]), dtype=np.int32)  # (C, rows, RGB)
    source = original[y0:y1, columns, ::-1].transpose(1, 0, 2).astype(np.int32)
    return np.abs(drawn - source).max(axis=(0, 2))


def test_an_upload_is_drawn_listed_and_filtered_by_the_sliders_without_asking_again(
    page: Any, photo_jpegs: dict[str, Path], screenshot: Any
) -> None:
    predictions: list[str] = []
    page.on("request", lambda r: predictions.append(r.url) if "/predict" in r.url else None)
    upload(page, photo_jpegs["astronaut"])
    expect(page.locator("#try-list li").first).to_contain_text("person")
    document = answer(page)
    assert document["task"] == "detect" and (document["width"], document["height"]) == (512, 512)
    person = next(d for d in document["detections"] if d["label"] == "person")
    box = person["box"]
    original = cv2.imread(str(photo_jpegs["astronaut"]))
    y0, y1 = round(box["y1"]) + 30, round(box["y2"]) - 10
    x1 = round(box["x1"])
    edge = column_difference(page, original, [x1 - 1, x1, x1 + 1], y0, y1)
    assert np.median(edge) > 60, "the box's left edge is not drawn over the image"
    centre = round((box["x1"] + box["x2"]) / 2)
    inside = column_difference(page, original, [centre], y0 + 40, y1 - 40)
    assert np.median(inside) < 12, "the image under the box should be the photo itself"
    screenshot(page, "try-detect")

    page.locator("#try-conf").fill("0.1")
    many = int(page.locator("#try-count").text_content())
    assert many == page.locator("#try-list li").count() >= 2
    page.locator("#try-conf").fill("0.6")
    expect(page.locator("#try-list li")).to_have_count(sum(d["score"] >= 0.6 for d in document["detections"]))
    assert page.locator("#try-list li").count() < many
    page.locator("#try-iou").fill("0.05")  # stricter per-class NMS: never more
    assert page.locator("#try-list li").count() <= many
    assert len(predictions) == 1, predictions


def test_render_modes_and_download_of_the_annotated_image(page: Any, photo_jpegs: dict[str, Path]) -> None:
    upload(page, photo_jpegs["chelsea"])
    expect(page.locator("#try-list li").first).to_contain_text("cat")
    page.select_option("#try-mode", "mask_only")  # a detector has no masks: all black
    brightest = page.evaluate(
        """() => { const c = document.getElementById("try-canvas");
        const data = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
        return data.reduce((m, v, i) => (i % 4 < 3 && v > m ? v : m), 0); }"""
    )
    assert brightest == 0
    page.select_option("#try-mode", "boxes")
    with page.expect_download() as download:
        page.click("#try-download")
    saved = download.value
    assert saved.suggested_filename == "chelsea-annotated.png"
    image = cv2.imread(saved.path())
    assert image is not None and image.shape[:2] == (300, 451)


def test_a_batch_shows_as_a_gallery(page: Any, photo_jpegs: dict[str, Path], screenshot: Any) -> None:
    upload(page, photo_jpegs["chelsea"], photo_jpegs["coffee"])
    gallery = page.locator("#try-gallery button")
    expect(gallery).to_have_count(2)
    expect(page.locator("#try-list li").first).to_contain_text("cat")
    gallery.nth(1).click()
    expect(page.locator("#try-list")).to_contain_text("cup")
    assert (answer(page)["width"], answer(page)["height"]) == (600, 400)
    screenshot(page, "try-batch")
    page.set_viewport_size({"width": 390, "height": 844})  # a phone: one column, nothing wider than the screen
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    screenshot(page, "try-phone")


def test_a_classifier_shows_its_top_class(page: Any, photo_jpegs: dict[str, Path], screenshot: Any) -> None:
    upload(page, photo_jpegs["chelsea"])
    expect(page.locator("#try-list li").first).to_contain_text("cat")
    page.select_option("#try-model", "efficientnet-lite3")
    expect(page.locator("#try-list-title")).to_have_text("Top classes")
    expect(page.locator("#try-list li").first).to_contain_text("Egyptian cat")
    assert answer(page)["task"] == "classify"
    screenshot(page, "try-classify")


def test_models_view_lists_models_loads_unloads_and_benchmarks(page: Any, screenshot: Any) -> None:
    page.goto("/#models")
    rows = page.locator("#models-body tr")
    expect(rows).to_have_count(3)
    detector = page.locator('#models-body tr[data-model="ssd-mobilenet-v2-coco"]')
    expect(detector).to_contain_text("opencv_dnn")
    expect(detector).to_contain_text("300\u00d7300")
    expect(detector).to_contain_text("cpu")
    pose = page.locator('#models-body tr[data-model="movenet-lightning"]')
    pose.get_by_role("button", name="Load movenet-lightning").click()
    expect(pose.locator(".model-state")).to_have_text("loaded")
    pose.get_by_role("button", name="Unload movenet-lightning").click()
    expect(pose.locator(".model-state")).to_have_text("unloaded")
    pose.get_by_role("button", name="Load movenet-lightning").click()  # as it was, for the other tests
    expect(pose.locator(".model-state")).to_have_text("loaded")
    expect(page.locator("#server-ready")).to_have_text("ready")
    expect(page.locator("#server-rate")).to_have_text(re.compile(r"^\d+\.\d$"))
    page.fill("#bench-count", "6")
    page.fill("#bench-concurrency", "2")
    page.click("#bench-run")
    expect(page.locator("#bench-result")).to_have_text(re.compile(r"images/s, p50 [\d.]+ ms"))
    screenshot(page, "models")


def test_dropped_and_pasted_images_are_predicted(page: Any, photo_jpegs: dict[str, Path]) -> None:
    upload(page)
    data = base64.b64encode(photo_jpegs["chelsea"].read_bytes()).decode()
    transfer = page.evaluate_handle(_TRANSFER, data)
    page.dispatch_event("#try-drop", "drop", {"dataTransfer": transfer})
    expect(page.locator("#try-list li").first).to_contain_text("cat")
    data = base64.b64encode(photo_jpegs["coffee"].read_bytes()).decode()
    page.evaluate(
        "async (b64) => document.dispatchEvent(new ClipboardEvent('paste', {clipboardData: await ("
        + _TRANSFER
        + ")(b64)}))",
        data,
    )
    expect(page.locator("#try-list")).to_contain_text("cup")


def test_a_pose_model_draws_its_skeleton(page: Any, photo_jpegs: dict[str, Path], screenshot: Any) -> None:
    upload(page, photo_jpegs["astronaut"])
    expect(page.locator("#try-list li").first).to_contain_text("person")
    page.select_option("#try-model", "movenet-lightning")
    expect(page.locator("#try-json")).to_contain_text('"task": "pose"')
    (person,) = answer(page)["detections"]
    nose = next(p for p in person["keypoints"] if p["name"] == "nose")
    assert nose["score"] >= 0.2
    original = cv2.imread(str(photo_jpegs["astronaut"]))
    x, y = round(nose["x"]), round(nose["y"])
    drawn = column_difference(page, original, [x], y, y + 1)
    assert drawn[0] > 40, "no keypoint drawn at the nose"
    screenshot(page, "try-pose")


def test_a_camera_photo_is_predicted(page: Any) -> None:
    upload(page)
    page.click("#try-camera")
    page.wait_for_function("() => document.querySelector('#view-try video').readyState >= 2")
    page.get_by_role("button", name="Capture").click()
    expect(page.locator("#try-json")).to_contain_text('"width": 640')
    expect(page.locator("#view-try video")).to_be_hidden()
