"""YOLO decoders end to end: tiny models with known outputs, loaded by the real loading code
(autospec, model.yaml, ONNX Runtime, OpenCV DNN), predicted on images of several shapes, boxes
compared with ones computed by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from tests.factories import (
    constant_onnx,
    darknet_detector,
    red_block,
    solid_image,
    ultralytics_metadata,
    write_image,
    yolov5_table,
    yolov8_table,
)

from visionserve.cli.main import main
from visionserve.core.detections import Detections
from visionserve.models.loading import load_model
from visionserve.models.repository import ModelRepository
from visionserve.models.spec import BackendKind, OutputLayout
from visionserve.pipeline import NetworkModel, PredictOptions

# Boxes in 640 x 640 network-input pixels (cx, cy, w, h), with class and score:
#   A (0, 0.9)  B (0, 0.8) overlaps A with IoU 90/110 = 0.82  C (1, 0.7) is A's box for class 1
#   D (0, 0.2) under the default conf 0.25                     E (1, 0.5) apart from the others
ROWS = {
    "A": (320, 320, 100, 50, 0, 0.9),
    "B": (330, 320, 100, 50, 0, 0.8),
    "C": (320, 320, 100, 50, 1, 0.7),
    "D": (300, 200, 20, 20, 0, 0.2),
    "E": (400, 400, 40, 40, 1, 0.5),
}
# The same boxes in source pixels, worked out by hand from the letterbox of each image size:
#   1280 x 640: scale 0.5, 160 px bars top and bottom: x / 0.5, (y - 160) / 0.5
#   320 x 640:  scale 1, 160 px bars left and right:  x - 160, y
#   640 x 320:  scale 1, 160 px bars top and bottom:  x, y - 160
SOURCE_BOXES = {
    (1280, 640): {"A": (540, 270, 740, 370), "B": (560, 270, 760, 370), "D": (580, 60, 620, 100),
                  "E": (760, 440, 840, 520)},
    (320, 640): {"A": (110, 295, 210, 345), "B": (120, 295, 220, 345), "D": (130, 190, 150, 210),
                 "E": (220, 380, 260, 420)},
    (640, 320): {"A": (270, 135, 370, 185), "B": (280, 135, 380, 185), "D": (290, 30, 310, 50),
                 "E": (380, 220, 420, 260)},
}  # fmt: skip
SIZES = list(SOURCE_BOXES)


def expected(size: tuple[int, int], letters: str) -> list[tuple[tuple[float, ...], float, int]]:
    boxes = SOURCE_BOXES[size]
    return [(boxes["A" if k == "C" else k], ROWS[k][5], ROWS[k][4]) for k in letters]


def as_rows(found: Detections) -> list[tuple[tuple[float, ...], float, int]]:
    return [
        (tuple(round(float(v), 3) for v in box), round(float(score), 5), int(class_id))
        for box, score, class_id in zip(found.xyxy, found.confidence, found.class_id, strict=True)
    ]


@pytest.fixture(scope="module")
def yolov8_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bare Ultralytics-style YOLOv8 export: fixed batch 1, names and imgsz metadata."""
    table = yolov8_table(list(ROWS.values()), num_classes=2)
    path = tmp_path_factory.mktemp("v8") / "tiny-yolov8.onnx"
    return constant_onnx(
        path, table, input_shape=(1, 3, 640, 640), metadata=ultralytics_metadata(["person", "car"], (640, 640))
    )


@pytest.fixture(scope="module")
def yolov8_model(yolov8_file: Path) -> NetworkModel:
    spec = ModelRepository.scan(None).resolve(str(yolov8_file))
    model = load_model(spec)
    assert isinstance(model, NetworkModel)
    return model


