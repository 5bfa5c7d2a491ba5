"""Job results of every task: predictions to stored records (through render/rows.py), the results
JSON (the native API's shapes) and the COCO export, read back by pycocotools."""

from __future__ import annotations

import contextlib
import io
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from pycocotools import mask as coco_mask
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from visionserve.core.classifications import Classifications
from visionserve.core.detections import Detections
from visionserve.core.masks import InstanceMasks
from visionserve.jobs.coco import coco_json
from visionserve.jobs.model import (
    Item,
    ItemState,
    ItemTimings,
    Job,
    JobOptions,
    JobState,
    MaskRle,
    Progress,
)
from visionserve.jobs.records import item_records
from visionserve.jobs.results import ResultsView, item_json, results_json
from visionserve.models.labels import Labels
from visionserve.models.spec import Task
from visionserve.render.json import detections_to_json
from visionserve.render.mask_encoding import MaskFormat

T0 = datetime(2025, 1, 1, tzinfo=UTC)
WIDTH, HEIGHT = 80, 60
SEG_LABELS = Labels.from_list(["dent", "scratch"])
POSE_LABELS = Labels.from_list(["person"]).with_keypoints(["head", "left_hand", "right_hand"], [(0, 1), (0, 2)])
CLS_LABELS = Labels.from_list(["cat", "dog", "bird", "fish"])


def disc(cx: float, cy: float, r: float) -> np.ndarray:
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH]
    return (xs + 0.5 - cx) ** 2 + (ys + 0.5 - cy) ** 2 <= r * r


def segmented() -> Detections:
    """Two discs, the less confident first (records must come out highest score first)."""
    dense = np.stack([disc(60, 40, 8), disc(25, 20, 12)])
    masks = InstanceMasks.from_dense(dense)
    return Detections(masks.regions, [0.6, 0.9], [1, 0], masks=masks)


def posed() -> Detections:
    points = np.array([[[30.0, 10.0, 0.9], [20.0, 30.0, 0.8], [40.0, 30.0, 0.0]]], np.float32)
    return Detections(np.array([[10.0, 5.0, 50.0, 55.0]]), [0.9], [0], keypoints=points)


def job(task: Task, options: JobOptions | None = None) -> Job:
    return Job("0" * 32, JobState.SUCCEEDED, "m", options or JobOptions(), Progress(1, done=1), T0, task=task)


def item(index: int = 0) -> Item:
    return Item("0" * 32, index, ItemState.DONE, f"{index}.png", 1, None, None, WIDTH, HEIGHT, ItemTimings())


def view(task: Task, labels: Labels, mask_format: MaskFormat = MaskFormat.RLE) -> ResultsView:
    return ResultsView.of(job(task, JobOptions(mask_format=mask_format)), labels)


def test_masks_are_stored_as_rle_of_exactly_the_rows_pixels() -> None:
    found = segmented()
    records = item_records(found, SEG_LABELS, (WIDTH, HEIGHT))
    assert records.classes == ()
    assert [r.label for r in records.detections] == ["dent", "scratch"]
    assert [r.score for r in records.detections] == pytest.approx([0.9, 0.6])
    ordered = found.sorted_by_confidence()
    for i, record in enumerate(records.detections):
        assert record.mask is not None and record.keypoints is None
        decoded = coco_mask.decode(record.mask.to_coco() | {"counts": record.mask.counts.encode()})
        assert decoded.shape == (HEIGHT, WIDTH)
        assert (decoded.astype(bool) == ordered.mask_patch(i, HEIGHT, WIDTH).dense(HEIGHT, WIDTH)).all()


@pytest.mark.parametrize("mask_format", list(MaskFormat))
def test_results_json_matches_the_native_answer_in_every_mask_format(mask_format: MaskFormat) -> None:
    found = segmented()
    records = item_records(found, SEG_LABELS, (WIDTH, HEIGHT))
    document = item_json(item(), records, view(Task.SEGMENT, SEG_LABELS, mask_format))
    native = detections_to_json(found, SEG_LABELS, (WIDTH, HEIGHT), mask_format)
    assert document["detections"] == native
    assert "classes" not in document


def test_keypoints_are_stored_unnamed_and_shown_with_the_models_names() -> None:
    records = item_records(posed(), POSE_LABELS, (WIDTH, HEIGHT))
    (record,) = records.detections
    assert record.keypoints == ((30.0, 10.0, pytest.approx(0.9)), (20.0, 30.0, pytest.approx(0.8)), (40.0, 30.0, 0.0))
    shown = item_json(item(), records, view(Task.POSE, POSE_LABELS))["detections"][0]
    assert shown == detections_to_json(posed(), POSE_LABELS, (WIDTH, HEIGHT))[0]
    assert [p["name"] for p in shown["keypoints"]] == ["head", "left_hand", "right_hand"]
    gone = item_json(item(), records, view(Task.POSE, Labels({})))["detections"][0]  # the model was removed
    assert [p["name"] for p in gone["keypoints"]] == ["keypoint_0", "keypoint_1", "keypoint_2"]


