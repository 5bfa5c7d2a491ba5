"""The two storage ports of the jobs subsystem: a :class:`JobStore` for status rows and results, an
:class:`ArtifactStore` for bytes. Implementations live in :mod:`visionserve.storage` (SQLAlchemy,
local files); the service, the processor and the runners only know these protocols.

Every state change is a compare-and-set against :data:`~visionserve.jobs.model.JOB_TRANSITIONS` or
:data:`~visionserve.jobs.model.ITEM_TRANSITIONS`, safe with several worker processes on one database.
All times are timezone-aware UTC. Methods raise :class:`~visionserve.errors.StorageError` when the
database cannot be reached.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from visionserve.jobs.model import (
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
    WebhookState,
)
from visionserve.models.spec import Task


class JobStore(Protocol):
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
        """Insert a queued job of a ``task`` model and one pending item per input (index = position),
        in one transaction."""
        ...

    def get(self, job_id: str) -> Job:
        """The job with its progress; :class:`JobNotFoundError` if there is none."""
        ...

    def list_jobs(self, query: JobQuery) -> JobPage: ...

    def items(
        self, job_id: str, offset: int = 0, limit: int | None = None, state: ItemState | None = None
    ) -> list[Item]:
        """Items (of ``state``, when given) in index order; all of them when ``limit`` is None."""
        ...

    def item(self, job_id: str, index: int) -> Item:
        """One item; :class:`JobNotFoundError` if the job or the index does not exist."""
        ...

    def detections(self, job_id: str, indices: Sequence[int] | None = None) -> dict[int, list[DetectionRecord]]:
        """Detections by item index (highest score first), for ``indices`` or every item."""
        ...

    def classes(self, job_id: str, indices: Sequence[int] | None = None) -> dict[int, list[ClassRecord]]:
        """The top classes of classify items by item index (highest score first), for ``indices`` or
        every item."""
        ...

    def claim(self, job_id: str, index: int, worker: str, max_attempts: int, now: datetime) -> Claim | ClaimRefusal:
        """Hand item ``index`` to ``worker`` (a pending item, or a running one whose worker was lost),
        starting the job if it was queued. An item already claimed ``max_attempts`` times is failed
        instead and :attr:`ClaimRefusal.EXHAUSTED` returned."""
        ...

    def commit(self, claim: Claim, output: ItemOutput, worker: str, now: datetime) -> bool:
        """Store the result of ``claim`` and mark the item done, atomically. False (and nothing
        written) when a later claim of the item exists or the item was cancelled."""
        ...

    def fail_item(self, claim: Claim, error: str, now: datetime) -> bool:
        """Mark the claimed item failed with ``error``; False if ``claim`` is no longer current."""
        ...

    def finish_if_complete(self, job_id: str, now: datetime) -> Job | None:
        """End a running job whose items are all finished; the job if *this call* ended it. Call it in
        a new transaction after committing an item, so that the last committer always sees every item."""
        ...

    def fail_job(self, job_id: str, error: str, now: datetime) -> Job | None:
        """Fail a queued or running job and cancel its unfinished items; the job if this call did."""
        ...

    def cancel(self, job_id: str, now: datetime) -> Job:
        """Cancel the job and its unfinished items. :class:`JobStateError` if it has already ended."""
        ...

    def unfinished(self) -> list[tuple[str, list[int]]]:
        """``(job_id, item indices)`` for every unfinished item of a queued or running job, oldest job first."""
        ...

    def mark_dispatched(self, job_id: str, now: datetime) -> None:
        """Record that the job's items were handed to the runner (a broker has them)."""
        ...

    def undispatched(self, created_before: datetime) -> list[str]:
        """Queued or running jobs created before ``created_before`` that were never marked dispatched
        (a dispatch that failed partway may have started some of their items), oldest first."""
        ...

    def stalled(self, before: datetime) -> list[tuple[str, list[int]]]:
        """``(job_id, unfinished item indices)`` of the queued or running jobs dispatched before
        ``before``, oldest first, if no item of any job was claimed or finished at or after
        ``before``; else nothing (work is progressing somewhere)."""
        ...

    def ping(self) -> None:
        """Return when the database answers a trivial query; :class:`StorageError` otherwise."""
        ...

    def backlog(self) -> dict[ItemState, int]:
        """Pending and running items of queued and running jobs."""
        ...

    def finished_since(self, moment: datetime) -> int:
        """Items that finished (done or failed) at or after ``moment``: throughput over a window."""
        ...

    def set_webhook(self, job_id: str, state: WebhookState, attempts: int) -> None: ...

    def pending_webhooks(self) -> list[str]:
        """Ended jobs whose webhook has not been delivered nor given up on."""
        ...

    def expired(self, finished_before: datetime, limit: int = 100) -> list[str]:
        """Ids of ended jobs that finished before ``finished_before``."""
        ...

    def delete(self, job_id: str) -> None:
        """Remove the job, its items, detections and classifications (idempotent)."""
        ...

    def close(self) -> None: ...


class ArtifactStore(Protocol):
    """Bytes under keys made of ids (see :func:`visionserve.jobs.model.input_key` and friends).

    ``put`` is atomic and idempotent: a reader sees the old bytes or the new ones, never a part, and
    writing the same key twice leaves one copy.
    """

    def put(self, key: str, data: bytes) -> None: ...

    def get(self, key: str) -> bytes:
        """The bytes under ``key``; :class:`JobNotFoundError` if there are none."""
        ...

    def delete_prefix(self, prefix: str) -> None:
        """Remove every key that starts with ``prefix`` (a job's ``jobs/<id>/``); idempotent."""
        ...
