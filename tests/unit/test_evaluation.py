"""``visionserve eval`` and the evaluation package on a small labelled set of real photos (see
tests/evaluation_support.py): the figures are COCOeval's on the same detections; YOLO and VOC copies of
the COCO file give the same figures; unknown class names are refused or skipped; classify accuracy."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from tests.conftest import encode, photo
from tests.evaluation_support import build_coco, to_voc, to_yolo, write_photos
from tests.factories import pose_model_folder, seg_model_folder, solid_image

from visionserve.cli.main import main
from visionserve.core.detections import Detections
from visionserve.errors import DatasetError, UnmatchedClassesError
from visionserve.evaluation.classify_sets import read_csv, read_folders
from visionserve.evaluation.datasets import read_coco
from visionserve.evaluation.evaluate import evaluate_boxes, evaluate_classes
from visionserve.evaluation.formats import read_voc, read_yolo
from visionserve.evaluation.metrics import Curve
from visionserve.evaluation.runner import local_infer
from visionserve.models.builtin import classifier_spec
from visionserve.models.default import default_spec
from visionserve.models.loading import load_model
from visionserve.models.repository import ModelRepository
from visionserve.pipeline import Predictor


@pytest.fixture(scope="module")
def model() -> Iterator[Predictor]:
    loaded = load_model(default_spec())
    yield loaded
    loaded.close()


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory, model: Predictor) -> tuple[Path, Path, dict[str, Any]]:
    """(images folder, COCO file, its document)."""
    root = tmp_path_factory.mktemp("evalset")
    write_photos(root / "images")
    coco = build_coco(root / "images", local_infer(model), model.labels)
    (root / "gt.json").write_text(json.dumps(coco), encoding="utf-8")
    return root / "images", root / "gt.json", coco


def cocoeval(gt_file: Path, detections: list[dict[str, Any]]) -> COCOeval:
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_file))
        evaluator = COCOeval(gt, gt.loadRes(detections), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator


def test_cli_figures_are_cocoevals_on_the_same_detections(labelled: tuple[Path, Path, Any], tmp_path: Path) -> None:
    images, gt_file, coco = labelled
    dumped = tmp_path / "detections.json"
    args = ["eval", "--images", str(images), "--annotations", str(gt_file), "--json", "--quiet"]
    result = CliRunner().invoke(main, [*args, "--save-detections", str(dumped)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    detections = json.loads(dumped.read_text())
    direct = cocoeval(gt_file, detections)
    assert report["metrics"]["bbox"]["stats"] == pytest.approx(list(direct.stats), abs=1e-12)
    assert report["metrics"]["bbox"]["map50"] == round(direct.stats[1], 4)
    names = {c["id"]: c["name"] for c in coco["categories"]}
    by_label = {row["label"]: row for row in report["classes"]}
    for k, category in enumerate(direct.params.catIds):
        table = direct.eval["precision"][:, :, k, 0, -1]
        assert by_label[names[category]]["ap"] == round(float(np.mean(table[table > -1])), 4)
    # The missed cat halves its recall; the false positive person halves its precision.
    assert by_label["cat"]["objects"] == 2 and by_label["cat"]["recall"] == 0.5
    assert by_label["person"]["precision"] == 0.5 and by_label["person"]["recall"] == 1.0
    assert report["evaluated_images"] == 5 and report["failed_images"] == []


def test_cli_table_is_readable(labelled: tuple[Path, Path, Any]) -> None:
    images, gt_file, _ = labelled
    result = CliRunner().invoke(main, ["eval", "--images", str(images), "--annotations", str(gt_file), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "mAP@[.5:.95]" in result.stdout and "best conf" in result.stdout
    assert any(line.startswith("cat ") for line in result.stdout.splitlines())


def test_yolo_and_voc_copies_give_the_same_figures(
    labelled: tuple[Path, Path, Any], model: Predictor, tmp_path: Path
) -> None:
    images, gt_file, coco = labelled
    to_yolo(coco, tmp_path / "yolo")
    to_voc(coco, tmp_path / "voc")
    infer = local_infer(model)
    figures = []
    for labelled_set in (read_coco(gt_file), read_yolo(tmp_path / "yolo", images), read_voc(tmp_path / "voc", images)):
        report = evaluate_boxes(model.spec, model.labels, labelled_set, images, infer, lambda c: 0.4).report
        rows = {
            r["label"]: (r["ap"], r["ap50"], r["precision"], r["recall"], r["best_conf"]) for r in report["classes"]
        }
        figures.append((report["metrics"]["bbox"]["stats"], rows))
    coco_stats, coco_rows = figures[0]
    for stats, rows in figures[1:]:
        assert stats == pytest.approx(coco_stats, abs=1e-6)
        assert rows == coco_rows


def test_a_class_the_model_lacks_is_refused_or_skipped(labelled: tuple[Path, Path, Any], tmp_path: Path) -> None:
    images, _, coco = labelled
    changed = json.loads(json.dumps(coco))
    changed["categories"].append({"id": 99, "name": "unicorn"})
    changed["annotations"].append({"id": 999, "image_id": 1, "category_id": 99, "bbox": [1, 1, 5, 5], "area": 25})
    gt_file = tmp_path / "gt.json"
    gt_file.write_text(json.dumps(changed))
    args = ["eval", "--images", str(images), "--annotations", str(gt_file), "--json", "--quiet"]
    refused = CliRunner().invoke(main, args)
    assert refused.exit_code == 1
    assert "'unicorn'" in refused.output and "not among the model's labels" in refused.output
    skipped = CliRunner().invoke(main, [*args, "--skip-unknown-classes"])
    assert skipped.exit_code == 0, skipped.output
    assert json.loads(skipped.stdout)["skipped_classes"] == ["unicorn"]


def test_names_match_case_and_underscores_and_missing_images_are_reported(
    labelled: tuple[Path, Path, Any], model: Predictor, tmp_path: Path
) -> None:
    images, _, coco = labelled
    changed = json.loads(json.dumps(coco))
    for category in changed["categories"]:
        category["name"] = category["name"].upper().replace(" ", "_")
    changed["images"].append({"id": 77, "file_name": "gone.jpg", "width": 10, "height": 10})
    changed["images"].append({"id": 78, "file_name": "../outside.jpg", "width": 10, "height": 10})
    (tmp_path / "gt.json").write_text(json.dumps(changed))
    report = evaluate_boxes(
        model.spec, model.labels, read_coco(tmp_path / "gt.json"), images, local_infer(model), lambda c: 0.4
    ).report
    assert {r["label"] for r in report["classes"]} >= {"cat", "person", "dining table"}
    assert report["evaluated_images"] == 5 and len(report["failed_images"]) == 2
    assert any("outside the images folder" in f for f in report["failed_images"])


@pytest.mark.parametrize(
    "content",
    ["{", '{"images": []}', '{"images": [{"id": 1}], "categories": []}'],
    ids=["not-json", "no-categories", "image-without-file"],
)
def test_broken_coco_files_are_clear_errors(tmp_path: Path, content: str) -> None:
    path = tmp_path / "gt.json"
    path.write_text(content)
    with pytest.raises(DatasetError, match=r"gt\.json"):
        read_coco(path)


def test_classify_top1_and_top5_from_folders_and_csv(tmp_path: Path) -> None:
    for folder in ("Egyptian cat", "tabby", "pizza"):
        (tmp_path / "set" / folder).mkdir(parents=True)
    chelsea = encode(photo("chelsea"))
    (tmp_path / "set" / "Egyptian cat" / "chelsea.jpg").write_bytes(chelsea)
    (tmp_path / "set" / "tabby" / "chelsea.jpg").write_bytes(chelsea)
    (tmp_path / "set" / "pizza" / "coffee.jpg").write_bytes(encode(photo("coffee")))
    classifier = load_model(classifier_spec())
    try:
        infer = local_infer(classifier)
        by_folders = evaluate_classes(
            classifier.spec, classifier.labels, read_folders(tmp_path / "set"), tmp_path / "set", infer
        )
        rows = [f"{p.parent.name}/{p.name},{p.parent.name}" for p in sorted((tmp_path / "set").rglob("*.jpg"))]
        (tmp_path / "labels.csv").write_text("file,label\n" + "\n".join(rows))
        by_csv = evaluate_classes(
            classifier.spec, classifier.labels, read_csv(tmp_path / "labels.csv"), tmp_path / "set", infer
        )
    finally:
        classifier.close()
    report = by_folders.report
    # chelsea is an Egyptian cat first and a tabby second; coffee is no pizza in the top 5.
    assert (report["top1"], report["top5"]) == (round(1 / 3, 4), round(2 / 3, 4))
    per_class = {r["label"]: (r["top1"], r["top5"]) for r in report["classes"]}
    assert per_class == {"Egyptian cat": (1.0, 1.0), "pizza, pizza pie": (0.0, 0.0), "tabby, tabby cat": (0.0, 1.0)}
    assert by_csv.report["top1"] == report["top1"] and by_csv.report["top5"] == report["top5"]


def test_curve_thresholds_counts_and_ties() -> None:
    # Scores 0.9 (hit), 0.8 (miss), 0.8 (hit), 0.3 (hit) on 4 objects.
    curve = Curve(4, np.array([0.9, 0.8, 0.8, 0.3]), np.array([1, 0.5, 2 / 3, 0.75]), np.array([0.25, 0.25, 0.5, 0.75]))
    assert curve.counts(0.85) == (1, 1)
    assert curve.counts(0.8) == (3, 2)  # both 0.8 detections are kept together
    assert curve.at(0.95) == (None, 0.0, None)
    threshold, f1, precision, recall = curve.best() or (0, 0, 0, 0)
    assert (threshold, precision, recall) == (0.3, 0.75, 0.75) and f1 == pytest.approx(0.75)
    assert Curve(3, np.array([0.5]), np.array([0.0]), np.array([0.0])).best() is None


def test_yolo_needs_a_names_list(tmp_path: Path) -> None:
    (tmp_path / "labels").mkdir()
    (tmp_path / "images").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"data.yaml \(names: \[...\]\) or classes.txt"):
        read_yolo(tmp_path / "labels", tmp_path / "images")


def test_unmatched_error_lists_every_name(model: Predictor) -> None:
    from visionserve.evaluation.matching import match_classes

    with pytest.raises(UnmatchedClassesError, match="'zebra crossing', 'unicorn'"):
        match_classes({1: "person", 2: "zebra crossing", 3: "unicorn"}, model.labels, "set.json")


def _own_answer_set(tmp_path: Path, model: Predictor, extra: Any) -> Path:
    """A one-image COCO set labelled with ``model``'s own answer on a grey 128x128 image; ``extra(i,
    detections)`` adds fields (segmentation, keypoints) to annotation ``i``."""
    (tmp_path / "images").mkdir(parents=True)
    (tmp_path / "images" / "grey.png").write_bytes(encode(solid_image(128, 128, (90, 90, 90)), ".png"))
    found, width, height = local_infer(model)((tmp_path / "images" / "grey.png").read_bytes())
    assert isinstance(found, Detections) and len(found)
    annotations = []
    for i, (x1, y1, x2, y2) in enumerate(found.xyxy.tolist()):
        annotation = {"id": i + 1, "image_id": 1, "category_id": int(found.class_id[i]) + 1, "iscrowd": 0,
                      "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1)}  # fmt: skip
        annotations.append({**annotation, **extra(i, found)})
    names = model.labels.as_dict()
    coco = {
        "images": [{"id": 1, "file_name": "grey.png", "width": width, "height": height}],
        "annotations": annotations,
        "categories": [{"id": k + 1, "name": v} for k, v in names.items()],
    }
    (tmp_path / "gt.json").write_text(json.dumps(coco))
    return tmp_path / "gt.json"


def test_segment_models_get_mask_ap(tmp_path: Path) -> None:
    seg_model_folder(tmp_path / "models")
    model = load_model(ModelRepository.scan(tmp_path / "models").get("tiny-seg"))

    def square(i: int, found: Detections) -> dict[str, Any]:
        x1, y1, x2, y2 = found.xyxy[i].tolist()
        return {"segmentation": [[x1, y1, x2, y1, x2, y2, x1, y2]]}  # the whole box, not the model's mask

    try:
        gt_file = _own_answer_set(tmp_path / "set", model, square)
        labelled_set = read_coco(gt_file)
        own = evaluate_boxes(model.spec, model.labels, labelled_set, tmp_path / "set" / "images",
                             local_infer(model), lambda c: 0.25)  # fmt: skip
        report = own.report
    finally:
        model.close()
    assert set(report["metrics"]) == {"bbox", "segm"}
    assert report["metrics"]["bbox"]["map"] == 1.0
    assert report["metrics"]["segm"]["map"] < 1.0  # the model's masks are smaller than their boxes
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_file))
        direct = COCOeval(gt, gt.loadRes(own.results), "segm")
        direct.evaluate()
        direct.accumulate()
        direct.summarize()
    assert report["metrics"]["segm"]["stats"] == pytest.approx(list(direct.stats), abs=1e-12)


def test_pose_models_get_keypoint_ap(tmp_path: Path) -> None:
    pose_model_folder(tmp_path / "models")
    model = load_model(ModelRepository.scan(tmp_path / "models").get("tiny-pose"))

    def own_keypoints(i: int, found: Detections) -> dict[str, Any]:
        assert found.keypoints is not None
        return {"keypoints": [v for x, y, _ in found.keypoints[i].tolist() for v in (x, y, 2)]}

    try:
        gt_file = _own_answer_set(tmp_path / "set", model, own_keypoints)
        report = evaluate_boxes(model.spec, model.labels, read_coco(gt_file), tmp_path / "set" / "images",
                                local_infer(model), lambda c: 0.25).report  # fmt: skip
    finally:
        model.close()
    assert set(report["metrics"]) == {"bbox", "keypoints"}
    assert report["metrics"]["keypoints"]["map"] == 1.0
