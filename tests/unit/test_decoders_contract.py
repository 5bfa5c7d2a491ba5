"""The decoder contract around the segment, pose and classify layouts: wrong output shapes are
:class:`DecodeError` naming the layout, a layout must answer the model's task, and a model may bring
its own layout in a module of its folder."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from tests.decoder_support import load_network
from tests.factories import constant_onnx, solid_image

from visionserve.decoders.base import DecodeParams, get_decoder
from visionserve.errors import DecodeError, ModelLoadError, ModelSpecError
from visionserve.models.loading import load_model
from visionserve.models.repository import ModelRepository
from visionserve.models.spec import OutputLayout, Task, load_spec
from visionserve.pipeline import PredictOptions


def z(*shape: int) -> np.ndarray:
    return np.zeros(shape, np.float32)


PARAMS = DecodeParams(input_width=64, input_height=64, conf=0.0, num_classes=2)
SEG = OutputLayout.YOLOV8_SEG
RCNN = OutputLayout.MASK_RCNN
POSE = OutputLayout.YOLOV8_POSE
MOVENET = OutputLayout.MOVENET
BAD_SHAPES = {
    "seg without prototypes": (SEG, [z(1, 38, 10)], 1, "two outputs [B, 4 + C + M, N]"),
    "seg with a third output": (SEG, [z(1, 38, 10), z(1, 32, 16, 16), z(1, 2, 3)], 1, "got shapes"),
    "seg prototypes without batch": (SEG, [z(1, 38, 10), z(32, 16, 16)], 1, "two outputs"),
    "seg prototypes of no cells": (SEG, [z(1, 38, 10), z(1, 32, 0, 0)], 1, "two outputs"),
    "seg wrong class count": (SEG, [z(1, 6, 10), z(1, 32, 16, 16)], 1, "C = 2 classes"),
    "seg batch too small": (SEG, [z(1, 38, 10), z(1, 32, 16, 16)], 2, "for 1 images"),
    "mask_rcnn without masks": (RCNN, [z(1, 1, 3, 7)], 1, "detection_masks [N, C, h, w]"),
    "mask_rcnn rows of 6": (RCNN, [z(1, 1, 3, 6), z(3, 3, 15, 15)], 1, "[1, 1, N, 7]"),
    "mask_rcnn masks 3-D": (RCNN, [z(1, 1, 3, 7), z(3, 3, 15)], 1, "two outputs"),
    "mask_rcnn masks of no pixels": (RCNN, [z(1, 1, 3, 7), z(3, 3, 0, 0)], 1, "two outputs"),
    "mask_rcnn fewer masks than rows": (RCNN, [z(1, 1, 3, 7), z(2, 3, 15, 15)], 1, "2 masks for 3 detections"),
    "pose 2-D": (POSE, [z(1, 56)], 1, "3-D output"),
    "pose rows not 5 + K * 3": (POSE, [z(1, 57, 10)], 1, "[B, 4 + 1 + K * 3, N]"),
    "pose without keypoints": (POSE, [z(1, 5, 10)], 1, "K = 0"),
    "pose without outputs": (POSE, [], 1, "got none"),
    "movenet 3-D": (MOVENET, [z(1, 17, 3)], 1, "4-D output"),
    "movenet two people": (MOVENET, [z(1, 2, 17, 3)], 1, "[B, 1, K, 3]"),
    "movenet (y, x) without score": (MOVENET, [z(1, 1, 17, 2)], 1, "[B, 1, K, 3]"),
    "movenet no keypoints": (MOVENET, [z(1, 1, 0, 3)], 1, "[B, 1, K, 3]"),
    "classify wrong class count": (OutputLayout.CLASSIFY, [z(1, 3)], 1, "C = 2 classes"),
    "classify a feature map": (OutputLayout.CLASSIFY, [z(1, 2, 2)], 1, "[B, C]"),
    "classify no scores": (OutputLayout.CLASSIFY, [z(1, 0)], 1, "[B, C]"),
    "yolov8_cls wrong class count": (OutputLayout.YOLOV8_CLS, [z(1, 5)], 1, "C = 2 classes"),
}


@pytest.mark.parametrize(("layout", "outputs", "batch", "message"), BAD_SHAPES.values(), ids=BAD_SHAPES.keys())
def test_wrong_shapes_name_the_layout(
    layout: OutputLayout, outputs: list[np.ndarray], batch: int, message: str
) -> None:
    with pytest.raises(DecodeError, match=f"^{layout.value} decoder.*{re.escape(message)}"):
        get_decoder(layout)(outputs, batch, PARAMS)


# --- task x layout ------------------------------------------------------------------------------


def write_yaml(folder: Path, task: str, decoder: str, labels: str = "[a, b]") -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / "model.yaml"
    path.write_text(
        f"name: m\ntask: {task}\nbackend: onnxruntime\nfiles: {{model: m.onnx}}\n"
        f"input: {{width: 64, height: 64}}\ndecoder: {decoder}\nlabels: {labels}\n",
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize("layout", list(OutputLayout), ids=str)
@pytest.mark.parametrize("task", list(Task), ids=str)
def test_a_layout_must_answer_the_task(tmp_path: Path, layout: OutputLayout, task: Task) -> None:
    anchors = ", anchors: [[1, 1]]" if layout is OutputLayout.YOLO_REGION else ""
    path = write_yaml(tmp_path, task.value, f"{{layout: {layout.value}{anchors}}}")
    if layout.task is task:
        assert load_spec(path).decoder is not None
        return
    with pytest.raises(ModelSpecError) as caught:
        load_spec(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: field 'decoder': ")
    assert f"layout {layout.value!r} gives {layout.task.value} results, but the task is {task.value}" in message


# --- a layout of the model's own ----------------------------------------------------------------
# my_decoders.py registers "<name>": a [B, N, 6] output of rows (x1, y1, x2, y2, score, class id) in
# network-input pixels. The layout name is unique per test: the registry is process-wide.
MY_DECODERS = """
import numpy as np

