"""draw.js in the browser, on hand-built predictions: COCO RLE masks decode exactly as pycocotools
encodes them, and each render mode draws what it says."""

from __future__ import annotations

from typing import Any

import numpy as np
from pycocotools import mask as coco_mask

#: Calls `draw.js`'s export `name` with `args` (the module the page itself loads).
_CALL = """async ([name, args]) => {
  const url = document.querySelector("script[type=module]").src.replace(/app\\.js$/, "draw.js");
  const draw = await import(url);
  return draw[name](...args);
}"""

#: Draws `prediction` on a grey canvas of its size with `options`; returns the RGB pixels, row-major.
_DRAW = """async ([prediction, options]) => {
  const url = document.querySelector("script[type=module]").src.replace(/app\\.js$/, "draw.js");
  const { drawPrediction } = await import(url);
  const canvas = document.createElement("canvas");
  canvas.width = prediction.width;
  canvas.height = prediction.height;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "rgb(128, 128, 128)";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  const kept = drawPrediction(ctx, prediction, options);
  const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  return { kept: kept.length, pixels: Array.from(data.filter((_, i) => i % 4 < 3)) };
}"""


def draw(page: Any, prediction: dict[str, Any], **options: Any) -> tuple[int, np.ndarray]:
    result = page.evaluate(_DRAW, [prediction, options])
    pixels = np.array(result["pixels"], dtype=np.int32).reshape(prediction["height"], prediction["width"], 3)
    return int(result["kept"]), pixels


def test_rle_masks_decode_as_pycocotools_encodes_them(page: Any) -> None:
    page.goto("/")
    rng = np.random.default_rng(7)
    mask = np.zeros((37, 53), dtype=np.uint8)
    mask[5:30, 10:40] = rng.random((25, 30)) < 0.7
    rle = coco_mask.encode(np.asfortranarray(mask))
    counts = rle["counts"].decode()
    decoded = page.evaluate(_CALL, ["rleCounts", [counts]])
    assert sum(decoded) == mask.size and decoded[1::2] and sum(decoded[1::2]) == int(mask.sum())
    alpha = page.evaluate(
        """async ([rle]) => {
          const url = document.querySelector("script[type=module]").src.replace(/app\\.js$/, "draw.js");
          const { rleImageData } = await import(url);
          return Array.from(rleImageData(rle, "#FF3838", 255).data.filter((_, i) => i % 4 === 3));
        }""",
        [{"size": [37, 53], "counts": counts}],
    )
    assert np.array_equal(np.array(alpha).reshape(37, 53) > 0, mask > 0)


def test_render_modes_and_client_side_filtering(page: Any) -> None:
    page.goto("/")
    square = [[[20, 20], [20, 59], [59, 59], [59, 20]]]
    detections = [
        {
            "label": "dent",
            "class_id": 0,
            "score": 0.9,
            "box": {"x1": 10, "y1": 10, "x2": 70, "y2": 70},
            "polygons": square,
        },
        {"label": "dent", "class_id": 0, "score": 0.5, "box": {"x1": 12, "y1": 12, "x2": 72, "y2": 72}},
        {"label": "scratch", "class_id": 1, "score": 0.3, "box": {"x1": 80, "y1": 80, "x2": 95, "y2": 95}},
    ]
    prediction = {"task": "segment", "width": 100, "height": 100, "detections": detections}
    grey = np.array([128, 128, 128])
    kept, boxes = draw(page, prediction, mode="boxes", conf=0.0, iou=1)
    assert kept == 3 and (boxes[40, 10] != grey).any() and (boxes[40, 40] == grey).all()  # edge drawn, no mask
    assert draw(page, prediction, conf=0.4, iou=1)[0] == 2
    assert draw(page, prediction, conf=0.0, iou=0.5)[0] == 2  # the 0.5 dent overlaps the 0.9 one: suppressed
    _, masks = draw(page, prediction, mode="masks", conf=0.0, iou=0.5)
    assert (masks[40, 40] != grey).any() and (masks[40, 10] == grey).all()  # mask filled, no box
    _, only = draw(page, prediction, mode="mask_only", conf=0.0, iou=0.5)
    assert (only[40, 40] == [255, 56, 56]).all() and (only[5, 5] == 0).all()  # the class colour on black
    classes = {
        "task": "classify",
        "width": 100,
        "height": 100,
        "classes": [{"label": "cat", "class_id": 3, "score": 0.8}],
    }
    assert draw(page, classes, conf=0.9)[0] == 0 and draw(page, classes, conf=0.5)[0] == 1
