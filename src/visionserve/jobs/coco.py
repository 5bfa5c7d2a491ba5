"""Job results as one COCO "results with images" document, for every task.

Image ids are item index + 1 (items without a size, which failed, are left out); category ids are
the model's class ids; ``info`` names the job, model and task. Annotations by task:

- detect: ``{"id", "image_id", "category_id", "bbox": [x, y, w, h], "area", "score", "iscrowd": 0}``
  in source pixels, ``area`` that of the box;
- segment: also ``segmentation``, the mask as COCO compressed RLE over the image
  (``{"size": [H, W], "counts": str}``), and ``area`` is the mask's pixel count;
- pose: also ``keypoints`` ``[x1, y1, v1, x2, ...]`` as in COCO's results format, with ``v`` the
  keypoint's score, and ``num_keypoints`` (points scored above 0); each category lists the model's
  keypoint ``names`` and its ``skeleton`` (pairs of 1-based keypoint numbers, as COCO's);
- classify: COCO has no classification format, so each of an image's top-k classes is one
  annotation ``{"id", "image_id", "category_id", "score", "rank"}`` (rank 1 = highest score) with no
  ``bbox``, ``area`` or ``segmentation``.

``pycocotools``' ``COCO.loadRes`` reads the annotations of box tasks as detections, masks and keypoints.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pycocotools import mask as coco_mask

from visionserve.jobs.model import DetectionRecord, Item, ItemRecords, Job
from visionserve.jobs.results import DEFAULT_VIEW, ResultsView, iso_time
from visionserve.models.spec import Task
from visionserve.render.json import PIXEL_DECIMALS, SCORE_DECIMALS


def coco_json(
    job: Job, items: Sequence[Item], found: Mapping[int, ItemRecords], view: ResultsView = DEFAULT_VIEW
) -> dict[str, Any]:
    """The COCO document of ``job`` (see the module docstring); categories are ``view.labels``' names
    and the labels of the stored results."""
    names = view.labels.as_dict()
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    keypoint_count = 0
    for item in items:
        if item.width is None or item.height is None:
            continue
        image_id = item.index + 1
        images.append({"id": image_id, "file_name": item.source, "width": item.width, "height": item.height})
        records = found.get(item.index, ItemRecords())
        for rank, ranked in enumerate(records.classes, start=1):
            names.setdefault(ranked.class_id, ranked.label)
            score = round(ranked.score, SCORE_DECIMALS)
            fields = {"category_id": ranked.class_id, "score": score, "rank": rank}
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, **fields})
        for record in records.detections:
            names.setdefault(record.class_id, record.label)
            keypoint_count = max(keypoint_count, len(record.keypoints or ()))
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, **_box_annotation(record)})
    return {
        "info": {
            "description": f"visionserve job {job.id}",
            "model": job.model,
            "task": view.task.value,
            "date_created": iso_time(job.created_at),
        },
        "images": images,
        "annotations": annotations,
        "categories": _categories(names, view, keypoint_count),
    }


def _box_annotation(record: DetectionRecord) -> dict[str, Any]:
    x1, y1, x2, y2 = record.box
    w, h = x2 - x1, y2 - y1
    annotation: dict[str, Any] = {
        "category_id": record.class_id,
        "bbox": [round(v, PIXEL_DECIMALS) for v in (x1, y1, w, h)],
        "area": round(w * h, PIXEL_DECIMALS),
        "score": round(record.score, SCORE_DECIMALS),
        "iscrowd": 0,
    }
    if record.mask is not None:
        segmentation = record.mask.to_coco()
        annotation["segmentation"] = segmentation
        compressed = {"size": segmentation["size"], "counts": record.mask.counts.encode("ascii")}
        annotation["area"] = int(coco_mask.area(compressed))
    if record.keypoints is not None:
        flat: list[float] = []
        for x, y, score in record.keypoints:
            flat += [round(x, PIXEL_DECIMALS), round(y, PIXEL_DECIMALS), round(score, SCORE_DECIMALS)]
        annotation["keypoints"] = flat
        annotation["num_keypoints"] = sum(1 for _, _, score in record.keypoints if score > 0)
    return annotation


def _categories(names: Mapping[int, str], view: ResultsView, keypoint_count: int) -> list[dict[str, Any]]:
    """The categories, with keypoint names and skeleton for pose jobs (``keypoint_count``: the most
    keypoints of a stored detection, named ``keypoint_<k>`` past the model's names)."""
    labels = view.labels
    count = max(keypoint_count, len(labels.keypoints))
    pose: dict[str, Any] = {}
    if view.task is Task.POSE or count:
        pose = {
            "keypoints": [labels.keypoint_name(k) for k in range(count)],
            "skeleton": [[a + 1, b + 1] for a, b in labels.skeleton],
        }
    return [{"id": class_id, "name": name, **pose} for class_id, name in sorted(names.items())]