@pytest.fixture(scope="module")
def yolov5_model(tmp_path_factory: pytest.TempPathFactory) -> NetworkModel:
    """A YOLOv5 output with a dynamic batch, described by a model.yaml in a repository folder.
    Scores are split into objectness x class score so that only their product gives ROWS' scores."""
    split = {"A": (0.9, 1.0), "B": (1.0, 0.8), "C": (0.875, 0.8), "D": (0.4, 0.5), "E": (0.5, 1.0)}
    rows = [(*ROWS[k][:4], obj, ROWS[k][4], cls) for k, (obj, cls) in split.items()]
    root = tmp_path_factory.mktemp("repo")
    (root / "v5").mkdir()
    constant_onnx(root / "v5" / "net.onnx", yolov5_table(rows, 2), input_shape=("batch", 3, 640, 640))
    (root / "v5" / "model.yaml").write_text(
        "name: tiny-v5\nbackend: onnxruntime\nfiles: {model: net.onnx}\n"
        "input: {width: 640, height: 640, resize: letterbox, color: rgb, scale: 0.00392156862745098}\n"
        "decoder: {layout: yolov5}\nlabels: [person, car]\nthresholds: {conf: 0.25, iou: 0.45}\n",
        encoding="utf-8",
    )
    model = load_model(ModelRepository.scan(root).get("tiny-v5"))
    assert isinstance(model, NetworkModel)
    return model


OPTION_CASES = {
    "defaults: NMS drops B, keeps C of the other class": (PredictOptions(), "ACE"),
    "lower conf keeps D": (PredictOptions(conf=0.1), "ACED"),
    "higher conf": (PredictOptions(conf=0.6), "AC"),
    "classes filter": (PredictOptions(classes=frozenset({1})), "CE"),
    "max_det": (PredictOptions(max_det=2), "AC"),
    "loose iou keeps B": (PredictOptions(iou=0.9), "ABCE"),
}


@pytest.mark.parametrize("which", ["yolov8_model", "yolov5_model"])
@pytest.mark.parametrize(("options", "letters"), OPTION_CASES.values(), ids=OPTION_CASES.keys())
def test_ultralytics_boxes_in_letterboxed_images(
    request: pytest.FixtureRequest, which: str, options: PredictOptions, letters: str
) -> None:
    model: NetworkModel = request.getfixturevalue(which)
    images = [solid_image(w, h) for w, h in SIZES]
    results = model.predict(images, options)
    assert [as_rows(found) for found in results] == [expected(size, letters) for size in SIZES]


def test_bare_onnx_spec_is_inferred(yolov8_model: NetworkModel) -> None:
    spec = yolov8_model.spec
    assert spec.name == "tiny-yolov8"
    assert spec.backend is BackendKind.ONNXRUNTIME
    assert spec.network[1].fixed_batch == 1
    assert spec.network[2].layout is OutputLayout.YOLOV8
    assert yolov8_model.labels.as_dict() == {0: "person", 1: "car"}


