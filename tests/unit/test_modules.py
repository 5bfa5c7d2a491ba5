"""Analysis modules without a server: discovery in the repository, imports and relative paths inside
the module's folder, answers turned into detections with candidates, labels, devices and cleanup."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.module_support import blobs_image, loads, write_colour_module

from visionserve.core.candidates import NO_CLASS, CandidateLabels
from visionserve.core.detections import Detections
from visionserve.errors import InferenceError, ModelLoadError, ModelSpecError
from visionserve.models.devices import spec_on_device
from visionserve.models.labels import LabelBook, Labels
from visionserve.models.loading import load_model, spec_labels
from visionserve.models.repository import ModelRepository
from visionserve.modules.answers import to_detections
from visionserve.pipeline import PredictOptions

ONE = "class Only:\n    def inference_by_path(self, path):\n        return [[(1, 2, 3, 4), {'a': 0.5, 'b': 0.7}]]\n"


def module_folder(root: Path, name: str, main: str, **files: str) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "main.py").write_text(main)
    for file, text in files.items():
        (folder / file.replace("__", ".")).write_text(text)
    return folder


# discovery


def test_a_folder_with_one_module_class_needs_no_yaml(tmp_path: Path) -> None:
    module_folder(tmp_path, "only", "import os\n\nclass Helper:\n    pass\n\n" + ONE)
    spec = ModelRepository.scan(tmp_path).get("only")
    assert (spec.backend.value, spec.module and spec.module.class_name, spec.thresholds.conf) == ("module", "Only", 0)


def test_model_yaml_names_the_class_and_defaults_name_and_backend(tmp_path: Path) -> None:
    two = ONE + ONE.replace("Only", "Other")
    module_folder(tmp_path, "pick", two, model__yaml="module: {class: Other, image_format: jpg}\nlabels: [x]\n")
    module_folder(tmp_path, "named", ONE, model__yaml="name: renamed\nbackend: module\n", labels__txt="b\na\n")
    repository = ModelRepository.scan(tmp_path)
    pick, named = repository.get("pick"), repository.get("renamed")
    assert pick.module is not None and (pick.module.class_name, pick.module.image_format.value) == ("Other", "jpg")
    assert spec_labels(pick).as_dict() == {0: "x"}
    assert spec_labels(named).as_dict() == {0: "b", 1: "a"}  # labels.txt beside main.py


@pytest.mark.parametrize(
    ("main", "words"),
    [
        ("class A:\n    pass\n", ["no class with a inference_by_path method", "module: {class: ClassName}"]),
        (ONE + ONE.replace("Only", "Two"), ["2 classes", "(Only, Two)"]),
        ("def broken(:\n", ["not valid Python"]),
    ],
)
def test_discovery_errors_name_the_folder(tmp_path: Path, main: str, words: list[str]) -> None:
    module_folder(tmp_path, "bad", main)
    repository = ModelRepository.scan(tmp_path)
    assert "bad" not in repository.specs
    error = repository.broken["bad"]
    assert str(tmp_path / "bad") in error and all(word in error for word in words), error
    with pytest.raises(ModelSpecError, match="bad"):
        repository.get("bad")


def test_a_yaml_beside_main_py_for_another_backend_is_that_model(tmp_path: Path) -> None:
    module_folder(tmp_path, "net", ONE, model__yaml="name: net\nbackend: plugin\nplugin: x:Y\n")
    module_folder(tmp_path, "wrong", ONE, model__yaml="name: w\nmodule: {class: Only}\nbackend: plugin\nplugin: x:Y\n")
    repository = ModelRepository.scan(tmp_path)
    assert repository.get("net").backend.value == "plugin"
    assert "'module' is for backend 'module'" in repository.broken["wrong"]


def test_a_module_folder_resolves_by_path(tmp_path: Path) -> None:
    folder = module_folder(tmp_path, "by-path", ONE)
    assert ModelRepository.scan(None).resolve(str(folder)).name == "by-path"


# loading: imports, relative paths, devices


def test_relative_imports_bare_imports_and_relative_paths_work_in_the_folder(tmp_path: Path) -> None:
    main = (
        "from . import helper\nimport neighbour\n\n"
        "class M:\n    def __init__(self):\n        with open('data.txt') as f:\n            self.text = f.read()\n"
        "    def inference_by_path(self, path):\n"
        "        return [[(0, 0, 1, 1), {helper.NAME: 1.0, neighbour.NAME: 0.5, self.text: 0.2}]]\n"
    )
    module_folder(tmp_path, "m", main, helper__py="NAME = 'rel'\n", neighbour__py="NAME = 'bare'\n", data__txt="file")
    sys.modules["neighbour"] = hidden = type(sys)("neighbour")  # an unrelated module of the same name
    cwd, path = os.getcwd(), list(sys.path)
    try:
        model = load_model(ModelRepository.scan(tmp_path).get("m"))
        assert sys.modules["neighbour"] is hidden and os.getcwd() == cwd and sys.path == path
    finally:
        del sys.modules["neighbour"]
    (found,) = model.predict([blobs_image()])
    assert isinstance(found, Detections) and found.candidates is not None
    assert [model.labels.name(c) for c, _ in found.candidates.row(0)] == ["rel", "bare", "file"]
    model.close()


def test_two_modules_each_get_their_own_neighbour_of_one_name(tmp_path: Path) -> None:
    main = "import utils\n\nclass M:\n    def inference_by_path(self, path):\n"
    main += "        return [[(0, 0, 1, 1), {utils.N: 1}]]\n"
    module_folder(tmp_path, "one", main, utils__py="N = 'one'\n")
    module_folder(tmp_path, "two", main, utils__py="N = 'two'\n")
    repository = ModelRepository.scan(tmp_path)
    models = [load_model(repository.get(name)) for name in ("one", "two")]
    assert "utils" not in sys.modules
    for model, name in zip(models, ("one", "two"), strict=True):
        (found,) = model.predict([blobs_image()])
        assert isinstance(found, Detections) and model.labels.name(int(found.class_id[0])) == name
        model.close()


@pytest.mark.parametrize(
    ("device", "expected"),
    [("cuda:1", ["cuda:1", "1"]), ("cpu", ["cpu", "-1"])],
)
def test_the_constructor_is_told_its_device(tmp_path: Path, device: str, expected: list[str]) -> None:
    folder = write_colour_module(tmp_path, "colours")
    spec = spec_on_device(ModelRepository.scan(tmp_path).get("colours"), device)
    load_model(spec).close()
    assert loads(folder)[-1][1:3] == expected


def test_a_constructor_without_device_parameters_gets_none_and_options_become_keywords(tmp_path: Path) -> None:
    main = (
        "class M:\n    def __init__(self, size=1):\n        self.size = size\n"
        "    def inference_by_path(self, path):\n        return [[(0, 0, self.size, self.size), {'x': 1}]]\n"
    )
    module_folder(tmp_path, "m", main, model__yaml="options: {size: 7}\n")
    model = load_model(spec_on_device(ModelRepository.scan(tmp_path).get("m"), "cuda:0"))
    (found,) = model.predict([blobs_image()])
    assert isinstance(found, Detections) and found.xyxy.tolist() == [[0, 0, 7, 7]]
    model.close()


@pytest.mark.parametrize(
    ("main", "message"),
    [
        ("class M:\n    def __init__(self):\n        open('missing.bin')\n"
         "    def inference_by_path(self, p): pass\n",
         "FileNotFoundError"),
        ("import not_a_module_anywhere\n" + ONE, "ModuleNotFoundError"),
    ],
)  # fmt: skip
def test_load_failures_are_model_load_errors(tmp_path: Path, main: str, message: str) -> None:
    module_folder(tmp_path, "m", main)
    with pytest.raises(ModelLoadError, match=message):
        load_model(ModelRepository.scan(tmp_path).get("m"))


def test_a_named_class_that_is_missing_is_a_load_error(tmp_path: Path) -> None:
    module_folder(tmp_path, "m", ONE, model__yaml="module: {class: Absent}\n")
    with pytest.raises(ModelLoadError, match="no class 'Absent'"):
        load_model(ModelRepository.scan(tmp_path).get("m"))


# serving: temp files, answers, errors


def test_each_call_gets_a_private_picture_that_is_removed_after(tmp_path: Path) -> None:
    main = (
        "import os, cv2\n\nclass M:\n    def __init__(self):\n        self.seen = []\n"
        "    def inference_by_path(self, path):\n        image = cv2.imread(path)\n"
        "        self.seen.append((path, os.stat(os.path.dirname(path)).st_mode & 0o777, image.shape))\n"
        "        return []\n"
    )
    module_folder(tmp_path, "m", main)
    model = load_model(ModelRepository.scan(tmp_path).get("m"))
    model.predict([blobs_image(), np.zeros((5, 7, 3), np.uint8)])
    module: Any = model._module  # type: ignore[attr-defined]
    (first, mode, shape), (second, _, small) = module.seen
    assert first != second and first.endswith(".png") and mode == 0o700
    assert shape == (240, 320, 3) and small == (5, 7, 3)
    assert not Path(first).exists() and Path(first).parent.exists()
    model.close()
    assert not Path(first).parent.exists()


def test_module_exceptions_and_bad_answers_are_inference_errors(tmp_path: Path) -> None:
    main = (
        "class M:\n    answer = None\n    def inference_by_path(self, path):\n"
        "        if self.answer == 'raise':\n            raise RuntimeError('boom')\n        return self.answer\n"
    )
    module_folder(tmp_path, "m", main)
    model = load_model(ModelRepository.scan(tmp_path).get("m"))
    module: Any = model._module  # type: ignore[attr-defined]
    module.answer = "raise"
    with pytest.raises(InferenceError, match="RuntimeError: boom"):
        model.predict([blobs_image()])
    module.answer = {"x": 1}
    with pytest.raises(InferenceError, match=r"returned dict, expected a list of \[\(x, y, w, h\)"):
        model.predict([blobs_image()])
    model.close()


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ([[(1, 2, 3), {"a": 1}]], "not four numbers"),
        ([[(1, 2, 3, -4), {"a": 1}]], "width and height >= 0"),
        ([[(1, 2, 3, 4), ["a"]]], "expected {label: probability}"),
        ([[(1, 2, 3, 4), {"a": "high"}]], "probability of 'a' is 'high'"),
        ([[(1, 2, 3, 4), {"a": float("nan")}]], "probability of 'a' is nan"),
        ([(1, 2, 3, 4)], "item 0 is (1, 2, 3, 4)"),
    ],
)
def test_answers_of_another_shape_say_what_was_expected(answer: Any, message: str) -> None:
    with pytest.raises(InferenceError, match="module m: inference_by_path") as raised:
        to_detections(answer, LabelBook(Labels({})).id_for, "module m")
    assert message in str(raised.value)


def test_answers_become_detections_with_sorted_candidates() -> None:
    book = LabelBook(Labels({0: "cat"}))
    answer = [
        [np.array([10, 20, 30, 40]), {"dog": np.float32(0.2), "cat": 0.7, "fox": 0.7}],
        [(0, 0, 1, 1), {}],  # no label: skipped
        ((5, 5, 0, 0), {"fox": 0.1}),
    ]
    found = to_detections(answer, book.id_for, "m")
    assert found.xyxy.tolist() == [[10, 20, 40, 60], [5, 5, 5, 5]]
    assert found.class_id.tolist() == [0, 2] and found.confidence.tolist() == pytest.approx([0.7, 0.1])
    assert found.candidates is not None and found.candidates.row(0) == [
        (0, pytest.approx(0.7)),
        (2, pytest.approx(0.7)),
        (1, pytest.approx(0.2)),
    ]
    assert found.candidates.class_id[1].tolist() == [2, NO_CLASS, NO_CLASS]
    assert book.as_dict() == {0: "cat", 1: "dog", 2: "fox"}
    assert to_detections([], book.id_for, "m").candidates is None


def test_candidates_follow_their_detections_through_filters() -> None:
    candidates = CandidateLabels.from_rows([[(0, 0.3), (1, 0.2)], [(2, 0.9)], [(1, 0.5)]])
    found = Detections(np.zeros((3, 4)), np.array([0.3, 0.9, 0.5]), np.array([0, 2, 1]), candidates=candidates)
    kept = found.filter(0.4, max_det=5).sorted_by_confidence()
    assert kept.candidates is not None and [kept.candidates.row(i) for i in range(2)] == [
        [(2, pytest.approx(0.9))],
        [(1, pytest.approx(0.5))],
    ]
    assert found.scaled(2, 2).candidates is candidates
    with pytest.raises(ValueError, match="candidates must have 3 rows"):
        Detections(np.zeros((3, 4)), np.zeros(3), np.zeros(3), candidates=candidates[:1])
    with pytest.raises(ValueError, match=r"shape \(N, K\)"):
        CandidateLabels(np.zeros((2, 2)), np.zeros((2, 3)))


def test_the_label_book_is_shared_stable_and_bounded(tmp_path: Path) -> None:
    write_colour_module(tmp_path, "colours")
    spec = ModelRepository.scan(tmp_path).get("colours")
    first, second = load_model(spec), load_model(ModelRepository.scan(tmp_path).get("colours"))
    first.predict([blobs_image()])
    assert second.labels is first.labels is spec_labels(spec)  # every instance, a rescan, the manager
    assert first.labels.as_dict() == {0: "red", 1: "red-ish", 2: "green", 3: "green-ish"}
    only_green = first.predict([blobs_image()], PredictOptions(classes=frozenset({2})))
    assert [len(p) for p in only_green] == [1]
    first.close()
    second.close()
    small = LabelBook(Labels({0: "a"}), limit=2)
    assert small.id_for("b") == 1
    with pytest.raises(InferenceError, match="more than 2 different labels"):
        small.id_for("c")
