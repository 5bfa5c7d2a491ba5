"""Plugin models named in a model.yaml, loaded from a repository folder by the real loading code."""

from __future__ import annotations

import importlib.machinery
import sys
from pathlib import Path

import numpy as np
import pytest
from tests.factories import solid_image

from visionserve.errors import InferenceError, ModelLoadError
from visionserve.models.loading import load_model
from visionserve.models.repository import ModelRepository
from visionserve.pipeline import PredictOptions, Predictor
from visionserve.plugins import import_decoder_module


def repository(root: Path, plugin: str = "tests.plugins_sample:FixedBoxes", extra: str = "") -> ModelRepository:
    (root / "fixed").mkdir()
    (root / "fixed" / "model.yaml").write_text(
        f"name: fixed\nbackend: plugin\nplugin: {plugin}\nlabels: [widget, gadget]\n"
        f"thresholds: {{conf: 0.5, max_det: 10}}\n{extra}",
        encoding="utf-8",
    )
    return ModelRepository.scan(root)


@pytest.fixture
def model(tmp_path: Path) -> Predictor:
    return load_model(repository(tmp_path).get("fixed"))


def rows(model: Predictor, options: PredictOptions | None = None) -> list[list[tuple[list[float], float, int]]]:
    images = [solid_image(200, 100), solid_image(40, 80)]
    return [
        [(box.tolist(), round(float(s), 4), int(c)) for box, s, c in zip(d.xyxy, d.confidence, d.class_id, strict=True)]
        for d in model.infer(images, options).predictions
    ]


CASES = {
    "model conf 0.5 drops the 0.3 box": (PredictOptions(), [(0, 0.9), (1, 0.6)]),
    "lower conf keeps it": (PredictOptions(conf=0.2), [(0, 0.9), (1, 0.6), (2, 0.3)]),
    "classes": (PredictOptions(conf=0.2, classes=frozenset({0})), [(0, 0.9), (2, 0.3)]),
    "max_det keeps the best": (PredictOptions(conf=0.2, max_det=2), [(0, 0.9), (1, 0.6)]),
}
# Each fixed box as a fraction of the image; scaled by hand to 200 x 100 and 40 x 80.
BOXES = {
    (200, 100): [[50, 25, 150, 75], [0, 0, 100, 50], [100, 50, 200, 100]],
    (40, 80): [[10, 20, 30, 60], [0, 0, 20, 40], [20, 40, 40, 80]],
}


@pytest.mark.parametrize(("options", "kept"), CASES.values(), ids=CASES.keys())
def test_plugin_boxes_and_options(model: Predictor, options: PredictOptions, kept: list[tuple[int, float]]) -> None:
    ids = {0: 0, 1: 1, 2: 0}
    assert rows(model, options) == [[(boxes[i], score, ids[i]) for i, score in kept] for boxes in BOXES.values()]


def test_plugin_gets_spec_options_and_labels(tmp_path: Path) -> None:
    model = load_model(repository(tmp_path, extra="options: {scale: 0.5}\n").get("fixed"))
    assert model.labels.as_dict() == {0: "widget", 1: "gadget"}
    assert [[score for _, score, _ in found] for found in rows(model, PredictOptions(conf=0.1))] == [
        [0.45, 0.3, 0.15]
    ] * 2


def test_plugin_returning_too_few_results(tmp_path: Path) -> None:
    model = load_model(repository(tmp_path, extra="options: {broken: true}\n").get("fixed"))
    with pytest.raises(InferenceError, match="one Detections or Classifications per image"):
        model.infer([solid_image(10, 10), solid_image(10, 10)])


@pytest.mark.parametrize(
    ("plugin", "message"),
    [
        ("tests.plugins_sample:Missing", "cannot import plugin"),
        ("tests.no_such_module:Thing", "cannot import plugin"),
        ("tests.plugins_sample:NotAPlugin", "must define load"),
    ],
)
def test_bad_plugin_paths(tmp_path: Path, plugin: str, message: str) -> None:
    with pytest.raises(ModelLoadError, match=message):
        load_model(repository(tmp_path, plugin=plugin).get("fixed"))


