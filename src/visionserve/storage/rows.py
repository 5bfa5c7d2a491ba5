"""Rows of the jobs tables as the values of :mod:`visionserve.jobs.model`."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Row

from visionserve.jobs.model import (
    ClassRecord,
    DetectionRecord,
    Item,
    ItemState,
    ItemTimings,
    Job,
    JobOptions,
    JobState,
    MaskRle,
    Progress,
    WebhookState,
)
from visionserve.models.spec import Task


def job_from_row(row: Row[Any], progress: Progress) -> Job:
    """A :class:`Job` from a ``jobs`` row and its item counts."""
    return Job(
        id=row.id,
        state=JobState(row.state),
        model=row.model,
        options=JobOptions.from_dict(json.loads(row.options)),
        progress=progress,
        created_at=row.created_at,
        task=Task.DETECT if row.task is None else Task(row.task),
        started_at=row.started_at,
        finished_at=row.finished_at,
        error=row.error,
        webhook_url=row.webhook_url,
        webhook_state=None if row.webhook_state is None else WebhookState(row.webhook_state),
        webhook_attempts=row.webhook_attempts,
    )


def item_from_row(row: Row[Any]) -> Item:
    """An :class:`Item` from a ``job_items`` row (timings only once it finished)."""
    timings = None
    if row.total_ms is not None:
        timings = ItemTimings(row.fetch_ms or 0.0, row.decode_ms or 0.0, row.inference_ms or 0.0, row.total_ms)
    return Item(
        job_id=row.job_id,
        index=row.idx,
        state=ItemState(row.state),
        source=row.source,
        attempts=row.attempt,
        worker=row.worker,
        error=row.error,
        width=row.width,
        height=row.height,
        timings=timings,
        detection_count=row.detection_count,
        crop_count=row.crop_count,
        annotated=row.annotated,
        finished_at=row.finished_at,
    )


def detection_values(job_id: str, index: int, k: int, record: DetectionRecord) -> dict[str, Any]:
    """The ``detections`` row of ``record``, detection ``k`` of item ``index``."""
    x1, y1, x2, y2 = record.box
    mask = None if record.mask is None else json.dumps(record.mask.to_coco(), separators=(",", ":"))
    keypoints = None if record.keypoints is None else json.dumps([list(point) for point in record.keypoints])
    return {
        "job_id": job_id,
        "idx": index,
        "k": k,
        "class_id": record.class_id,
        "label": record.label,
        "score": record.score,
        "x1": x1,
        "y1": y1,
        "x2": x2,
        "y2": y2,
        "mask": mask,
        "keypoints": keypoints,
    }


def detection_from_row(row: Row[Any]) -> DetectionRecord:
    """A :class:`DetectionRecord` from a ``detections`` row (rows stored before revision 0002 have
    neither mask nor keypoints)."""
    mask = None if row.mask is None else MaskRle.from_coco(json.loads(row.mask))
    keypoints = None
    if row.keypoints is not None:
        keypoints = tuple((float(x), float(y), float(s)) for x, y, s in json.loads(row.keypoints))
    return DetectionRecord(row.class_id, row.label, row.score, (row.x1, row.y1, row.x2, row.y2), mask, keypoints)


def class_values(job_id: str, index: int, k: int, record: ClassRecord) -> dict[str, Any]:
    """The ``classifications`` row of ``record``, class ``k`` (rank) of item ``index``."""
    return {"job_id": job_id, "idx": index, "k": k, "class_id": record.class_id, "label": record.label} | {
        "score": record.score
    }