def test_classify_items_list_their_top_classes() -> None:
    classes = Classifications.from_scores(np.array([0.1, 0.6, 0.05, 0.25])).filter(top_k=3)
    records = item_records(classes, CLS_LABELS, (WIDTH, HEIGHT))
    assert records.detections == ()
    document = results_json(job(Task.CLASSIFY), [item()], {0: records}, view(Task.CLASSIFY, CLS_LABELS))
    (shown,) = document["items"]
    assert shown["classes"] == [
        {"label": "dog", "class_id": 1, "score": 0.6},
        {"label": "fish", "class_id": 3, "score": 0.25},
        {"label": "cat", "class_id": 0, "score": 0.1},
    ]
    assert "detections" not in shown and shown["crops"] == []
    assert document["job"]["task"] == "classify"
    empty = results_json(job(Task.CLASSIFY), [item()], {}, view(Task.CLASSIFY, CLS_LABELS))
    assert empty["items"][0]["classes"] == []


def quiet_coco(dataset: dict[str, Any]) -> COCO:
    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def test_coco_segmentation_loads_in_pycocotools_and_scores_itself_perfectly() -> None:
    found = {i: item_records(segmented(), SEG_LABELS, (WIDTH, HEIGHT)) for i in range(2)}
    document = coco_json(job(Task.SEGMENT), [item(0), item(1)], found, view(Task.SEGMENT, SEG_LABELS))
    assert document["info"]["task"] == "segment"
    assert document["categories"] == [{"id": 0, "name": "dent"}, {"id": 1, "name": "scratch"}]
    first = document["annotations"][0]
    assert first["segmentation"]["size"] == [HEIGHT, WIDTH]
    assert first["area"] == int(disc(25, 20, 12).sum())  # the mask's pixels, not the box's
    ground_truth = quiet_coco({k: document[k] for k in ("images", "categories")} | {"annotations": []})
    with contextlib.redirect_stdout(io.StringIO()):
        results = ground_truth.loadRes(document["annotations"])
    assert (results.annToMask(results.anns[1]).astype(bool) == disc(25, 20, 12)).all()
    # The document as ground truth and as results: a correct format gives an AP of 1.
    truth = quiet_coco({k: document[k] for k in ("images", "categories", "annotations")})
    with contextlib.redirect_stdout(io.StringIO()):
        evaluation = COCOeval(truth, truth.loadRes(document["annotations"]), "segm")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    assert evaluation.stats[0] == pytest.approx(1.0)


def test_coco_keypoints_and_categories_of_a_pose_job() -> None:
    found = {0: item_records(posed(), POSE_LABELS, (WIDTH, HEIGHT))}
    document = coco_json(job(Task.POSE), [item()], found, view(Task.POSE, POSE_LABELS))
    assert document["categories"] == [
        {"id": 0, "name": "person", "keypoints": ["head", "left_hand", "right_hand"], "skeleton": [[1, 2], [1, 3]]}
    ]
    (annotation,) = document["annotations"]
    assert annotation["keypoints"] == [30.0, 10.0, 0.9, 20.0, 30.0, 0.8, 40.0, 30.0, 0.0]
    assert annotation["num_keypoints"] == 2 and "segmentation" not in annotation
    assert annotation["bbox"] == [10.0, 5.0, 40.0, 50.0]
    ground_truth = quiet_coco({k: document[k] for k in ("images", "categories")} | {"annotations": []})
    with contextlib.redirect_stdout(io.StringIO()):
        results = ground_truth.loadRes(document["annotations"])
    assert results.loadCats(0)[0]["keypoints"] == ["head", "left_hand", "right_hand"]


def test_coco_of_a_classify_job_ranks_each_images_top_classes() -> None:
    classes = Classifications.from_scores(np.array([0.1, 0.6, 0.05, 0.25])).filter(top_k=2)
    found = {0: item_records(classes, CLS_LABELS, (WIDTH, HEIGHT))}
    failed = Item("0" * 32, 1, ItemState.FAILED, "bad.png", error="cannot decode image")
    document = coco_json(job(Task.CLASSIFY), [item(), failed], found, view(Task.CLASSIFY, CLS_LABELS))
    assert [image["id"] for image in document["images"]] == [1]
    assert document["annotations"] == [
        {"id": 1, "image_id": 1, "category_id": 1, "score": 0.6, "rank": 1},
        {"id": 2, "image_id": 1, "category_id": 3, "score": 0.25, "rank": 2},
    ]
    assert [c["name"] for c in document["categories"]] == ["cat", "dog", "bird", "fish"]


def test_stored_masks_are_coco_rle_values() -> None:
    mask = MaskRle.from_coco({"size": [4, 5], "counts": "abc"})
    assert (mask.height, mask.width, mask.to_coco()) == (4, 5, {"size": [4, 5], "counts": "abc"})


def test_job_options_of_old_jobs_read_with_the_defaults() -> None:
    old = {"conf": 0.5, "iou": None, "classes": [1], "max_det": 3, "crops": True, "annotate": False}
    options = JobOptions.from_dict(old)
    assert (options.top_k, options.mask_format, options.classes) == (None, MaskFormat.RLE, (1,))
    new = JobOptions(top_k=2, mask_format=MaskFormat.POLYGON)
    assert JobOptions.from_dict(new.to_dict()) == new
    assert new.predict_options().top_k == 2
