"""Per-class thresholds: ``visionserve eval --save-thresholds`` writes them where the repository reads
them, and ``conf=best`` (or ``conf: best`` in model.yaml) filters each class at its own threshold."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from tests.conftest import encode, photo
from tests.integration.conftest import write_default_model_copy

from visionserve.cli.main import main
from visionserve.core.detections import Detections
from visionserve.errors import InvalidParameterError
from visionserve.models.default import DEFAULT_MODEL_NAME, default_spec
from visionserve.models.loading import load_model
from visionserve.models.repository import ModelRepository
from visionserve.pipeline import PredictOptions, Predictor, parse_conf

# On the astronaut() array the default model finds a person (0.81) and a mouse (0.50) at its conf of 0.4.
PERSON_ONLY_HIGH = {"person": 0.9}


def labels_found(model: Predictor, conf: float | str | None) -> list[str]:
    (found,) = model.predict([photo("astronaut")], PredictOptions(conf=parse_conf(conf)))
    assert isinstance(found, Detections)
    return sorted(model.labels.name(int(c)) for c in found.class_id)


@contextlib.contextmanager
def loaded(repository: ModelRepository, name: str) -> Iterator[Predictor]:
    model = load_model(repository.get(name))
    try:
        yield model
    finally:
        model.close()


def write_thresholds(path: Path, classes: dict[str, float]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"classes": classes}))


def test_best_filters_each_class_at_its_saved_threshold(tmp_path: Path) -> None:
    write_thresholds(tmp_path / DEFAULT_MODEL_NAME / "thresholds.yaml", PERSON_ONLY_HIGH)
    repository = ModelRepository.scan(tmp_path)
    assert repository.get(DEFAULT_MODEL_NAME).class_conf == PERSON_ONLY_HIGH
    with loaded(repository, DEFAULT_MODEL_NAME) as model:
        assert labels_found(model, None) == ["mouse", "person"]
        # person needs 0.9; mouse has no saved threshold and keeps the model's conf (0.4).
        assert labels_found(model, "best") == ["mouse"]
        assert labels_found(model, 0.6) == ["person"]


def test_best_without_saved_thresholds_is_a_clear_error() -> None:
    model = load_model(default_spec())
    try:
        with pytest.raises(InvalidParameterError, match="no saved per-class thresholds"):
            model.predict([photo("astronaut")], PredictOptions(conf="best"))
    finally:
        model.close()
    with pytest.raises(InvalidParameterError, match="'best'"):
        parse_conf("high")


def test_model_yaml_can_make_best_the_default(tmp_path: Path) -> None:
    write_default_model_copy(tmp_path, "ssd-best", thresholds={"conf": "best"})
    broken = ModelRepository.scan(tmp_path)
    assert "no per-class thresholds are saved" in broken.broken["ssd-best"]
    write_thresholds(tmp_path / "ssd-best" / "thresholds.yaml", PERSON_ONLY_HIGH)
    repository = ModelRepository.scan(tmp_path)
    assert repository.get("ssd-best").thresholds.best
    with loaded(repository, "ssd-best") as model:
        assert labels_found(model, None) == ["mouse"]
        assert labels_found(model, 0.4) == ["mouse", "person"]


def test_eval_saves_thresholds_for_a_builtin_in_the_repository(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    (images / "astronaut.jpg").write_bytes(encode(photo("astronaut")))
    # The person is labelled; the mouse is not, but a labelled mouse elsewhere makes it a class of the set.
    (images / "chelsea.jpg").write_bytes(encode(photo("chelsea")))
    coco = {
        "images": [{"id": 1, "file_name": "astronaut.jpg", "width": 512, "height": 512},
                   {"id": 2, "file_name": "chelsea.jpg", "width": 451, "height": 300}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [12.6, 13.2, 359.1, 497.2], "area": 1.0},
                        {"id": 2, "image_id": 2, "category_id": 2, "bbox": [9, 1, 394, 296], "area": 1.0},
                        {"id": 3, "image_id": 2, "category_id": 3, "bbox": [0, 0, 20, 20], "area": 1.0}],
        "categories": [{"id": 1, "name": "person"}, {"id": 2, "name": "cat"}, {"id": 3, "name": "mouse"}],
    }  # fmt: skip
    (tmp_path / "gt.json").write_text(json.dumps(coco))
    args = ["eval", "--images", str(images), "--annotations", str(tmp_path / "gt.json"), "--save-thresholds", "--quiet"]
    refused = CliRunner().invoke(main, args)
    assert refused.exit_code == 1 and "--models DIR" in refused.output
    models = tmp_path / "models"
    models.mkdir()
    result = CliRunner().invoke(main, [*args, "--models", str(models), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    saved = yaml.safe_load((models / DEFAULT_MODEL_NAME / "thresholds.yaml").read_text())["classes"]
    assert saved == {row["label"]: row["best_conf"] for row in report["classes"] if row["best_conf"] is not None}
    assert set(saved) == {"person", "cat"}  # the mouse detection never matches: no threshold
    assert report["thresholds_file"] == str(models / DEFAULT_MODEL_NAME / "thresholds.yaml")
    assert ModelRepository.scan(models).get(DEFAULT_MODEL_NAME).class_conf == saved


def test_eval_saves_thresholds_beside_a_repository_models_yaml(tmp_path: Path) -> None:
    write_default_model_copy(tmp_path / "models", "my-ssd")
    images = tmp_path / "images"
    images.mkdir()
    (images / "chelsea.jpg").write_bytes(encode(photo("chelsea")))
    coco = {
        "images": [{"id": 1, "file_name": "chelsea.jpg", "width": 451, "height": 300}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 7, "bbox": [9, 1, 394, 296], "area": 1.0}],
        "categories": [{"id": 7, "name": "cat"}],
    }
    (tmp_path / "gt.json").write_text(json.dumps(coco))
    args = ["eval", "--model", "my-ssd", "--models", str(tmp_path / "models"), "--images", str(images)]
    result = CliRunner().invoke(
        main, [*args, "--annotations", str(tmp_path / "gt.json"), "--save-thresholds", "--quiet"]
    )
    assert result.exit_code == 0, result.output
    assert "saved 1 per-class thresholds" in result.stderr
    saved = yaml.safe_load((tmp_path / "models" / "my-ssd" / "thresholds.yaml").read_text())
    assert saved["classes"]["cat"] == pytest.approx(0.8856, abs=1e-3)
    assert saved["model"] == "my-ssd"


def test_detect_command_takes_conf_best(tmp_path: Path) -> None:
    write_thresholds(tmp_path / "models" / DEFAULT_MODEL_NAME / "thresholds.yaml", PERSON_ONLY_HIGH)
    (tmp_path / "astronaut.jpg").write_bytes(encode(photo("astronaut")))
    args = ["detect", str(tmp_path / "astronaut.jpg"), "--conf", "best", "--json"]
    refused = CliRunner().invoke(main, args)
    assert refused.exit_code == 1 and "no saved per-class thresholds" in refused.output
    result = CliRunner().invoke(main, [*args, "--models", str(tmp_path / "models")])
    assert result.exit_code == 0, result.output
    assert [d["label"] for d in json.loads(result.stdout)["results"][0]["detections"]] == ["mouse"]
    assert CliRunner().invoke(main, [*args[:3], "--conf", "high"]).exit_code == 2