def test_cli_detect_with_a_bare_onnx_file(yolov8_file: Path, tmp_path: Path) -> None:
    image = write_image(tmp_path / "wide.png", solid_image(640, 320))
    result = CliRunner().invoke(main, ["detect", str(image), "--model", str(yolov8_file), "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["model"] == "tiny-yolov8"
    (item,) = document["results"]
    assert (item["width"], item["height"]) == (640, 320)
    found = [(d["label"], d["score"], tuple(d["box"].values())) for d in item["detections"]]
    boxes = SOURCE_BOXES[(640, 320)]
    assert found == [("person", 0.9, boxes["A"]), ("car", 0.7, boxes["A"]), ("car", 0.5, boxes["E"])]


# --- Tiny YOLOv2 region output --------------------------------------------------------------------


@pytest.fixture(scope="module")
def region_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bare ONNX file with a ``[1, 125, 13, 13]`` output: Tiny YOLOv2 VOC, inferred by its shape.
    One object: anchor 2 (6.63 x 11.38 cells) in the cell at row 6, column 4; objectness
    sigmoid(ln 4) = 0.8, class 14 (person) softmax 57 / (57 + 19) = 0.75, so score 0.6."""
    cells = np.zeros((1, 5, 25, 13, 13), np.float32)
    cells[:, :, 4] = -20.0
    cells[0, 2, 4, 6, 4] = math.log(4.0)
    cells[0, 2, 5 + 14, 6, 4] = math.log(57.0)
    path = tmp_path_factory.mktemp("region") / "tinyyolov2.onnx"
    return constant_onnx(path, cells.reshape(1, 125, 13, 13), input_shape=("N", 3, 416, 416), input_name="image")


def test_yolo_region_box_in_a_stretched_image(region_file: Path) -> None:
    model = load_model(ModelRepository.scan(None).resolve(str(region_file)))
    (found,) = model.infer([solid_image(832, 416)]).predictions
    # Input pixels: centre ((4 + 0.5) / 13 * 416, (6 + 0.5) / 13 * 416) = (144, 208),
    # size (6.63 / 13 * 416, 11.38 / 13 * 416) = (212.16, 364.16); stretch from 832 x 416 doubles x.
    ((box, score, class_id),) = as_rows(found)
    np.testing.assert_allclose(box, (288 - 212.16, 208 - 182.08, 288 + 212.16, 208 + 182.08), atol=1e-3)
    assert (score, class_id, model.labels.name(class_id)) == (0.6, 14, "person")
    assert len(model.infer([solid_image(832, 416)], PredictOptions(conf=0.61)).predictions[0]) == 0


# --- Darknet through OpenCV DNN -----------------------------------------------------------------

LN3 = math.log(3.0)


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


@pytest.fixture(scope="module")
def darknet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``tiny.cfg``/``tiny.weights``: 32 x 32 input, 4 x 4 grid of 8 px cells, anchor 8 x 8 px.
    Box logits tx = ln 3, ty = -ln 3, tw = ln 2, th = 0: in a cell (row, col) the box is centred at
    ((col + 0.75) * 8, (row + 0.25) * 8), 16 x 8 px. Objectness logit 12 * red - 10, so 2 where the
    cell holds red; class logits (1, -1)."""
    folder = tmp_path_factory.mktemp("darknet")
    darknet_detector(
        folder, "tiny", class_logits=(1.0, -1.0), box_logits=(LN3, -LN3, math.log(2.0), 0.0), anchor=(8, 8)
    )
    (folder / "tiny.names").write_text("cat\ndog\n", encoding="utf-8")
    return folder


@pytest.mark.parametrize("suffix", [".cfg", ".weights"])
def test_darknet_boxes_for_each_image_of_a_batch(darknet_dir: Path, suffix: str) -> None:
    model = load_model(ModelRepository.scan(None).resolve(str(darknet_dir / f"tiny{suffix}")))
    # Red in input cell (row 1, col 2) of a 64 x 64 image (input = source / 2) and in cell (row 3,
    # col 0) of a 128 x 64 image (input x = source x / 4, y = source y / 2).
    images = [red_block(64, 64, 36, 20, 44, 24), red_block(128, 64, 8, 52, 24, 60)]
    square, wide = model.infer(images).predictions
    # cell (1, 2): centre (22, 10), box (14, 6, 30, 14) input px -> x2, y2 -> (28, 12, 60, 28)
    # cell (3, 0): centre (6, 26), box (-2, 22, 14, 30) input px -> x4, y2 -> (-8 -> 0, 44, 56, 60)
    score = round(sigmoid(2.0) * sigmoid(1.0), 5)  # OpenCV multiplies the class score by objectness
    assert as_rows(square) == [((28.0, 12.0, 60.0, 28.0), score, 0)]
    assert as_rows(wide) == [((0.0, 44.0, 56.0, 60.0), score, 0)]
    assert model.labels.as_dict() == {0: "cat", 1: "dog"}


def test_darknet_reads_rgb_and_applies_conf(darknet_dir: Path) -> None:
    model = load_model(ModelRepository.scan(None).resolve(str(darknet_dir / "tiny.cfg")))
    blue = red_block(64, 64, 36, 20, 44, 24)[..., ::-1].copy()  # the same block, blue: no objectness
    assert [len(found) for found in model.infer([blue]).predictions] == [0]
    red = red_block(64, 64, 36, 20, 44, 24)
    assert len(model.infer([red], PredictOptions(conf=0.65)).predictions[0]) == 0
    assert len(model.infer([red], PredictOptions(conf=0.64)).predictions[0]) == 1
