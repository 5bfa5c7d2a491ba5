"""COCO metrics with ``pycocotools.COCOeval``, and per-class precision-recall sweeps.

:func:`coco_evaluate` runs ``COCOeval`` (iouType ``bbox``, ``segm`` or ``keypoints``) with its
default parameters: IoU thresholds .50:.05:.95, at most 100 detections per image (20 for keypoints),
every object size. Its figures are COCOeval's own: ``stats`` (what ``summarize()`` prints), AP per
class (the mean of ``eval['precision']`` over IoU thresholds and recall points, area ``all``, the
largest ``maxDets``), and the same at IoU .50 and .75.

**Precision, recall and F1 at a threshold** come from COCOeval's own matching at IoU 0.50: for a
class, every detection of ``evalImgs`` (area ``all``) with its score and whether it matched a
ground-truth object; detections matched to crowd (or VOC ``difficult``) objects are ignored. Sorted by
score, the cumulative matches give, for "keep detections scoring at least ``t``", precision =
TP / (TP + FP), recall = TP / objects, F1 = 2PR / (P + R). The **F1-optimal threshold** of a class
is the detection score at which F1 is highest (the lowest such score on ties; evaluated only at the
last detection of each distinct score, so that ``score >= t`` keeps exactly what was counted).
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from typing import Any

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from visionserve.types import FloatArray

#: COCO's 17 person-keypoint sigmas; other keypoint counts use their mean for every keypoint.
COCO_SIGMAS = (
    np.array([0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89])
    / 10.0
)
#: The IoU at which precision, recall and F1 are counted.
MATCH_IOU = 0.5


@dataclass(frozen=True)
class Curve:
    """One class's sweep (see the module docstring): ``scores`` descending, and the precision and
    recall of keeping the detections down to each one; ``objects`` counts the class's objects."""

    objects: int
    scores: FloatArray
    precision: FloatArray
    recall: FloatArray

    def counts(self, conf: float) -> tuple[int, int]:
        """How many detections score at least ``conf``, and how many of those matched an object."""
        kept = int(np.searchsorted(-self.scores, -conf, side="right"))
        matched = round(float(self.recall[kept - 1]) * self.objects) if kept else 0
        return kept, matched

    def at(self, conf: float) -> tuple[float | None, float, float | None]:
        """Precision (None without detections), recall and F1 (None when undefined) at ``conf``."""
        kept, _ = self.counts(conf)
        if kept == 0:
            return None, 0.0, None
        p, r = float(self.precision[kept - 1]), float(self.recall[kept - 1])
        return p, r, (2 * p * r / (p + r) if p + r > 0 else 0.0)

    def best(self) -> tuple[float, float, float, float] | None:
        """``(threshold, f1, precision, recall)`` maximising F1; None when nothing ever matches."""
        if not len(self.scores) or self.objects == 0:
            return None
        last = np.append(self.scores[1:] != self.scores[:-1], True)  # last detection of each score
        p, r = self.precision[last], self.recall[last]
        f1 = np.where(p + r > 0, 2 * p * r / np.maximum(p + r, 1e-12), 0.0)
        if f1.max() <= 0:
            return None
        i = int(np.flatnonzero(f1 == f1.max())[-1])
        return float(self.scores[last][i]), float(f1[i]), float(p[i]), float(r[i])


@dataclass(frozen=True)
class CocoMetrics:
    """COCOeval's figures for one iouType: ``stats`` as ``summarize()`` computes them, and per category
    id ``(AP, AP50, AP75)`` (None where the class has no objects) and the IoU-0.50 :class:`Curve`."""

    kind: str
    stats: list[float]
    per_class: dict[int, tuple[float | None, float | None, float | None]]
    curves: dict[int, Curve]


def _quiet_coco(document: dict[str, Any]) -> COCO:
    coco = COCO()
    coco.dataset = document
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def coco_evaluate(
    gt_document: dict[str, Any], results: list[dict[str, Any]], kind: str, image_ids: list[int]
) -> CocoMetrics:
    """COCOeval of ``results`` (COCO result rows) against ``gt_document`` on ``image_ids``. Nothing is
    printed (pycocotools prints to stdout; that is captured)."""
    gt = _quiet_coco(gt_document)
    with contextlib.redirect_stdout(io.StringIO()):
        empty = {**gt_document, "annotations": []}
        dt = gt.loadRes([dict(r) for r in results]) if results else _quiet_coco(empty)
        evaluator = COCOeval(gt, dt, kind)
        evaluator.params.imgIds = sorted(image_ids)
        if kind == "keypoints":
            count = max((len(a.get("keypoints", ())) // 3 for a in gt_document["annotations"]), default=17)
            if count != len(COCO_SIGMAS):
                evaluator.params.kpt_oks_sigmas = np.full(count, COCO_SIGMAS.mean())
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    categories = list(evaluator.params.catIds)
    return CocoMetrics(kind, [float(s) for s in evaluator.stats], _per_class(evaluator, categories), _curves(evaluator))


def _mean(values: Any) -> float | None:
    valid = values[values > -1]
    return float(np.mean(valid)) if valid.size else None


def _per_class(
    evaluator: COCOeval, categories: list[int]
) -> dict[int, tuple[float | None, float | None, float | None]]:
    precision = evaluator.eval["precision"]  # [T, R, K, A, M]
    thresholds = list(np.round(evaluator.params.iouThrs, 2))
    at50, at75 = thresholds.index(0.5), thresholds.index(0.75)
    result = {}
    for k, category in enumerate(categories):
        table = precision[:, :, k, 0, -1]
        result[category] = (_mean(table), _mean(table[at50]), _mean(table[at75]))
    return result


def _curves(evaluator: COCOeval) -> dict[int, Curve]:
    t = int(np.flatnonzero(np.isclose(evaluator.params.iouThrs, MATCH_IOU))[0])
    all_area = list(evaluator.params.areaRng[0])
    gathered: dict[int, tuple[list[float], list[bool], list[bool], int]] = {}
    for entry in evaluator.evalImgs:
        if entry is None or list(entry["aRng"]) != all_area:
            continue
        scores, matched, ignored, objects = gathered.setdefault(entry["category_id"], ([], [], [], 0))
        scores.extend(entry["dtScores"])
        matched.extend(bool(m) for m in entry["dtMatches"][t])
        ignored.extend(bool(i) for i in entry["dtIgnore"][t])
        count = int(np.count_nonzero(np.logical_not(entry["gtIgnore"])))
        gathered[entry["category_id"]] = (scores, matched, ignored, objects + count)
    return {category: _curve(*parts) for category, parts in gathered.items()}


def _curve(scores: list[float], matched: list[bool], ignored: list[bool], objects: int) -> Curve:
    order = np.argsort(-np.asarray(scores, np.float64), kind="mergesort")
    counted = ~np.asarray(ignored, bool)[order]
    hits = np.asarray(matched, bool)[order]
    sorted_scores = np.asarray(scores, np.float64)[order][counted]
    tp = np.cumsum(hits[counted])
    fp = np.cumsum(~hits[counted])
    precision = tp / np.maximum(tp + fp, 1)
    recall = tp / objects if objects else np.zeros_like(tp, dtype=np.float64)
    return Curve(objects, sorted_scores, precision.astype(np.float64), recall.astype(np.float64))
