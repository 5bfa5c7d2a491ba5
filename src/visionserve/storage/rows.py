"""Rows of the jobs tables as the values of :mod:`visionserve.jobs.model`."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Row

from visionserve.jobs.model import Item, ItemState, ItemTimings, Job, JobOptions, JobState, Progress, WebhookState


def job_from_row(row: Row[Any], progress: Progress) -> Job:
    """A :class:`Job` from a ``jobs`` row and its item counts."""
    return Job(
        id=row.id,
        state=JobState(row.state),
        model=row.model,
        options=JobOptions.from_dict(json.loads(row.options)),
        progress=progress,
        created_at=row.created_at,
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
