"""The YOLO decoders as pure functions, on hand-built arrays with hand-computed boxes."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from tests.factories import yolov5_table, yolov8_table

from visionserve.decoders.base import DecodeParams, get_decoder
from visionserve.errors import DecodeError
from visionserve.models.spec import OutputLayout

LN3 = math.log(3.0)  # sigmoid(ln 3) = 0.75, sigmoid(-ln 3) = 0.25
LN2 = math.log(2.0)  # exp(ln 2) = 2


def params(conf: float = 0.25, classes: int = 2, width: int = 640, height: int = 640, **kw: object) -> DecodeParams:
    return DecodeParams(input_width=width, input_height=height, conf=conf, num_classes=classes, **kw)  # type: ignore[arg-type]


Found = tuple[list[list[float]], list[float], list[int]]
Row = tuple[float, ...]


def decode(layout: OutputLayout, outputs: list[np.ndarray], batch: int, p: DecodeParams) -> list[Found]:
    """Decoded candidates as ``[(xyxy rows, scores, class ids)]`` lists per image, rounded to 1e-4 px and
    1e-6 score so that float32 values compare with the hand-computed ones."""
    return [
        (np.round(c.xyxy.astype(float), 4).tolist(), np.round(c.scores.astype(float), 6).tolist(), c.class_ids.tolist())
        for c in get_decoder(layout)(outputs, batch, p)
    ]


# --- YOLOv8 -------------------------------------------------------------------------------------

YOLOV8_CASES = {
    "one box": (
        [(100, 200, 40, 20, 1, 0.8)],
        0.25,
        [([[80, 190, 120, 210]], [0.8], [1])],
    ),
    "conf is inclusive, lower dropped": (
        [(100, 100, 10, 10, 0, 0.5), (300, 300, 10, 10, 1, 0.49)],
        0.5,
        [([[95, 95, 105, 105]], [0.5], [0])],
    ),
    "nothing above conf": ([(100, 100, 10, 10, 0, 0.1)], 0.25, [([], [], [])]),
}


@pytest.mark.parametrize(("rows", "conf", "expected"), YOLOV8_CASES.values(), ids=YOLOV8_CASES.keys())
def test_yolov8_table(rows: list[Row], conf: float, expected: list[Found]) -> None:
    table = yolov8_table(rows, num_classes=2)
    assert decode(OutputLayout.YOLOV8, [table], 1, params(conf)) == expected


def test_yolov8_one_box_per_column_of_its_best_class() -> None:
    table = np.zeros((1, 6, 4), np.float32)
    table[0, :, 2] = (50, 60, 20, 40, 0.3, 0.6)
    expected = [([[40, 40, 60, 80]], [0.6], [1])]
    assert decode(OutputLayout.YOLOV8, [table], 1, params(0.25)) == expected


def test_yolov8_batch_is_split_per_image_and_padding_ignored() -> None:
    first = yolov8_table([(10, 10, 4, 4, 0, 0.9)], 2)
    second = yolov8_table([(20, 30, 10, 2, 1, 0.7), (5, 5, 2, 2, 0, 0.4)], 2)
    padding = yolov8_table([(1, 1, 2, 2, 0, 1.0)], 2)
    outputs = [np.concatenate([first, second, padding])]
    assert decode(OutputLayout.YOLOV8, outputs, 2, params()) == [
        ([[8, 8, 12, 12]], [0.9], [0]),
        ([[15, 29, 25, 31], [4, 4, 6, 6]], [0.7, 0.4], [1, 0]),
    ]


def test_yolov8_reads_float16_and_empty_outputs() -> None:
    half = yolov8_table([(64, 32, 16, 8, 1, 0.75)], 2).astype(np.float16)
    assert decode(OutputLayout.YOLOV8, [half], 1, params()) == [([[56, 28, 72, 36]], [0.75], [1])]
    empty = np.zeros((2, 6, 0), np.float32)
    assert decode(OutputLayout.YOLOV8, [empty], 2, params()) == [([], [], [])] * 2


# --- YOLOv5 -------------------------------------------------------------------------------------

YOLOV5_CASES = {
    "score is objectness times class score": (
        [(100, 200, 40, 20, 0.5, 1, 0.8)],
        0.25,
        [([[80, 190, 120, 210]], [0.4], [1])],
    ),
    "high class score, low objectness dropped": (
        [(100, 200, 40, 20, 0.2, 0, 1.0), (10, 10, 2, 2, 1.0, 1, 0.3)],
        0.25,
        [([[9, 9, 11, 11]], [0.3], [1])],
    ),
    "nothing": ([], 0.0, [([], [], [])]),
}


@pytest.mark.parametrize(("rows", "conf", "expected"), YOLOV5_CASES.values(), ids=YOLOV5_CASES.keys())
def test_yolov5_table(rows: list[Row], conf: float, expected: list[Found]) -> None:
    table = yolov5_table(rows, num_classes=2, count=len(rows) or 1)
    if not rows:
        table = np.zeros((1, 0, 7), np.float32)
    assert decode(OutputLayout.YOLOV5, [table], 1, params(conf)) == expected


def test_yolov5_best_class_by_product() -> None:
    table = np.array([[[30, 40, 20, 10, 0.5, 0.2, 0.9]]], np.float32)
    ((boxes, scores, ids),) = decode(OutputLayout.YOLOV5, [table], 1, params(0.3))
    assert (boxes, ids) == ([[20, 35, 40, 45]], [1])
    assert scores == [0.45]


# --- YOLOv2 region ------------------------------------------------------------------------------


def region_table(anchors: int = 2, classes: int = 2, height: int = 2, width: int = 3) -> np.ndarray:
    """``[1, A * (5 + C), H, W]`` with every objectness logit at -30 (no object anywhere)."""
    table = np.zeros((1, anchors, 5 + classes, height, width), np.float32)
    table[:, :, 4] = -30.0
    return table


def test_yolo_region_hand_computed_cell() -> None:
    # anchor 1 of the cell at row 1, col 2 of a 2 x 3 grid on a 96 x 64 input (32 px cells).
    table = region_table()
    table[0, 1, :, 1, 2] = (LN3, -LN3, LN2, 0.0, math.log(4.0), 0.0, LN3)
    anchors = ((1.0, 1.0), (1.5, 0.5))
    found = decode(OutputLayout.YOLO_REGION, [table.reshape(1, 14, 2, 3)], 1, params(0.5, 2, 96, 64, anchors=anchors))
    # x = (2 + 0.75) / 3 * 96 = 88, y = (1 + 0.25) / 2 * 64 = 40,
    # w = 1.5 * 2 / 3 * 96 = 96, h = 0.5 * 1 / 2 * 64 = 16; score = sigmoid(ln 4) * 3 / (1 + 3) = 0.8 * 0.75.
    ((boxes, scores, ids),) = found
    np.testing.assert_allclose(boxes, [[40, 32, 136, 48]], atol=1e-4)
    assert scores == [0.6]
    assert ids == [1]


def test_yolo_region_batch_and_conf() -> None:
    table = np.concatenate([region_table(), region_table()])
    table[1, 0, :, 0, 0] = (0.0, 0.0, 0.0, 0.0, 30.0, 5.0, 0.0)  # second image: anchor 0, first cell
    anchors = ((1.0, 1.0), (1.5, 0.5))
    p = params(0.9, 2, 96, 64, anchors=anchors)
    first, second = decode(OutputLayout.YOLO_REGION, [table.reshape(2, 14, 2, 3)], 2, p)
    assert first == ([], [], [])
    np.testing.assert_allclose(second[0], [[0, 0, 32, 32]], atol=1e-4)
    assert second[2] == [0]
    assert decode(OutputLayout.YOLO_REGION, [table.reshape(2, 14, 2, 3)], 2, params(0.999, 2, 96, 64, anchors=anchors))[
        1
    ] == ([], [], [])


def test_yolo_region_extreme_logits_stay_finite() -> None:
    table = region_table(anchors=1)
    table[0, 0, :, 0, 0] = (1000.0, -1000.0, 1000.0, -1000.0, 1000.0, 1000.0, -1000.0)
    candidates = get_decoder(OutputLayout.YOLO_REGION)(
        [table.reshape(1, 7, 2, 3)], 1, params(0.5, 2, 96, 64, anchors=((1.0, 1.0),))
    )
    assert np.isfinite(candidates[0].xyxy).all()
    assert candidates[0].scores.tolist() == [1.0]


# --- Darknet via OpenCV -------------------------------------------------------------------------


def darknet_rows(*rows: tuple[float, ...]) -> np.ndarray:
    return np.array(rows, np.float32).reshape(-1, 7)


DARKNET_CASES = {
    "normalized box to input pixels": (
        [darknet_rows((0.5, 0.25, 0.25, 0.5, 0.9, 0.0, 0.6))],
        1,
        0.25,
        [([[48, 0, 80, 64]], [0.6], [1])],
    ),
    "zero scores dropped even at conf 0": (
        [darknet_rows((0.5, 0.5, 0.1, 0.1, 0.1, 0.0, 0.0))],
        1,
        0.0,
        [([], [], [])],
    ),
    "output layers are concatenated": (
        [darknet_rows((0.5, 0.5, 0.5, 0.5, 1, 0.3, 0.0)), darknet_rows((0.25, 0.25, 0.5, 0.5, 1, 0.0, 0.9))],
        1,
        0.25,
        [([[32, 32, 96, 96], [0, 0, 64, 64]], [0.3, 0.9], [0, 1])],
    ),
    "3-D batch from OpenCV 4.x": (
        [np.stack([darknet_rows((0.5, 0.5, 0.5, 0.5, 1, 0.3, 0.0)), darknet_rows((0.5, 0.5, 0.25, 0.25, 1, 0, 0.5))])],
        2,
        0.25,
        [([[32, 32, 96, 96]], [0.3], [0]), ([[48, 48, 80, 80]], [0.5], [1])],
    ),
    "2-D stacked batch of older OpenCV": (
        [darknet_rows((0.5, 0.5, 0.5, 0.5, 1, 0.3, 0.0), (0.5, 0.5, 0.25, 0.25, 1, 0, 0.5))],
        2,
        0.25,
        [([[32, 32, 96, 96]], [0.3], [0]), ([[48, 48, 80, 80]], [0.5], [1])],
    ),
}


@pytest.mark.parametrize(("outputs", "batch", "conf", "expected"), DARKNET_CASES.values(), ids=DARKNET_CASES.keys())
def test_darknet_yolo_table(outputs: list[np.ndarray], batch: int, conf: float, expected: list[Found]) -> None:
    assert decode(OutputLayout.DARKNET_YOLO, outputs, batch, params(conf, 2, 128, 128)) == expected


# --- wrong shapes -------------------------------------------------------------------------------

BAD_SHAPES = {
    "yolov8 2-D": (OutputLayout.YOLOV8, [np.zeros((6, 10), np.float32)], 1, "[B, 4 + C, N]"),
    "yolov8 given yolov5 output": (OutputLayout.YOLOV8, [np.zeros((1, 25, 7), np.float32)], 1, "C = 2 classes"),
    "yolov8 without outputs": (OutputLayout.YOLOV8, [], 1, "[B, 4 + C, N]"),
    "yolov8 batch too small": (OutputLayout.YOLOV8, [np.zeros((1, 6, 10), np.float32)], 2, "for 1 images"),
    "yolov5 given yolov8 output": (OutputLayout.YOLOV5, [np.zeros((1, 6, 100), np.float32)], 1, "[B, N, 5 + C]"),
    "yolov5 4-D": (OutputLayout.YOLOV5, [np.zeros((1, 1, 10, 7), np.float32)], 1, "3-D output"),
    "region 3-D": (OutputLayout.YOLO_REGION, [np.zeros((1, 14, 6), np.float32)], 1, "[B, A * (5 + C), H, W]"),
    "region channels not A * (5 + C)": (OutputLayout.YOLO_REGION, [np.zeros((1, 15, 2, 2), np.float32)], 1, "A = 2"),
    "region wrong class count": (OutputLayout.YOLO_REGION, [np.zeros((1, 16, 2, 2), np.float32)], 1, "C = 2"),
    "darknet 4-D": (OutputLayout.DARKNET_YOLO, [np.zeros((1, 1, 3, 7), np.float32)], 1, "[N, 5 + C]"),
    "darknet rows not split evenly": (OutputLayout.DARKNET_YOLO, [np.zeros((3, 7), np.float32)], 2, "2 images"),
    "darknet layers disagree": (
        OutputLayout.DARKNET_YOLO,
        [np.zeros((3, 7), np.float32), np.zeros((3, 8), np.float32)],
        1,
        "one class count",
    ),
    "darknet wrong class count": (OutputLayout.DARKNET_YOLO, [np.zeros((3, 9), np.float32)], 1, "C = 2"),
}


@pytest.mark.parametrize(("layout", "outputs", "batch", "message"), BAD_SHAPES.values(), ids=BAD_SHAPES.keys())
def test_wrong_shapes_name_the_layout(
    layout: OutputLayout, outputs: list[np.ndarray], batch: int, message: str
) -> None:
    with pytest.raises(DecodeError, match=f"{layout.value} decoder.*{re.escape(message)}"):
        get_decoder(layout)(outputs, batch, params(anchors=((1.0, 1.0), (2.0, 2.0))))


def test_region_without_anchors_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="needs anchors"):
        get_decoder(OutputLayout.YOLO_REGION)([np.zeros((1, 14, 2, 2), np.float32)], 1, params())
