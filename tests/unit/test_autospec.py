"""Specs inferred for bare model files (no model.yaml)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from tests.factories import constant_onnx, darknet_detector, ultralytics_metadata, yolov5_table, yolov8_table

from visionserve.core.geometry import ResizeMode
from visionserve.errors import ModelLoadError, ModelSpecError
from visionserve.models.autospec import model_name, parse_darknet_cfg, parse_names, spec_for_file
from visionserve.models.loading import spec_labels
from visionserve.models.spec import BackendKind, ColorOrder, OutputLayout


def onnx_file(tmp_path: Path, table: np.ndarray, name: str = "m.onnx", **kw: object) -> Path:
    return constant_onnx(tmp_path / name, table, **kw)  # type: ignore[arg-type]


def test_ultralytics_yolov8_export(tmp_path: Path) -> None:
    metadata = ultralytics_metadata(["person", "bicycle", "car"], (320, 640))
    path = onnx_file(tmp_path, yolov8_table([], 3, 40), input_shape=(1, 3, 320, 640), metadata=metadata)
    spec = spec_for_file(path)
    files, input_spec, decoder = spec.network
    assert (spec.name, spec.backend, spec.root, files.model) == ("m", BackendKind.ONNXRUNTIME, tmp_path, Path("m.onnx"))
    assert (input_spec.width, input_spec.height, input_spec.fixed_batch) == (640, 320, 1)
    assert (input_spec.resize, input_spec.color, input_spec.scale) == (ResizeMode.LETTERBOX, ColorOrder.RGB, 1 / 255)
    assert (decoder.layout, decoder.num_classes) == (OutputLayout.YOLOV8, 3)
    assert spec_labels(spec).as_dict() == {0: "person", 1: "bicycle", 2: "car"}


def test_dynamic_input_takes_its_size_from_imgsz(tmp_path: Path) -> None:
    metadata = ultralytics_metadata(["a", "b"], (480, 640))
    path = onnx_file(tmp_path, yolov8_table([], 2), input_shape=("batch", 3, "height", "width"), metadata=metadata)
    input_spec = spec_for_file(path).network[1]
    assert (input_spec.width, input_spec.height, input_spec.fixed_batch) == (640, 480, None)


def test_yolov5_without_metadata_gets_numbered_labels(tmp_path: Path) -> None:
    path = onnx_file(tmp_path, yolov5_table([], 3, 50), input_shape=(4, 3, 64, 96))
    spec = spec_for_file(path)
    assert spec.network[2].layout is OutputLayout.YOLOV5
    assert spec.network[1].fixed_batch == 4
    assert (spec.network[1].width, spec.network[1].height) == (96, 64)
    assert spec_labels(spec).as_dict() == {0: "class_0", 1: "class_1", 2: "class_2"}


def test_nhwc_input(tmp_path: Path) -> None:
    path = onnx_file(tmp_path, yolov8_table([], 2), input_shape=(1, 64, 96, 3))
    input_spec = spec_for_file(path).network[1]
    assert (input_spec.layout, input_spec.width, input_spec.height) == ("nhwc", 96, 64)


def test_region_output_is_tiny_yolov2_voc(tmp_path: Path) -> None:
    path = onnx_file(tmp_path, np.zeros((1, 125, 13, 13), np.float32), input_shape=("N", 3, 416, 416))
    spec = spec_for_file(path)
    decoder, input_spec = spec.network[2], spec.network[1]
    assert (decoder.layout, decoder.num_classes, decoder.anchors[0]) == (OutputLayout.YOLO_REGION, 20, (1.08, 1.19))
    assert (input_spec.resize, input_spec.scale, input_spec.width) == (ResizeMode.STRETCH, 1.0, 416)
    assert spec_labels(spec).name(14) == "person"


ONNX_ERRORS = {
    "oriented boxes task": (yolov8_table([], 2), {"task": "obb"}, (1, 3, 64, 64), "task 'obb' is not supported"),
    "end-to-end export": (np.zeros((1, 300, 6), np.float32), {"end2end": "True"}, (1, 3, 64, 64), "end-to-end"),
    "names disagree with output": (
        yolov8_table([], 2),
        {"names": "{0: 'a', 1: 'b', 2: 'c'}"},
        (1, 3, 64, 64),
        "C = 3 classes",
    ),
    "names not a literal": (yolov8_table([], 2), {"names": "person, car"}, (1, 3, 64, 64), "metadata 'names'"),
    "region without known anchors": (np.zeros((1, 30, 4, 4), np.float32), {}, (1, 3, 64, 64), "decoder.anchors"),
    "2-D output": (np.zeros((1, 10), np.float32), {}, (1, 3, 64, 64), "not a supported detection layout"),
    "dynamic size, no imgsz": (yolov8_table([], 2), {}, (1, 3, "h", "w"), "input size unknown"),
    "bad imgsz": (yolov8_table([], 2), {"imgsz": "big"}, (1, 3, 64, 64), "metadata 'imgsz'"),
    "grey input": (yolov8_table([], 2), {}, (1, 1, 64, 64), "must be [B, 3, H, W]"),
}


@pytest.mark.parametrize(("table", "metadata", "shape", "message"), ONNX_ERRORS.values(), ids=ONNX_ERRORS.keys())
def test_onnx_spec_errors_name_the_file(
    tmp_path: Path, table: np.ndarray, metadata: dict[str, str], shape: tuple[int | str, ...], message: str
) -> None:
    path = onnx_file(tmp_path, table, input_shape=shape, metadata=metadata)
    with pytest.raises(ModelSpecError, match=re.escape(str(path))) as caught:
        spec_for_file(path)
    assert message in str(caught.value)


def test_onnx_that_the_runtime_rejects(tmp_path: Path) -> None:
    path = tmp_path / "broken.onnx"
    path.write_bytes(b"not a protobuf")
    with pytest.raises(ModelLoadError, match=r"broken\.onnx"):
        spec_for_file(path)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("{0: 'person', 1: 'bicycle'}", {0: "person", 1: "bicycle"}),
        ("['a', 'b']", {0: "a", 1: "b"}),
        ("{3: 'sparse'}", {3: "sparse"}),
        (None, None),
    ],
)
def test_parse_names(raw: str | None, expected: dict[int, str] | None) -> None:
    assert parse_names(raw, Path("m.onnx")) == expected


@pytest.mark.parametrize("raw", ["{'a': 0}", "__import__('os')", "42"])
def test_parse_names_rejects(raw: str) -> None:
    with pytest.raises(ModelSpecError, match=r"m\.onnx: metadata 'names'"):
        parse_names(raw, Path("m.onnx"))


@pytest.mark.parametrize(
    ("stem", "expected"), [("yolov8n", "yolov8n"), ("my model (v2)", "my-model--v2-"), ("_x", "x"), ("..", "model")]
)
def test_model_name(stem: str, expected: str) -> None:
    assert model_name(Path(f"{stem}.onnx")) == expected


# --- Darknet ------------------------------------------------------------------------------------


def test_darknet_pair_from_either_file(tmp_path: Path) -> None:
    model = darknet_detector(tmp_path, "yolov4-tiny", class_logits=(0.0, 0.0, 0.0))
    for path in (model.cfg, model.weights):
        spec = spec_for_file(path)
        files, input_spec, decoder = spec.network
        assert (spec.name, spec.backend) == ("yolov4-tiny", BackendKind.OPENCV_DNN)
        assert (files.model, files.config) == (Path("yolov4-tiny.weights"), Path("yolov4-tiny.cfg"))
        assert (input_spec.width, input_spec.height, input_spec.resize) == (32, 32, ResizeMode.STRETCH)
        assert (input_spec.color, input_spec.scale) == (ColorOrder.RGB, 1 / 255)
        assert (decoder.layout, decoder.num_classes) == (OutputLayout.DARKNET_YOLO, 3)
        assert spec_labels(spec).as_dict() == {0: "class_0", 1: "class_1", 2: "class_2"}


@pytest.mark.parametrize("labels_file", ["net.names", "coco.names", "obj.names"])
def test_darknet_labels_file_beside(tmp_path: Path, labels_file: str) -> None:
    darknet_detector(tmp_path, "net", class_logits=(0.0, 0.0))
    (tmp_path / labels_file).write_text("cat\ndog\n", encoding="utf-8")
    assert spec_labels(spec_for_file(tmp_path / "net.cfg")).as_dict() == {0: "cat", 1: "dog"}


def test_darknet_labels_must_match_classes(tmp_path: Path) -> None:
    darknet_detector(tmp_path, "net", class_logits=(0.0, 0.0))
    (tmp_path / "coco.names").write_text("a\nb\nc\n", encoding="utf-8")
    with pytest.raises(ModelSpecError, match=r"coco\.names: 3 labels, but net\.cfg has classes=2"):
        spec_for_file(tmp_path / "net.cfg")


def test_darknet_missing_companion(tmp_path: Path) -> None:
    model = darknet_detector(tmp_path, "net", class_logits=(0.0,))
    model.weights.unlink()
    with pytest.raises(ModelSpecError, match=r"net\.cfg: Darknet weights net\.weights not found"):
        spec_for_file(model.cfg)


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ("[convolutional]\nfilters=3\n", "no [net] section"),
        ("[net]\nwidth=32\nheight=32\n[convolutional]\nfilters=3\n", "no [yolo] or [region] layer"),
        ("[net]\nwidth=32\n[yolo]\nclasses=2\n", "[net] has no 'height='"),
        ("[net]\nwidth=32\nheight=abc\n[yolo]\nclasses=2\n", "'height=abc' is not an integer"),
        ("[net]\nwidth=32\nheight=32\n[region]\nclasses=0\n", "[region] 'classes=0' must be positive"),
    ],
)
def test_darknet_cfg_errors(tmp_path: Path, cfg: str, message: str) -> None:
    (tmp_path / "m.cfg").write_text(cfg, encoding="utf-8")
    (tmp_path / "m.weights").write_bytes(b"")
    with pytest.raises(ModelSpecError, match=r"m\.cfg") as caught:
        spec_for_file(tmp_path / "m.weights")
    assert message in str(caught.value)


def test_parse_darknet_cfg_drops_comments() -> None:
    text = "# header\n[net]\nwidth = 416 # inline\n;height=1\n\n[yolo]\nclasses=80\n"
    assert parse_darknet_cfg(text) == [("net", {"width": "416"}), ("yolo", {"classes": "80"})]


# --- TF Object Detection API and others ---------------------------------------------------------


def test_tf_graph_needs_its_pbtxt(tmp_path: Path) -> None:
    graph = tmp_path / "frozen.pb"
    graph.write_bytes(b"\x00")
    with pytest.raises(ModelSpecError, match=r"frozen\.pb: OpenCV graph description frozen\.pbtxt not found"):
        spec_for_file(graph)
    (tmp_path / "frozen.pbtxt").write_text("node {}", encoding="utf-8")
    spec = spec_for_file(graph)
    assert (spec.network[2].layout, spec.network[2].nms) == (OutputLayout.TF_SSD, False)
    assert (spec.network[1].width, spec.network[1].height) == (300, 300)
    assert spec_labels(spec).name(1) == "person"
    (tmp_path / "labels.txt").write_text("0 background\n1 widget\n", encoding="utf-8")
    assert spec_labels(spec_for_file(graph)).name(1) == "widget"


def test_missing_or_unknown_files(tmp_path: Path) -> None:
    with pytest.raises(ModelSpecError, match="model file not found"):
        spec_for_file(tmp_path / "absent.onnx")
    other = tmp_path / "model.tflite"
    other.write_bytes(b"")
    with pytest.raises(ModelSpecError, match=r"model\.tflite: cannot infer a spec for '\.tflite' files"):
        spec_for_file(other)
