"""An evaluation from start to end: match the set's class names, run the model over its images,
score the answers with COCOeval (box models) or top-1/top-5 accuracy (classify models), and build
the report (a JSON-ready dict; :mod:`visionserve.evaluation.table` prints it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from visionserve.core.classifications import Classifications
from visionserve.core.detections import Detections
from visionserve.core.thresholds import OTHER
from visionserve.errors import DatasetError
from visionserve.evaluation.classify_sets import ClassifySet
from visionserve.evaluation.datasets import LabelledSet, to_coco
from visionserve.evaluation.matching import match_classes
from visionserve.evaluation.metrics import MATCH_IOU, CocoMetrics, Curve, coco_evaluate
from visionserve.evaluation.runner import CONF_FLOOR, Infer, coco_results, run_images, top_classes
from visionserve.models.labels import Labels
from visionserve.models.spec import ModelSpec, Task
from visionserve.pipeline import class_thresholds

#: A class's threshold "as configured": the model's conf, or its saved per-class thresholds.
ConfOf = Callable[[int], float]


def configured_conf(spec: ModelSpec, labels: Labels) -> ConfOf:
    """Each class id's threshold as the model answers by default (its ``conf``, or its saved
    per-class thresholds when its ``thresholds.conf`` is ``best``)."""
    threshold = class_thresholds(spec, labels, None)
    if isinstance(threshold, Mapping):
        return lambda class_id: float(threshold.get(class_id, threshold[OTHER]))
    return lambda class_id: float(threshold)


@dataclass(frozen=True)
class Evaluation:
    """The report, the detections as COCO result rows (against the set's category ids) and each
    evaluated class's IoU-0.50 curve by label."""

    report: dict[str, Any]
    results: list[dict[str, Any]] = field(default_factory=list)
    curves: dict[str, Curve] = field(default_factory=dict)


def _head(spec: ModelSpec, images: int, failed: list[str]) -> dict[str, Any]:
    return {
        "model": spec.name,
        "version": spec.version,
        "task": spec.task.value,
        "images": images,
        "evaluated_images": images - len(failed),
        "failed_images": failed,
    }


def evaluate_boxes(
    spec: ModelSpec,
    labels: Labels,
    labelled: LabelledSet,
    root: Path,
    infer: Infer,
    conf_of: ConfOf,
    skip_unknown: bool = False,
    on_image: Callable[[], None] | None = None,
) -> Evaluation:
    """Evaluate a detect, segment or pose model on ``labelled`` (images under ``root``)."""
    matching = match_classes(labelled.categories, labels, labelled.source, skip_unknown)
    dropped = {c for c, n in labelled.categories.items() if c not in matching.to_model}
    labelled = labelled.without_categories(dropped)
    results, sizes, failed = _run_boxes(labelled, root, infer, matching.to_set, on_image)
    if not sizes:
        raise DatasetError(f"{labelled.source}: no image could be evaluated ({'; '.join(failed[:3])})")
    labelled = labelled.with_sizes(sizes)
    document = to_coco(labelled)
    kinds = ["bbox"]
    if spec.task is Task.SEGMENT and labelled.has_segmentation:
        kinds.append("segm")
    if spec.task is Task.POSE and labelled.has_keypoints:
        kinds.append("keypoints")
    evaluated = sorted(sizes)
    metrics = {kind: coco_evaluate(document, results, kind, evaluated) for kind in kinds}
    box = metrics["bbox"]
    names = {category: labels.name(model) for category, model in matching.to_model.items()}
    report = {
        **_head(spec, len(labelled.images), failed),
        "objects": sum(1 for o in labelled.objects if o.image_id in sizes),
        "skipped_classes": list(matching.skipped),
        "settings": {
            "conf_floor": CONF_FLOOR,
            "iou": spec.thresholds.iou,
            "max_det": spec.thresholds.max_det,
            "match_iou": MATCH_IOU,
        },
        "metrics": {kind: _summary(m) for kind, m in metrics.items()},
        "at_conf": _micro(box, matching.to_model, conf_of),
        "classes": [_class_row(box, c, matching.to_model[c], names[c], conf_of) for c in sorted(matching.to_model)],
    }
    curves = {names[c]: curve for c, curve in box.curves.items() if c in names}
    return Evaluation(report, results, curves)


def _run_boxes(
    labelled: LabelledSet, root: Path, infer: Infer, to_set: dict[int, int], on_image: Callable[[], None] | None
) -> tuple[list[dict[str, Any]], dict[int, tuple[int, int]], list[str]]:
    """The COCO result rows of every image, each evaluated image's ``(width, height)``, and why the
    others failed."""
    results: list[dict[str, Any]] = []
    sizes: dict[int, tuple[int, int]] = {}
    failed: list[str] = []
    for outcome in run_images(root, [(i.id, i.file_name) for i in labelled.images], infer, on_image):
        if outcome.error is not None or not isinstance(outcome.prediction, Detections):
            failed.append(outcome.error or f"image {outcome.key}: the model gave no boxes")
            continue
        sizes[outcome.key] = (outcome.width, outcome.height)
        results += coco_results(outcome.key, outcome.prediction, to_set, (outcome.width, outcome.height))
    return results, sizes, failed


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _summary(metrics: CocoMetrics) -> dict[str, Any]:
    stats = metrics.stats
    return {"map": _round(stats[0]), "map50": _round(stats[1]), "map75": _round(stats[2]), "stats": stats}


def _class_row(box: CocoMetrics, category: int, class_id: int, label: str, conf_of: ConfOf) -> dict[str, Any]:
    ap, ap50, ap75 = box.per_class.get(category, (None, None, None))
    curve = box.curves.get(category)
    conf = conf_of(class_id)
    precision, recall, f1 = curve.at(conf) if curve is not None else (None, 0.0, None)
    best = curve.best() if curve is not None else None
    return {
        "label": label,
        "class_id": class_id,
        "objects": curve.objects if curve is not None else 0,
        "ap": _round(ap),
        "ap50": _round(ap50),
        "ap75": _round(ap75),
        "conf": conf,
        "precision": _round(precision),
        "recall": _round(recall),
        "f1": _round(f1),
        # Rounded down, so that the detection the threshold was chosen at is still kept.
        "best_conf": None if best is None else math.floor(best[0] * 10_000) / 10_000,
        "best_f1": None if best is None else _round(best[1]),
        "best_precision": None if best is None else _round(best[2]),
        "best_recall": None if best is None else _round(best[3]),
    }


def _micro(box: CocoMetrics, to_model: dict[int, int], conf_of: ConfOf) -> dict[str, float | None]:
    """Precision, recall and F1 over every class together, each at its configured threshold."""
    kept = matched = objects = 0
    for category, curve in box.curves.items():
        if category not in to_model:
            continue
        count, hits = curve.counts(conf_of(to_model[category]))
        kept, matched, objects = kept + count, matched + hits, objects + curve.objects
    precision = matched / kept if kept else None
    recall = matched / objects if objects else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision and recall else (0.0 if kept else None)
    return {"precision": _round(precision), "recall": _round(recall), "f1": _round(f1)}


def evaluate_classes(
    spec: ModelSpec,
    labels: Labels,
    labelled: ClassifySet,
    root: Path,
    infer: Infer,
    skip_unknown: bool = False,
    on_image: Callable[[], None] | None = None,
) -> Evaluation:
    """Top-1 and top-5 accuracy of a classify model, overall and per class."""
    names = labelled.names
    matching = match_classes(dict(enumerate(names)), labels, labelled.source, skip_unknown)
    wanted = {names[c]: m for c, m in matching.to_model.items()}
    items = [(wanted[name], file) for file, name in labelled.items if name in wanted]
    failed: list[str] = []
    per_class: dict[int, list[int]] = {}
    for index, outcome in enumerate(run_images(root, [(i, f) for i, (_, f) in enumerate(items)], infer, on_image)):
        truth = items[index][0]
        if outcome.error is not None or not isinstance(outcome.prediction, Classifications):
            failed.append(outcome.error or f"{items[index][1]}: the model gave no classes")
            continue
        top = top_classes(outcome.prediction)
        rank = top.index(truth) + 1 if truth in top else 0
        per_class.setdefault(truth, []).append(rank)
    ranks = [r for rs in per_class.values() for r in rs]
    report = {
        **_head(spec, len(items), failed),
        "skipped_classes": list(matching.skipped),
        "top1": _round(_share(ranks, 1)),
        "top5": _round(_share(ranks, 5)),
        "classes": [
            {"label": labels.name(c), "class_id": c, "images": len(rs), "top1": _round(_share(rs, 1)),
             "top5": _round(_share(rs, 5))}
            for c, rs in sorted(per_class.items(), key=lambda kv: labels.name(kv[0]))
        ],
    }  # fmt: skip
    return Evaluation(report)


def _share(ranks: list[int], k: int) -> float | None:
    return sum(1 for r in ranks if 0 < r <= k) / len(ranks) if ranks else None
