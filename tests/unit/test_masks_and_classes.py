"""The compact mask value, its rasterisation and encodings, classifications, and the shared rows."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from visionserve.core.classifications import Classifications
from visionserve.core.detections import Detections
from visionserve.core.geometry import ResizeMode, plan_fit
from visionserve.core.masks import InstanceMasks, MaskPatch
from visionserve.core.prediction import boxes_of
from visionserve.errors import WrongTaskError
from visionserve.models.labels import Labels
from visionserve.render.mask_encoding import MaskFormat, polygons, rle, run_lengths
from visionserve.render.rows import box_rows, class_rows


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def disc(height: int, width: int, cx: float, cy: float, r: float) -> np.ndarray:
    ys, xs = np.mgrid[0:height, 0:width]
    return (xs + 0.5 - cx) ** 2 + (ys + 0.5 - cy) ** 2 <= r * r


def test_dense_round_trip_is_exact_at_the_same_resolution() -> None:
    dense = np.stack([disc(60, 80, 30, 20, 12), disc(60, 80, 60, 40, 8)])
    masks = InstanceMasks.from_dense(dense)
    assert [b.shape for b in masks.bitmaps] == [(24, 24), (16, 16)]  # cropped, not 60x80
    boxes = masks.regions
    detections = Detections(boxes, [0.9, 0.8], [0, 1], masks=masks)
    for i in range(2):
        assert (detections.mask_patch(i, 60, 80).dense(60, 80) == dense[i]).all()


def test_scaled_masks_follow_their_boxes() -> None:
    # A disc at quarter resolution scaled x4 matches the disc drawn at full resolution.
    small = disc(40, 50, 20, 15, 8)
    masks = InstanceMasks.from_dense(small[None])
    detections = Detections(masks.regions, [0.9], [0], masks=masks).scaled(4.0, 4.0)
    big = detections.mask_patch(0, 160, 200).dense(160, 200)
    assert iou(big, disc(160, 200, 80, 60, 32)) >= 0.95


def test_letterbox_mapping_of_a_mask_region() -> None:
    # A 640x320 source letterboxed into 320x320: mask regions map back like boxes, unclipped.
    fit = plan_fit(640, 320, 320, 320, ResizeMode.LETTERBOX)
    region_in_input = np.array([[10.0, 60.0, 110.0, 190.0]], np.float32)  # reaches into the top padding
    mapped = fit.boxes_to_source(region_in_input, clip=False)
    assert mapped.tolist() == [[20.0, -40.0, 220.0, 220.0]]
    assert fit.boxes_to_source(region_in_input).tolist() == [[20.0, 0.0, 220.0, 220.0]]


def test_patch_is_clipped_to_the_box_and_the_image() -> None:
    masks = InstanceMasks((np.ones((4, 4), np.uint8) * 255,), np.array([[-10, -10, 30, 30]], np.float32))
    patch = masks.patch(0, (5, 5, 15, 12), 20, 20)
    assert (patch.x, patch.y, patch.mask.shape) == (5, 5, (7, 10))
    assert patch.mask.all()


@pytest.mark.parametrize("seed", range(40))
def test_rle_matches_pycocotools_on_random_patches(seed: int) -> None:
    rng = np.random.default_rng(seed)
    height, width = (int(v) for v in rng.integers(1, 40, 2))
    h, w = int(rng.integers(1, height + 1)), int(rng.integers(1, width + 1))
    y, x = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
    patch = MaskPatch(x, y, rng.random((h, w)) < rng.random())
    dense = patch.dense(height, width)
    expected = coco_mask.encode(np.asfortranarray(dense.astype(np.uint8)))
    encoded = rle(patch, height, width)
    assert encoded == {"size": [height, width], "counts": expected["counts"].decode()}
    assert (coco_mask.decode({"size": [height, width], "counts": encoded["counts"]}) == dense).all()


def test_run_lengths_edge_cases() -> None:
    assert run_lengths(MaskPatch(0, 0, np.zeros((2, 2), bool)), 2, 2) == [4]
    assert run_lengths(MaskPatch(0, 0, np.ones((2, 2), bool)), 2, 2) == [0, 4]
    # Two full columns join into one run across the column boundary.
    assert run_lengths(MaskPatch(1, 0, np.ones((3, 2), bool)), 3, 4) == [3, 6, 3]


def test_polygons_trace_each_part_largest_first() -> None:
    mask = np.zeros((30, 40), bool)
    mask[2:12, 3:13] = True  # 10x10
    mask[20:24, 30:34] = True  # 4x4
    found = polygons(MaskPatch(100, 50, mask))
    assert len(found) == 2
    xs = [p[0] for p in found[0]]
    ys = [p[1] for p in found[0]]
    assert (min(xs), max(xs), min(ys), max(ys)) == (103.5, 112.5, 52.5, 61.5)
    assert polygons(MaskPatch(0, 0, np.zeros((3, 3), bool))) == []


def test_classifications_sorted_filtered_and_top() -> None:
    classes = Classifications.from_scores(np.array([0.1, 0.6, 0.05, 0.25], np.float32))
    assert classes.class_id.tolist() == [1, 3, 0, 2]
    assert classes.top == (1, pytest.approx(0.6))
    assert classes.filter(top_k=2).class_id.tolist() == [1, 3]
    assert classes.filter(min_confidence=0.2).class_id.tolist() == [1, 3]
    assert classes.filter(classes=frozenset({0, 2})).class_id.tolist() == [0, 2]
    assert classes.scaled(2, 2) is classes
    with pytest.raises(ValueError, match=r"confidence must have shape \(2,\)"):
        Classifications(np.array([1, 2]), np.array([0.5]))
    with pytest.raises(WrongTaskError, match="gives no boxes"):
        boxes_of(classes, "cls")


def test_rows_sorted_labelled_with_masks_and_keypoints() -> None:
    dense = np.stack([disc(50, 60, 15, 15, 6), disc(50, 60, 40, 30, 9)])
    masks = InstanceMasks.from_dense(dense)
    keypoints = np.array([[[10, 12, 0.9]], [[40, 30, 0.4]]], np.float32)
    detections = Detections(masks.regions, [0.3, 0.8], [0, 1], masks=masks, keypoints=keypoints)
    labels = Labels({0: "dent", 1: "scratch"}, keypoints=("centre",))
    rows = box_rows(detections, labels, (60, 50), MaskFormat.RLE)
    assert [r.label for r in rows] == ["scratch", "dent"]
    assert (coco_mask.decode({"size": [50, 60], "counts": rows[0].rle["counts"]}) == dense[1]).all()
    assert rows[0].keypoints[0].name == "centre" and (rows[0].keypoints[0].x, rows[0].keypoints[0].y) == (40, 30)
    assert rows[0].polygons is None
    with_polygons = box_rows(detections, labels, (60, 50))
    assert len(with_polygons[1].polygons) == 1 and with_polygons[1].rle is None
    assert box_rows(detections, labels, (60, 50), MaskFormat.NONE)[0].polygons is None
    ranked = class_rows(Classifications.from_scores(np.array([0.2, 0.7])), labels)
    assert [(r.label, r.score) for r in ranked] == [("scratch", pytest.approx(0.7)), ("dent", pytest.approx(0.2))]
