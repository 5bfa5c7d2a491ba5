"""The JSON views of jobs: status summary, item, full results, and COCO-format results.

Pure functions of :mod:`visionserve.jobs.model` values, shared by the HTTP API, the webhooks and the
CLI. Boxes are in source-image pixels; COCO boxes are ``[x, y, width, height]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from visionserve.jobs.model import DetectionRecord, Item, Job

#: Where the HTTP API serves jobs; artifact links in the JSON start here.
API_PREFIX = "/v1/jobs"


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def job_summary(job: Job) -> dict[str, Any]:
    """State, progress and timings of ``job``; what ``GET /v1/jobs/{id}`` and the webhook send."""
    progress = job.progress
    elapsed = None
    if job.started_at is not None and job.finished_at is not None:
        elapsed = round((job.finished_at - job.started_at).total_seconds(), 3)
    summary: dict[str, Any] = {
        "id": job.id,
        "state": job.state.value,
        "model": job.model,
        "options": job.options.to_dict(),
        "progress": {
            "total": progress.total,
            "finished": progress.finished,
            "done": progress.done,
            "failed": progress.failed,
            "cancelled": progress.cancelled,
            "running": progress.running,
            "pending": progress.pending,
        },
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
        "timings": {
            "elapsed_s": elapsed,
            "images_per_s": round(progress.finished / elapsed, 3) if elapsed else None,
        },
        "error": job.error,
        "results_url": f"{API_PREFIX}/{job.id}/results",
    }
    if job.webhook_url is not None:
        state = None if job.webhook_state is None else job.webhook_state.value
        summary["webhook"] = {"url": job.webhook_url, "state": state, "attempts": job.webhook_attempts}
    return summary


def detection_json(record: DetectionRecord) -> dict[str, Any]:
    """The same shape as :func:`visionserve.render.json.detections_to_json` entries."""
    x1, y1, x2, y2 = record.box
    return {
        "label": record.label,
        "class_id": record.class_id,
        "score": round(record.score, 4),
        "box": {"x1": round(x1, 2), "y1": round(y1, 2), "x2": round(x2, 2), "y2": round(y2, 2)},
    }


def item_json(item: Item, found: Sequence[DetectionRecord] | None = None) -> dict[str, Any]:
    """One item; its detections and artifact links when ``found`` is given."""
    base = f"{API_PREFIX}/{item.job_id}/items/{item.index}"
    result: dict[str, Any] = {
        "index": item.index,
        "source": item.source,
        "state": item.state.value,
        "attempts": item.attempts,
        "error": item.error,
        "width": item.width,
        "height": item.height,
        "timings": None,
        "detection_count": item.detection_count,
    }
    if item.timings is not None:
        t = item.timings
        result["timings"] = {
            "fetch_ms": round(t.fetch_ms, 3),
            "decode_ms": round(t.decode_ms, 3),
            "inference_ms": round(t.inference_ms, 3),
            "total_ms": round(t.total_ms, 3),
        }
    if found is not None:
        result["detections"] = [detection_json(record) for record in found]
        result["crops"] = [f"{base}/crops/{k}" for k in range(item.crop_count)]
        result["annotated"] = f"{base}/annotated" if item.annotated else None
    return result


def errors_json(items: Sequence[Item]) -> list[dict[str, Any]]:
    """``[{"index", "source", "error"}]`` for the items that failed."""
    return [{"index": i.index, "source": i.source, "error": i.error} for i in items if i.error is not None]


def results_json(job: Job, items: Sequence[Item], found: Mapping[int, Sequence[DetectionRecord]]) -> dict[str, Any]:
    """The whole job as one document: summary and every item with its detections."""
    return {"job": job_summary(job), "items": [item_json(item, found.get(item.index, [])) for item in items]}


def coco_json(
    job: Job,
    items: Sequence[Item],
    found: Mapping[int, Sequence[DetectionRecord]],
    categories: Mapping[int, str],
) -> dict[str, Any]:
    """COCO "results with images" document: image ids are item index + 1, category ids the model's class
    ids, ``bbox`` is ``[x, y, w, h]`` in source pixels. Items without a size (failed) are left out."""
    names = dict(categories)
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for item in items:
        if item.width is None or item.height is None:
            continue
        image_id = item.index + 1
        images.append({"id": image_id, "file_name": item.source, "width": item.width, "height": item.height})
        for record in found.get(item.index, []):
            x1, y1, x2, y2 = record.box
            w, h = x2 - x1, y2 - y1
            names.setdefault(record.class_id, record.label)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": record.class_id,
                    "bbox": [round(x1, 2), round(y1, 2), round(w, 2), round(h, 2)],
                    "area": round(w * h, 2),
                    "score": round(record.score, 4),
                    "iscrowd": 0,
                }
            )
    return {
        "info": {"description": f"visionserve job {job.id}", "model": job.model, "date_created": _iso(job.created_at)},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": class_id, "name": name} for class_id, name in sorted(names.items())],
    }