def test_plugin_module_beside_its_model_yaml(tmp_path: Path) -> None:
    """A plugin module in the model's own folder is importable by its bare name."""
    repo = repository(tmp_path, plugin="local_plugin:Local")
    (tmp_path / "fixed" / "local_plugin.py").write_text(
        "from tests.plugins_sample import FixedBoxes\n\nclass Local(FixedBoxes):\n    pass\n", encoding="utf-8"
    )
    model = load_model(repo.get("fixed"))
    assert len(model.infer([np.zeros((10, 10, 3), np.uint8)]).predictions[0]) == 2
    model.close()


PLUGIN_FILE = """\
import numpy as np
from visionserve.core.detections import Detections


class Detector:
    def load(self, spec):
        pass

    def predict(self, images):
        return [Detections(np.array([[0, 0, 5, 5]], np.float32), np.array([0.9], np.float32),
                           np.array([{class_id}], np.int32)) for _ in images]
"""


def test_plugins_with_the_same_file_name_in_two_models_stay_apart(tmp_path: Path) -> None:
    for name, class_id in (("first", 0), ("second", 1)):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "detector.py").write_text(PLUGIN_FILE.format(class_id=class_id), encoding="utf-8")
        (folder / "model.yaml").write_text(
            f"name: {name}\nbackend: plugin\nplugin: detector:Detector\nlabels: [a, b]\n", encoding="utf-8"
        )
    repo = ModelRepository.scan(tmp_path)
    found = [
        load_model(repo.get(name)).predict([solid_image(10, 10)])[0].class_id.tolist() for name in ("first", "second")
    ]
    assert found == [[0], [1]]


def test_a_plugin_that_fails_to_import_is_a_load_error(tmp_path: Path) -> None:
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "bad.py").write_text("def broken(:\n", encoding="utf-8")
    (tmp_path / "broken" / "model.yaml").write_text(
        "name: broken\nbackend: plugin\nplugin: bad:Detector\nlabels: [a]\n", encoding="utf-8"
    )
    with pytest.raises(ModelLoadError, match="SyntaxError"):
        load_model(ModelRepository.scan(tmp_path).get("broken"))


SHADOW = "raise ImportError('the model folder shadowed PyYAML')\n"


@pytest.mark.parametrize("plugin", ["detector:Detector", "mypkg.detector:Detector", "mypkg:Detector"])
def test_a_model_folder_never_shadows_installed_modules(tmp_path: Path, plugin: str) -> None:
    """A ``yaml.py`` beside the model stays invisible to everyone else: the plugin (a file, or a
    package loaded by location with its submodules) is found without touching ``sys.path``."""
    folder = tmp_path / "shadow"
    (folder / "mypkg").mkdir(parents=True)
    (folder / "yaml.py").write_text(SHADOW, encoding="utf-8")
    (folder / "detector.py").write_text(PLUGIN_FILE.format(class_id=1), encoding="utf-8")
    (folder / "mypkg" / "__init__.py").write_text("from .detector import Detector\n", encoding="utf-8")
    (folder / "mypkg" / "detector.py").write_text(PLUGIN_FILE.format(class_id=1), encoding="utf-8")
    (folder / "model.yaml").write_text(f"name: shadow\nbackend: plugin\nplugin: {plugin}\nlabels: [a, b]\n", "utf-8")
    path_before = list(sys.path)
    model = load_model(ModelRepository.scan(tmp_path).get("shadow"))
    assert model.predict([solid_image(10, 10)])[0].class_id.tolist() == [1]
    assert sys.path == path_before
    found = importlib.machinery.PathFinder.find_spec("yaml")
    assert found is not None and found.origin is not None and str(folder) not in found.origin


def test_a_decoder_module_package_loads_by_location(tmp_path: Path) -> None:
    folder = tmp_path / "pkg"
    (folder / "heads").mkdir(parents=True)
    (folder / "yaml.py").write_text(SHADOW, encoding="utf-8")
    (folder / "heads" / "__init__.py").write_text("", encoding="utf-8")
    (folder / "heads" / "mine.py").write_text("LOADED = True\n", encoding="utf-8")
    path_before = list(sys.path)
    import_decoder_module("heads.mine", search_path=str(folder), namespace="pkg")
    assert sys.modules["visionserve_plugins.pkg.decoders.heads.mine"].LOADED is True
    assert sys.path == path_before and "heads" not in sys.modules
