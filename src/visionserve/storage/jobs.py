"""The :class:`~visionserve.jobs.store.JobStore` on SQLAlchemy Core (SQLite or PostgreSQL).

Every state change is one ``UPDATE ... WHERE state IN (<allowed sources>)`` whose sources come from
the transition tables; item updates also match the claim's ``attempt``. Under PostgreSQL's READ
COMMITTED an UPDATE re-checks its WHERE after waiting for a row lock, and SQLite transactions are
serialized (``BEGIN IMMEDIATE``), so two workers can never both win the same change.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, delete, func, insert, select, update

from visionserve.errors import JobNotFoundError
from visionserve.jobs.model import (
    ITEM_TRANSITIONS,
    JOB_TRANSITIONS,
    Claim,
    ClaimRefusal,
    ClassRecord,
    DetectionRecord,
    Item,
    ItemOutput,
    ItemState,
    Job,
    JobInput,
    JobOptions,
    JobPage,
    JobQuery,
    JobState,
    Progress,
    WebhookState,
    check_transition,
    sources_of,
)
from visionserve.models.spec import Task
from visionserve.storage.db import Database
from visionserve.storage.rows import (
    class_values,
    detection_from_row,
    detection_values,
    item_from_row,
    job_from_row,
)
from visionserve.storage.tables import classifications, detections, job_items, jobs

_UNFINISHED_ITEMS = (ItemState.PENDING.value, ItemState.RUNNING.value)
_ACTIVE_JOBS = (JobState.QUEUED.value, JobState.RUNNING.value)
_ENDED_JOBS = tuple(state.value for state in JobState if state.terminal)


def _values(states: frozenset[JobState] | frozenset[ItemState]) -> list[str]:
    return sorted(state.value for state in states)


def _item_key(job_id: str, index: int) -> Any:
    return and_(job_items.c.job_id == job_id, job_items.c.idx == index)


class SqlJobStore:
    """Jobs, items, detections and classifications in the tables of :mod:`visionserve.storage.tables`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def create(
        self,
        job_id: str,
        model: str,
        options: JobOptions,
        inputs: Sequence[JobInput],
        webhook_url: str | None,
        now: datetime,
        task: Task = Task.DETECT,
    ) -> Job:
        job_row = {
            "id": job_id,
            "state": JobState.QUEUED.value,
            "model": model,
            "task": task.value,
            "options": json.dumps(options.to_dict()),
            "total": len(inputs),
            "webhook_url": webhook_url,
            "webhook_attempts": 0,
            "created_at": now,
        }
        item_rows = [
            {
                "job_id": job_id,
                "idx": index,
                "state": ItemState.PENDING.value,
                "source": one.name,
                "url": one.url,
                "attempt": 0,
                "detection_count": 0,
                "crop_count": 0,
                "annotated": False,
            }
            for index, one in enumerate(inputs)
        ]
        with self._db.begin() as c:
            c.execute(insert(jobs), [job_row])
            if item_rows:
                c.execute(insert(job_items), item_rows)
            return self._get(c, job_id)

    def get(self, job_id: str) -> Job:
        with self._db.begin() as c:
            return self._get(c, job_id)

    def _get(self, c: Connection, job_id: str) -> Job:
        row = c.execute(select(jobs).where(jobs.c.id == job_id)).first()
        if row is None:
            raise JobNotFoundError(f"no job {job_id!r}")
        return job_from_row(row, self._progress(c, [job_id]).get(job_id, Progress()))

    def _progress(self, c: Connection, job_ids: Sequence[str]) -> dict[str, Progress]:
        counts: dict[str, dict[ItemState, int]] = {job_id: {} for job_id in job_ids}
        query = (
            select(job_items.c.job_id, job_items.c.state, func.count())
            .where(job_items.c.job_id.in_(job_ids))
            .group_by(job_items.c.job_id, job_items.c.state)
        )
        for job_id, state, count in c.execute(query):
            counts[job_id][ItemState(state)] = count
        return {job_id: Progress.from_counts(by_state) for job_id, by_state in counts.items()}

    def list_jobs(self, query: JobQuery) -> JobPage:
        conditions = []
        if query.state is not None:
            conditions.append(jobs.c.state == query.state.value)
        if query.model is not None:
            conditions.append(jobs.c.model == query.model)
        with self._db.begin() as c:
            total = c.execute(select(func.count()).select_from(jobs).where(*conditions)).scalar_one()
            rows = c.execute(
                select(jobs)
                .where(*conditions)
                .order_by(jobs.c.created_at.desc(), jobs.c.id)
                .limit(query.limit)
                .offset(query.offset)
            ).all()
            progress = self._progress(c, [row.id for row in rows])
        return JobPage([job_from_row(row, progress[row.id]) for row in rows], total, query)

    def items(
        self, job_id: str, offset: int = 0, limit: int | None = None, state: ItemState | None = None
    ) -> list[Item]:
        query = select(job_items).where(job_items.c.job_id == job_id).order_by(job_items.c.idx).offset(offset)
        if state is not None:
            query = query.where(job_items.c.state == state.value)
        with self._db.begin() as c:
            return [item_from_row(row) for row in c.execute(query.limit(limit))]

    def item(self, job_id: str, index: int) -> Item:
        with self._db.begin() as c:
            row = c.execute(select(job_items).where(_item_key(job_id, index))).first()
        if row is None:
            raise JobNotFoundError(f"job {job_id!r} has no item {index}")
        return item_from_row(row)

    def detections(self, job_id: str, indices: Sequence[int] | None = None) -> dict[int, list[DetectionRecord]]:
        query = select(detections).where(detections.c.job_id == job_id)
        if indices is not None:
            query = query.where(detections.c.idx.in_(list(indices)))
        result: dict[int, list[DetectionRecord]] = {}
        with self._db.begin() as c:
            for row in c.execute(query.order_by(detections.c.idx, detections.c.k)):
                result.setdefault(row.idx, []).append(detection_from_row(row))
        return result

    def classes(self, job_id: str, indices: Sequence[int] | None = None) -> dict[int, list[ClassRecord]]:
        query = select(classifications).where(classifications.c.job_id == job_id)
        if indices is not None:
            query = query.where(classifications.c.idx.in_(list(indices)))
        result: dict[int, list[ClassRecord]] = {}
        with self._db.begin() as c:
            for row in c.execute(query.order_by(classifications.c.idx, classifications.c.k)):
                result.setdefault(row.idx, []).append(ClassRecord(row.class_id, row.label, row.score))
        return result

    def claim(self, job_id: str, index: int, worker: str, max_attempts: int, now: datetime) -> Claim | ClaimRefusal:
        with self._db.begin() as c:
            job = c.execute(select(jobs.c.state, jobs.c.model, jobs.c.options).where(jobs.c.id == job_id)).first()
            if job is None or JobState(job.state).terminal:
                return ClaimRefusal.JOB_ENDED
            c.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.state.in_(_values(sources_of(JOB_TRANSITIONS, JobState.RUNNING))))
                .values(state=JobState.RUNNING.value, started_at=now)
            )
            columns = select(job_items.c.state, job_items.c.attempt, job_items.c.url)
            item = c.execute(columns.where(_item_key(job_id, index))).first()
            if item is None or ItemState(item.state).terminal:
                return ClaimRefusal.FINISHED
            if item.attempt >= max_attempts:
                lost = f"lost with its worker {item.attempt} times; not retried"
                if self._set_item(c, job_id, index, item.attempt, ItemState.FAILED, error=lost, finished_at=now):
                    return ClaimRefusal.EXHAUSTED
                return ClaimRefusal.TAKEN
            attempt = item.attempt + 1
            claimed = self._set_item(
                c, job_id, index, item.attempt, ItemState.RUNNING, attempt=attempt, worker=worker, claimed_at=now
            )
            if not claimed:
                return ClaimRefusal.TAKEN
            options = JobOptions.from_dict(json.loads(job.options))
            return Claim(job_id, index, attempt, job.model, options, item.url)

    @staticmethod
    def _set_item(c: Connection, job_id: str, index: int, expected: int, target: ItemState, **values: Any) -> bool:
        """Compare-and-set: move the item to ``target`` if it is still at attempt ``expected`` in an
        allowed state."""
        result = c.execute(
            update(job_items)
            .where(
                _item_key(job_id, index),
                job_items.c.attempt == expected,
                job_items.c.state.in_(_values(sources_of(ITEM_TRANSITIONS, target))),
            )
            .values(state=target.value, **values)
        )
        return result.rowcount == 1

    def commit(self, claim: Claim, output: ItemOutput, worker: str, now: datetime) -> bool:
        timings = output.timings
        with self._db.begin() as c:
            done = self._set_item(
                c,
                claim.job_id,
                claim.index,
                claim.attempt,
                ItemState.DONE,
                worker=worker,
                error=None,
                width=output.width,
                height=output.height,
                fetch_ms=timings.fetch_ms,
                decode_ms=timings.decode_ms,
                inference_ms=timings.inference_ms,
                total_ms=timings.total_ms,
                detection_count=len(output.detections),
                crop_count=output.crop_count,
                annotated=output.annotated,
                finished_at=now,
            )
            if done and output.detections:
                found = enumerate(output.detections)
                c.execute(insert(detections), [detection_values(claim.job_id, claim.index, k, d) for k, d in found])
            if done and output.classes:
                ranked = enumerate(output.classes)
                c.execute(insert(classifications), [class_values(claim.job_id, claim.index, k, r) for k, r in ranked])
            return done

    def fail_item(self, claim: Claim, error: str, now: datetime) -> bool:
        with self._db.begin() as c:
            return self._set_item(
                c, claim.job_id, claim.index, claim.attempt, ItemState.FAILED, error=error, finished_at=now
            )

    def finish_if_complete(self, job_id: str, now: datetime) -> Job | None:
        with self._db.begin() as c:
            progress = self._progress(c, [job_id])[job_id]
            if progress.pending or progress.running:
                return None
            failed = progress.done == 0 and progress.failed > 0
            target = JobState.FAILED if failed else JobState.SUCCEEDED
            error = "every item failed" if failed else None
            if not self._set_job(c, job_id, target, now, error):
                return None
            return self._get(c, job_id)

    @staticmethod
    def _set_job(c: Connection, job_id: str, target: JobState, now: datetime, error: str | None) -> bool:
        """Compare-and-set a job into a terminal ``target``; its webhook (if any) becomes pending."""
        ended = c.execute(
            update(jobs)
            .where(jobs.c.id == job_id, jobs.c.state.in_(_values(sources_of(JOB_TRANSITIONS, target))))
            .values(state=target.value, finished_at=now, error=error)
        )
        if ended.rowcount != 1:
            return False
        c.execute(
            update(jobs)
            .where(jobs.c.id == job_id, jobs.c.webhook_url.is_not(None))
            .values(webhook_state=WebhookState.PENDING.value)
        )
        cancelled = ItemState.CANCELLED
        unfinished = job_items.c.state.in_(_values(sources_of(ITEM_TRANSITIONS, cancelled)))
        c.execute(
            update(job_items)
            .where(job_items.c.job_id == job_id, unfinished)
            .values(state=cancelled.value, finished_at=now)
        )
        return True

    def fail_job(self, job_id: str, error: str, now: datetime) -> Job | None:
        with self._db.begin() as c:
            return self._get(c, job_id) if self._set_job(c, job_id, JobState.FAILED, now, error) else None

    def cancel(self, job_id: str, now: datetime) -> Job:
        with self._db.begin() as c:
            job = self._get(c, job_id)
            check_transition(JOB_TRANSITIONS, job.state, JobState.CANCELLED)
            if not self._set_job(c, job_id, JobState.CANCELLED, now, None):
                check_transition(JOB_TRANSITIONS, self._get(c, job_id).state, JobState.CANCELLED)
            return self._get(c, job_id)

    def unfinished(self) -> list[tuple[str, list[int]]]:
        query = (
            select(job_items.c.job_id, job_items.c.idx)
            .join(jobs, jobs.c.id == job_items.c.job_id)
            .where(jobs.c.state.in_(_ACTIVE_JOBS), job_items.c.state.in_(_UNFINISHED_ITEMS))
            .order_by(jobs.c.created_at, jobs.c.id, job_items.c.idx)
        )
        result: dict[str, list[int]] = {}
        with self._db.begin() as c:
            for job_id, index in c.execute(query):
                result.setdefault(job_id, []).append(index)
        return list(result.items())

    def mark_dispatched(self, job_id: str, now: datetime) -> None:
        with self._db.begin() as c:
            c.execute(update(jobs).where(jobs.c.id == job_id).values(dispatched_at=now))

    def undispatched(self, created_before: datetime) -> list[str]:
        query = select(jobs.c.id).where(  # running too: a dispatch that failed partway started the job
            jobs.c.state.in_(_ACTIVE_JOBS), jobs.c.dispatched_at.is_(None), jobs.c.created_at < created_before
        )
        with self._db.begin() as c:
            return list(c.execute(query.order_by(jobs.c.created_at)).scalars())

    def stalled(self, before: datetime) -> list[tuple[str, list[int]]]:
        active = jobs.c.state.in_(_ACTIVE_JOBS)
        unfinished = job_items.c.state.in_(_UNFINISHED_ITEMS)
        items = select(job_items.c.job_id, job_items.c.idx).join(jobs, jobs.c.id == job_items.c.job_id)
        finished = select(job_items.c.job_id).where(job_items.c.finished_at >= before).limit(1)
        claimed = items.where(active, unfinished, job_items.c.claimed_at >= before).limit(1)
        query = items.where(active, unfinished, jobs.c.dispatched_at < before)
        result: dict[str, list[int]] = {}
        with self._db.begin() as c:
            if c.execute(finished).first() is not None or c.execute(claimed).first() is not None:
                return []
            for job_id, index in c.execute(query.order_by(jobs.c.created_at, jobs.c.id, job_items.c.idx)):
                result.setdefault(job_id, []).append(index)
        return list(result.items())

    def ping(self) -> None:
        self._db.ping()

    def backlog(self) -> dict[ItemState, int]:
        query = (
            select(job_items.c.state, func.count())
            .join(jobs, jobs.c.id == job_items.c.job_id)
            .where(jobs.c.state.in_(_ACTIVE_JOBS), job_items.c.state.in_(_UNFINISHED_ITEMS))
            .group_by(job_items.c.state)
        )
        with self._db.begin() as c:
            counts = {ItemState(state): count for state, count in c.execute(query)}
        return {state: counts.get(state, 0) for state in (ItemState.PENDING, ItemState.RUNNING)}

    def finished_since(self, moment: datetime) -> int:
        done = (ItemState.DONE.value, ItemState.FAILED.value)
        query = select(func.count()).where(job_items.c.state.in_(done), job_items.c.finished_at >= moment)
        with self._db.begin() as c:
            return int(c.execute(query.select_from(job_items)).scalar_one())

    def set_webhook(self, job_id: str, state: WebhookState, attempts: int) -> None:
        with self._db.begin() as c:
            c.execute(
                update(jobs).where(jobs.c.id == job_id).values(webhook_state=state.value, webhook_attempts=attempts)
            )

    def pending_webhooks(self) -> list[str]:
        pending = jobs.c.webhook_state == WebhookState.PENDING.value
        query = select(jobs.c.id).where(pending, jobs.c.state.in_(_ENDED_JOBS))
        with self._db.begin() as c:
            return list(c.execute(query.order_by(jobs.c.finished_at)).scalars())

    def expired(self, finished_before: datetime, limit: int = 100) -> list[str]:
        query = (
            select(jobs.c.id)
            .where(jobs.c.state.in_(_ENDED_JOBS), jobs.c.finished_at < finished_before)
            .order_by(jobs.c.finished_at)
            .limit(limit)
        )
        with self._db.begin() as c:
            return list(c.execute(query).scalars())

    def delete(self, job_id: str) -> None:
        with self._db.begin() as c:
            c.execute(delete(detections).where(detections.c.job_id == job_id))
            c.execute(delete(classifications).where(classifications.c.job_id == job_id))
            c.execute(delete(job_items).where(job_items.c.job_id == job_id))
            c.execute(delete(jobs).where(jobs.c.id == job_id))

    def close(self) -> None:
        self._db.close()
