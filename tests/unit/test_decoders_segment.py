"""Segment decoders end to end: tiny YOLOv8-seg and Mask R-CNN models with hand-made outputs, loaded
by the real loading code and run by ONNX Runtime on non-square images; every mask is compared, in
source pixels, with the one worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
from tests.decoder_support import Placement, Shape, both, dense_masks, in_box, iou, jpeg, load_network
from tests.factories import mask_rcnn_model, solid_image, yolov8_seg_model, yolov8_seg_table

from visionserve.core.detections import Detections
from visionserve.core.images import decode_image
from visionserve.models.spec import OutputLayout, Task
from visionserve.pipeline import NetworkModel, PredictOptions
from visionserve.serving.instances import decode_for_model

#: Masks must cover what the hand-worked shapes cover, after the map back to source pixels.
MIN_IOU = 0.95

# --- YOLOv8-seg ---------------------------------------------------------------------------------
# 640 x 640 input, 160 x 160 prototypes (a cell is 4 x 4 input pixels), 32 of them:
#   channel 0: +8 in the cells whose centre lies in the disc of radius 120 around (320, 300), -8 elsewhere
#   channel 1: +8 in the rectangle x 400..560, y 200..440 (on cell edges), -8 elsewhere
# Columns (box xyxy in input pixels, class, score, coefficients):
#   A (200, 180, 440, 380) person 0.9  disc       the box cuts the bottom of the disc
#   B A's box moved 8 px right, person 0.8, rectangle: IoU 0.94 with A, so NMS removes it
#   C (400, 200, 560, 440) car 0.7     rectangle
#   D (100, 400, 180, 480) car 0.2     minus the disc: all of its box (the box is outside the disc)
DISC_X, DISC_Y, RADIUS = 320.0, 300.0, 120.0
SEG_BOXES = {
    "A": (200.0, 180.0, 440.0, 380.0),
    "B": (208.0, 180.0, 448.0, 380.0),
    "C": (400.0, 200.0, 560.0, 440.0),
    "D": (100.0, 400.0, 180.0, 480.0),
}
SEG_ROWS = {"A": (0, 0.9, 0, 1.0), "B": (0, 0.8, 1, 1.0), "C": (1, 0.7, 1, 1.0), "D": (1, 0.2, 0, -1.0)}


def disc(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    return np.asarray((xs - DISC_X) ** 2 + (ys - DISC_Y) ** 2 <= RADIUS**2)


SEG_SHAPES: dict[str, Shape] = {
    "A": both(disc, in_box(*SEG_BOXES["A"])),
    "B": both(in_box(400, 200, 560, 440), in_box(*SEG_BOXES["B"])),
    "C": in_box(*SEG_BOXES["C"]),
    "D": both(lambda xs, ys: ~disc(xs, ys), in_box(*SEG_BOXES["D"])),
}
# Letterbox of each image size into 640 x 640, by hand:
#   1000 x 600: scale 0.64 -> 640 x 384, 128 px bars top and bottom
#   480 x 800:  scale 0.8 -> 384 x 640, 128 px bars left and right (C and D reach into them)
SEG_PLACES = [Placement(1000, 600, 0.64, 0.64, 0, 128), Placement(480, 800, 0.8, 0.8, 128, 0)]


def seg_prototypes() -> np.ndarray:
    centres = (np.arange(160, dtype=np.float32) + 0.5) * 4
    xs, ys = np.meshgrid(centres, centres)
    prototypes = np.zeros((1, 32, 160, 160), np.float32)
    prototypes[0, 0] = np.where(disc(xs, ys), 8.0, -8.0)
    prototypes[0, 1] = np.where(in_box(400, 200, 560, 440)(xs, ys), 8.0, -8.0)
    return prototypes


@pytest.fixture(scope="module")
def seg_model(tmp_path_factory: pytest.TempPathFactory) -> NetworkModel:
    """A bare YOLOv8-seg export (no model.yaml): its spec is inferred from the file's metadata."""
    rows = []
    for letter, (class_id, score, channel, sign) in SEG_ROWS.items():
        x1, y1, x2, y2 = SEG_BOXES[letter]
        coefficients = np.zeros(32, np.float32)
        coefficients[channel] = sign
        rows.append(((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, class_id, score, coefficients))
    path = tmp_path_factory.mktemp("seg") / "tiny-seg.onnx"
    yolov8_seg_model(path, yolov8_seg_table(rows, 2, 32), seg_prototypes(), ["person", "car"])
    return load_network(path)


def check_instances(found: Detections, place: Placement, letters: str, shapes: dict[str, Shape]) -> list[float]:
    """Classes, scores and boxes of ``found`` are those of ``letters``; returns each mask's IoU with
    the hand-worked one."""
    assert found.class_id.tolist() == [SEG_ROWS[k][0] for k in letters]
    np.testing.assert_allclose(found.confidence, [SEG_ROWS[k][1] for k in letters], rtol=1e-6)
    np.testing.assert_allclose(found.xyxy, [place.box(SEG_BOXES[k]) for k in letters], atol=1e-3)
    masks = dense_masks(found, place.height, place.width)
    return [iou(mask, place.mask(shapes[k])) for mask, k in zip(masks, letters, strict=True)]


SEG_OPTIONS = {
    "defaults: NMS removes B": (PredictOptions(), "AC"),
    "lower conf keeps D": (PredictOptions(conf=0.1), "ACD"),
    "class filter": (PredictOptions(classes=frozenset({1})), "C"),
    "class filter and low conf": (PredictOptions(classes=frozenset({1}), conf=0.1), "CD"),
    "max_det": (PredictOptions(max_det=1), "A"),
    "loose iou keeps B": (PredictOptions(iou=0.95), "ABC"),
}


@pytest.mark.parametrize(("options", "letters"), SEG_OPTIONS.values(), ids=SEG_OPTIONS.keys())
def test_yolov8_seg_masks_in_letterboxed_images(seg_model: NetworkModel, options: PredictOptions, letters: str) -> None:
    images = [solid_image(p.width, p.height) for p in SEG_PLACES]
    for found, place in zip(seg_model.predict(images, options), SEG_PLACES, strict=True):
        assert isinstance(found, Detections)
        assert min(check_instances(found, place, letters, SEG_SHAPES)) >= MIN_IOU


def test_bare_seg_export_is_a_segment_model(seg_model: NetworkModel) -> None:
    spec, decoder = seg_model.spec, seg_model.spec.network[2]
    assert (spec.task, decoder.layout, decoder.num_classes) == (Task.SEGMENT, OutputLayout.YOLOV8_SEG, 2)
    assert seg_model.labels.as_dict() == {0: "person", 1: "car"}


def test_seg_masks_stay_compact(seg_model: NetworkModel) -> None:
    # A's box covers 60 x 50 prototype cells: its bitmap stays that size, whatever the image size.
    (found,) = seg_model.predict([solid_image(4000, 2400)])
    assert found.masks is not None
    assert found.masks.bitmaps[0].shape == (50, 60)


def test_reduced_jpeg_decode_puts_masks_on_the_same_pixels(seg_model: NetworkModel) -> None:
    # 1600 x 1000 letterboxes to 640 x 400; a 1/2 decode (800 x 500) still has those pixels.
    data = jpeg(1600, 1000)
    reduced = decode_for_model(data, 10**8, seg_model.spec.network[1])
    assert reduced.image.shape[:2] == (500, 800)
    (small,) = seg_model.predict([reduced.image])
    assert isinstance(small, Detections)
    found = small.scaled(*reduced.scale)
    (full,) = seg_model.predict([decode_image(data).image])
    place = Placement(1600, 1000, 0.4, 0.4, 0, 120)
    assert min(check_instances(found, place, "AC", SEG_SHAPES)) >= MIN_IOU
    for a, b in zip(dense_masks(found, 1000, 1600), dense_masks(full, 1000, 1600), strict=True):
        assert iou(a, b) >= MIN_IOU


# --- Mask R-CNN (TF Object Detection API) --------------------------------------------------------
# 256 x 256 stretched input, 3 classes, 15 x 15 masks per class. Rows (box normalised):
#   A person-class 1 0.9 (0.25, 0.2, 0.75, 0.8): channel 1 = cells rows 3..11, columns 5..9
#   B class 1 0.6, A's box 0.01 to the right, its channel 1 = everything but A's cells: NMS removes it
#   C class 2 0.7 (0.05, 0.5, 0.35, 0.95): channel 2 = cells within 5 of the centre (an ellipse once stretched)
#   D class 0 0.1 (0.6, 0.05, 0.95, 0.3): channel 0 all inside, under the default conf 0.4
# The other channels of each mask are the opposite of its own, so that reading a wrong channel shows.
RCNN_BOXES = {
    "A": (0.25, 0.2, 0.75, 0.8),
    "B": (0.26, 0.2, 0.76, 0.8),
    "C": (0.05, 0.5, 0.35, 0.95),
    "D": (0.6, 0.05, 0.95, 0.3),
}
RCNN_ROWS = {"A": (1, 0.9), "B": (1, 0.6), "C": (2, 0.7), "D": (0, 0.1)}
CELLS = np.arange(15) + 0.5
BLOCK = (CELLS[:, None] >= 3) & (CELLS[:, None] < 12) & (CELLS[None, :] >= 5) & (CELLS[None, :] < 10)
ROUND = (CELLS[:, None] - 7.5) ** 2 + (CELLS[None, :] - 7.5) ** 2 <= 25
RCNN_CELLS = {"A": BLOCK, "B": ~BLOCK, "C": ROUND, "D": np.ones((15, 15), bool)}


def cell_shape(letter: str) -> Shape:
    """Mask cells of ``letter`` stretched over its box, in normalised input coordinates."""
    x1, y1, x2, y2 = RCNN_BOXES[letter]

    def inside(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        u = np.floor((xs - x1) / (x2 - x1) * 15).astype(int)
        v = np.floor((ys - y1) / (y2 - y1) * 15).astype(int)
        valid = (u >= 0) & (u < 15) & (v >= 0) & (v < 15)
        return np.asarray(valid & RCNN_CELLS[letter][v.clip(0, 14), u.clip(0, 14)])

    return inside


@pytest.fixture(scope="module")
def rcnn_model(tmp_path_factory: pytest.TempPathFactory) -> NetworkModel:
    rows = np.zeros((1, 1, 4, 7), np.float32)
    masks = np.zeros((4, 3, 15, 15), np.float32)
    for index, (letter, (class_id, score)) in enumerate(RCNN_ROWS.items()):
        rows[0, 0, index] = (0, class_id, score, *RCNN_BOXES[letter])
        own = np.where(RCNN_CELLS[letter], 0.95, 0.05)
        masks[index] = 1.0 - own
        masks[index, class_id] = own
    root = tmp_path_factory.mktemp("rcnn")
    (root / "mask-rcnn").mkdir()
    mask_rcnn_model(root / "mask-rcnn" / "frozen.onnx", rows, masks)
    (root / "mask-rcnn" / "model.yaml").write_text(
        "name: tiny-mask-rcnn\ntask: segment\nbackend: onnxruntime\nfiles: {model: frozen.onnx}\n"
        "input: {width: 256, height: 256, resize: stretch, color: rgb}\n"
        "decoder: {layout: mask_rcnn}\nlabels: [person, bicycle, car]\n",
        encoding="utf-8",
    )
    return load_network(root, "tiny-mask-rcnn")


RCNN_OPTIONS = {
    "defaults: NMS removes B": (PredictOptions(), "AC"),
    "lower conf keeps D": (PredictOptions(conf=0.05), "ACD"),
    "class filter": (PredictOptions(classes=frozenset({2})), "C"),
    "max_det": (PredictOptions(max_det=1), "A"),
    "loose iou keeps B": (PredictOptions(iou=0.99), "ACB"),
}


@pytest.mark.parametrize(("options", "letters"), RCNN_OPTIONS.values(), ids=RCNN_OPTIONS.keys())
def test_mask_rcnn_masks_stretched_to_their_boxes(
    rcnn_model: NetworkModel, options: PredictOptions, letters: str
) -> None:
    # Stretch: a source pixel's normalised coordinates are its input pixel's, whatever the image size.
    for width, height in [(640, 360), (300, 500)]:
        (found,) = rcnn_model.predict([solid_image(width, height)], options)
        assert isinstance(found, Detections)
        assert found.class_id.tolist() == [RCNN_ROWS[k][0] for k in letters]
        np.testing.assert_allclose(found.confidence, [RCNN_ROWS[k][1] for k in letters], rtol=1e-6)
        size = np.array([width, height, width, height], np.float32)
        np.testing.assert_allclose(found.xyxy, [np.array(RCNN_BOXES[k]) * size for k in letters], atol=1e-3)
        place = Placement(width, height, 1 / width, 1 / height)
        for mask, letter in zip(dense_masks(found, height, width), letters, strict=True):
            assert iou(mask, place.mask(cell_shape(letter))) >= MIN_IOU, letter


def test_mask_rcnn_is_a_segment_model(rcnn_model: NetworkModel) -> None:
    assert rcnn_model.spec.task is Task.SEGMENT
    (found,) = rcnn_model.predict([solid_image(640, 360)])
    assert found.masks is not None
    assert [b.shape for b in found.masks.bitmaps] == [(15, 15), (15, 15)]
