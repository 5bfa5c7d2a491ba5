from __future__ import annotations

from pathlib import Path

import pytest

from visionserve.errors import ModelNotFoundError, ModelSpecError
from visionserve.models.builtin import CLASSIFIER_NAME, POSE_NAME
from visionserve.models.default import DEFAULT_MODEL_NAME
from visionserve.models.labels import read_labels_file
from visionserve.models.loading import spec_labels
from visionserve.models.repository import ModelRepository
from visionserve.models.spec import OutputLayout, load_spec

GOOD = """\
name: my-yolo
backend: onnxruntime
files: {model: best.onnx}
input: {width: 640, height: 480, resize: letterbox, scale: 0.00392156862745098}
decoder: {layout: yolov8}
labels: [widget, gadget]
thresholds: {conf: 0.25}
batching: {max_batch_size: 4}
instances: 2
"""


BUILTINS = [DEFAULT_MODEL_NAME, CLASSIFIER_NAME, POSE_NAME]


def write(root: Path, folder: str, text: str) -> Path:
    (root / folder).mkdir(parents=True, exist_ok=True)
    path = root / folder / "model.yaml"
    path.write_text(text)
    return path


def test_a_hand_written_yaml_validates(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, "my-yolo", GOOD))
    assert spec.name == "my-yolo" and spec.decoder is not None and spec.decoder.layout is OutputLayout.YOLOV8
    assert spec.input is not None and (spec.input.width, spec.input.height) == (640, 480)
    assert spec.path(Path("best.onnx")) == tmp_path / "my-yolo" / "best.onnx"
    assert spec.thresholds.conf == 0.25 and spec.instances == 2 and spec.batching.max_batch_size == 4
    assert spec_labels(spec).name(1) == "gadget"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (("width: 640", "width: -1"), "input.width"),
        (("layout: yolov8", "layout: yolov99"), "decoder.layout"),
        (("conf: 0.25", "conf: 2"), "thresholds.conf"),
        (("instances: 2", "instances: 2\ncolour: red"), "colour"),
        (("backend: onnxruntime", "backend: tensorflow"), "backend"),
    ],
)
def test_errors_name_the_file_and_the_field(tmp_path: Path, change: tuple[str, str], field: str) -> None:
    path = write(tmp_path, "m", GOOD.replace(*change))
    with pytest.raises(ModelSpecError) as info:
        load_spec(path)
    assert str(path) in str(info.value) and f"field '{field}'" in str(info.value)


def test_missing_sections_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ModelSpecError, match="needs files, input, decoder"):
        load_spec(write(tmp_path, "a", "name: a\nbackend: opencv_dnn\n"))
    with pytest.raises(ModelSpecError, match="not valid YAML"):
        load_spec(write(tmp_path, "b", "name: [unclosed\n"))
    with pytest.raises(ModelSpecError, match="expected a mapping"):
        load_spec(write(tmp_path, "c", "- just\n- a list\n"))
    with pytest.raises(ModelSpecError, match="needs 'anchors'"):
        load_spec(write(tmp_path, "d", GOOD.replace("yolov8", "yolo_region")))


def test_repository_lists_good_models_and_reports_broken_ones(tmp_path: Path) -> None:
    write(tmp_path, "my-yolo", GOOD)
    write(tmp_path, "broken", "name: broken\nbackend: plugin\n")
    repo = ModelRepository.scan(tmp_path)
    assert repo.names() == sorted(["my-yolo", *BUILTINS])
    assert "plugin" in repo.broken["broken"]
    with pytest.raises(ModelSpecError, match="broken"):
        repo.get("broken")
    with pytest.raises(ModelNotFoundError, match="unknown model 'nope'"):
        repo.resolve("nope")
    assert repo.resolve(str(tmp_path / "my-yolo")).name == "my-yolo"
    assert repo.resolve(str(tmp_path / "my-yolo" / "model.yaml")).name == "my-yolo"


def test_empty_or_missing_folder(tmp_path: Path) -> None:
    assert ModelRepository.scan(tmp_path).names() == sorted(BUILTINS)
    with pytest.raises(ModelSpecError, match="is not a folder"):
        ModelRepository.scan(tmp_path / "missing")


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("l.txt", "# comment\ncat\ndog\n", {0: "cat", 1: "dog"}),
        ("l.txt", "1 person\n3 traffic light\n", {1: "person", 3: "traffic light"}),
        ("l.yaml", "{5: five, 7: seven}", {5: "five", 7: "seven"}),
        ("l.json", '["a", "b"]', {0: "a", 1: "b"}),
    ],
)
def test_label_files(tmp_path: Path, name: str, text: str, expected: dict[int, str]) -> None:
    (tmp_path / name).write_text(text)
    assert read_labels_file(tmp_path / name).as_dict() == expected