from visionserve.decoders.base import Candidates, register
from visionserve.models.spec import Task


@register("{name}", Task.{task})
def decode(outputs, batch_size, params):
    result = []
    for rows in outputs[0][:batch_size]:
        keep = rows[:, 4] >= params.conf
        result.append(Candidates(rows[keep, :4].copy(), rows[keep, 4].copy(), rows[keep, 5].astype(np.int32)))
    return result
"""


def own_layout_model(folder: Path, name: str, task: str = "DETECT") -> Path:
    """A model folder whose yaml names layout ``name``, registered by ``my_decoders.py`` beside it."""
    rows = np.zeros((1, 4, 6), np.float32)
    rows[0, 0] = (10, 20, 30, 60, 0.9, 1)
    rows[0, 1] = (12, 20, 32, 60, 0.8, 1)  # IoU 0.82 with the first: NMS removes it
    rows[0, 2] = (40, 8, 56, 24, 0.6, 0)
    rows[0, 3] = (0, 0, 8, 8, 0.1, 0)  # under conf 0.4
    folder.mkdir()
    constant_onnx(folder / "m.onnx", rows, input_shape=(1, 3, 64, 64))
    (folder / "my_decoders.py").write_text(MY_DECODERS.format(name=name, task=task), encoding="utf-8")
    write_yaml(folder, "detect", f"{{layout: {name}, module: my_decoders}}", "[cat, dog]")
    return folder


def test_a_model_brings_its_own_layout(tmp_path: Path) -> None:
    own_layout_model(tmp_path / "own", "vs_test_corner_rows")
    model = load_network(tmp_path, "m")
    # Stretch from 128 x 64: x doubles, y stays.
    (found,) = model.predict([solid_image(128, 64)])
    assert found.class_id.tolist() == [1, 0]
    np.testing.assert_allclose(found.xyxy, [(20, 20, 60, 60), (80, 8, 112, 24)])
    (only_cats,) = model.predict([solid_image(128, 64)], PredictOptions(classes=frozenset({0}), conf=0.05))
    np.testing.assert_allclose(only_cats.confidence, [0.6, 0.1])


def test_an_own_layout_of_another_task_is_refused(tmp_path: Path) -> None:
    folder = own_layout_model(tmp_path / "own", "vs_test_segment_rows", task="SEGMENT")
    spec = ModelRepository.scan(tmp_path).get("m")
    with pytest.raises(ModelSpecError) as caught:
        load_model(spec)
    message = str(caught.value)
    assert message.startswith(f"{folder / 'model.yaml'}: field 'decoder.layout': ")
    assert "'vs_test_segment_rows' gives segment results, but the model's task is detect" in message


def test_an_own_layout_needs_its_module(tmp_path: Path) -> None:
    with pytest.raises(ModelSpecError, match=r"unknown layout 'rows'.*needs 'decoder.module'"):
        load_spec(write_yaml(tmp_path / "a", "detect", "{layout: rows}"))
    folder = own_layout_model(tmp_path / "b", "vs_test_registered_elsewhere")
    (folder / "my_decoders.py").write_text("", encoding="utf-8")  # registers nothing
    with pytest.raises(ModelSpecError, match=r"field 'decoder.layout': unknown layout 'vs_test_registered_elsewhere'"):
        load_model(load_spec(folder / "model.yaml"))
    (folder / "my_decoders.py").write_text("raise RuntimeError('boom')\n", encoding="utf-8")
    with pytest.raises(ModelLoadError, match=r"cannot import decoder module 'my_decoders': RuntimeError: boom"):
        load_model(load_spec(folder / "model.yaml"))
