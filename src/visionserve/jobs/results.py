"""The JSON views of jobs: status summary, item, full results (COCO-format results: :mod:`.coco`).

Pure functions of :mod:`visionserve.jobs.model` values, shared by the HTTP API, the webhooks and the
CLI. Boxes are in source-image pixels. Detections have the shape of the native API's
(:func:`visionserve.render.json.box_row_json`): ``rle`` (or ``polygons``, as the job's
``mask_format`` asks) for segment models, named ``keypoints`` for pose models; items of classify jobs
list ``classes`` (``[{"label", "class_id", "score"}]``, top-k, highest score first) instead of
``detections``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from visionserve.jobs.model import ClassRecord, DetectionRecord, Item, ItemRecords, Job
from visionserve.jobs.records import box_row
from visionserve.models.labels import Labels
from visionserve.models.spec import Task
from visionserve.render.json import SCORE_DECIMALS, box_row_json
from visionserve.render.mask_encoding import MaskFormat

#: Where the HTTP API serves jobs; artifact links in the JSON start here.
API_PREFIX = "/v1/jobs"
#: The labels of a model that is gone: no class or keypoint names.
NO_LABELS = Labels({})


def iso_time(moment: datetime | None) -> str | None:
    """``moment`` as ISO 8601 with ``Z`` for UTC (None stays None)."""
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
        "task": job.task.value,
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
        "created_at": iso_time(job.created_at),
        "started_at": iso_time(job.started_at),
        "finished_at": iso_time(job.finished_at),
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


@dataclass(frozen=True)
class ResultsView:
    """How stored results are shown: the job's ``task`` (classify lists classes), its ``mask_format``,
    and the model's ``labels`` (keypoint names, skeleton and category names; empty when the model
    is gone: keypoints are then ``keypoint_<k>``)."""

    task: Task = Task.DETECT
    mask_format: MaskFormat = MaskFormat.RLE
    labels: Labels = NO_LABELS

    @classmethod
    def of(cls, job: Job, labels: Labels) -> ResultsView:
        return cls(job.task, job.options.mask_format, labels)


#: A box job's view: masks as RLE, keypoints without names.
DEFAULT_VIEW = ResultsView()


def detection_json(record: DetectionRecord, view: ResultsView = DEFAULT_VIEW) -> dict[str, Any]:
    """The same shape as :func:`visionserve.render.json.detections_to_json` entries."""
    return box_row_json(box_row(record, view.labels, view.mask_format))


def class_json(record: ClassRecord) -> dict[str, Any]:
    """The same shape as :func:`visionserve.render.json.classes_to_json` entries."""
    return {"label": record.label, "class_id": record.class_id, "score": round(record.score, SCORE_DECIMALS)}


def item_json(item: Item, found: ItemRecords | None = None, view: ResultsView = DEFAULT_VIEW) -> dict[str, Any]:
    """One item; its results (``classes`` for a classify job, else ``detections``) and artifact links
    when ``found`` is given."""
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
        if view.task is Task.CLASSIFY:
            result["classes"] = [class_json(record) for record in found.classes]
        else:
            result["detections"] = [detection_json(record, view) for record in found.detections]
        result["crops"] = [f"{base}/crops/{k}" for k in range(item.crop_count)]
        result["annotated"] = f"{base}/annotated" if item.annotated else None
    return result


def errors_json(items: Sequence[Item]) -> list[dict[str, Any]]:
    """``[{"index", "source", "error"}]`` for the items that failed."""
    return [{"index": i.index, "source": i.source, "error": i.error} for i in items if i.error is not None]


def results_json(
    job: Job, items: Sequence[Item], found: Mapping[int, ItemRecords], view: ResultsView = DEFAULT_VIEW
) -> dict[str, Any]:
    """The whole job as one document: summary and every item with its results."""
    empty = ItemRecords()
    return {"job": job_summary(job), "items": [item_json(item, found.get(item.index, empty), view) for item in items]}
