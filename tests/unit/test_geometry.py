from __future__ import annotations

import numpy as np

from visionserve.core.geometry import ResizeMode, apply_fit, plan_fit


def test_stretch_maps_back() -> None:
    fit = plan_fit(600, 400, 300, 300, ResizeMode.STRETCH)
    boxes = fit.boxes_to_source(np.array([[30, 75, 150, 300]], np.float32))
    assert boxes.tolist() == [[60, 100, 300, 400]]


def test_letterbox_non_square_pads_evenly_and_maps_back() -> None:
    # 640x320 into 640x640: scale 1, 160 rows of padding above and below.
    fit = plan_fit(640, 320, 640, 640, ResizeMode.LETTERBOX)
    assert (fit.resized_width, fit.resized_height, fit.pad_x, fit.pad_y) == (640, 320, 0, 160)
    boxes = fit.boxes_to_source(np.array([[100, 200, 300, 400]], np.float32))
    assert boxes.tolist() == [[100, 40, 300, 240]]


def test_letterbox_downscale_and_clip() -> None:
    # 1280x720 into 640x640: scale 0.5 -> 640x360, pad_y = 140.
    fit = plan_fit(1280, 720, 640, 640, ResizeMode.LETTERBOX)
    assert (fit.resized_height, fit.pad_y) == (360, 140)
    boxes = fit.boxes_to_source(np.array([[-10, 130, 700, 320]], np.float32))
    np.testing.assert_allclose(boxes, [[0, 0, 1280, 360]])


def test_apply_fit_writes_only_the_region() -> None:
    fit = plan_fit(4, 2, 4, 4, ResizeMode.LETTERBOX)
    canvas = np.full((4, 4, 3), 114, np.uint8)
    apply_fit(np.zeros((2, 4, 3), np.uint8), fit, canvas)
    assert canvas[:, :, 0].tolist() == [[114] * 4, [0] * 4, [0] * 4, [114] * 4]
