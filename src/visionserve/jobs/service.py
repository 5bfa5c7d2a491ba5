"""The job service: submit, look up, cancel, read results and artifacts, and keep the store tidy.

It knows a :class:`~visionserve.jobs.store.JobStore`, an :class:`~visionserve.jobs.store.ArtifactStore`,
the model repository and a :class:`~visionserve.jobs.runner.JobRunner`; nothing about HTTP, SQL or
Celery. Its methods are synchronous (blocking I/O on the database); an async caller runs them in a
thread. A job and its inputs are stored before :meth:`JobService.submit` returns, so a restart loses
nothing: :meth:`JobService.start` hands unfinished items back to the runner.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from visionserve.errors import (
    ImageTooLargeError,
    InvalidParameterError,
    JobNotFoundError,
    StorageError,
    VisionServeError,
)
from visionserve.evaluation.archive import check_archive
from visionserve.jobs.coco import coco_json
from visionserve.jobs.evaluation_jobs import EvaluationJobs
from visionserve.jobs.fetch import UrlFetcher
from visionserve.jobs.model import (
    Item,
    ItemRecords,
    ItemState,
    Job,
    JobInput,
    JobOptions,
    JobPage,
    JobQuery,
    NewJob,
    annotated_key,
    check_job_id,
    crop_key,
    input_key,
    job_prefix,
    new_job_id,
)
from visionserve.jobs.processing import utc_now
from visionserve.jobs.results import NO_LABELS, ResultsView, item_json, results_json
from visionserve.jobs.runner import JobRunner
from visionserve.jobs.store import ArtifactStore, JobStore
from visionserve.jobs.video_jobs import VideoJobs
from visionserve.jobs.video_model import VideoOptions
from visionserve.models.loading import spec_labels
from visionserve.models.repository import ModelRepository
from visionserve.outbound import OutboundPolicy
from visionserve.pipeline import check_conf, resolve_classes

log = logging.getLogger(__name__)


#: How old an undispatched job must be before it counts as stranded: a job younger than this may
#: still be in the hands of a server that is submitting it (another replica, or one still starting).
DISPATCH_GRACE = timedelta(minutes=1)


@dataclass(frozen=True)
class JobLimits:
    """Limits of the jobs subsystem, apart from those of synchronous requests.

    ``retention`` None keeps jobs forever; ``housekeeping_s`` is how often expired jobs are removed
    (and stalled items re-dispatched). ``redispatch_after`` None never re-dispatches (see
    :meth:`JobService.redispatch_stalled`).
    A video job's one video may have ``max_video_bytes`` and ``max_video_frames``.
    """

    max_images: int = 10_000
    max_image_bytes: int = 20_000_000
    max_video_bytes: int = 256 * 1024 * 1024
    max_video_frames: int = 108_000
    max_attempts: int = 3
    retention: timedelta | None = timedelta(days=7)
    housekeeping_s: float = 60.0
    redispatch_after: timedelta | None = timedelta(minutes=10)


@dataclass(frozen=True)
class JobStats:
    """For health and metrics: items waiting and in progress, and items finished in the last minute."""

    runner: str
    pending: int
    running: int
    finished_last_minute: int
    queue_depth: int | None


class JobService:
    """Jobs over a store, an artifact store, a repository and a runner.

    ``webhooks`` is the outbound policy of webhook URLs when the runner can deliver webhooks (a secret
    is configured); None refuses jobs that ask for one. ``fetcher`` None turns image URLs off.
    """

    def __init__(
        self,
        store: JobStore,
        artifacts: ArtifactStore,
        repository: ModelRepository,
        runner: JobRunner,
        limits: JobLimits | None = None,
        webhooks: OutboundPolicy | None = None,
        fetcher: UrlFetcher | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.store = store
        self.artifacts = artifacts
        self.repository = repository
        self.runner = runner
        self.limits = limits or JobLimits()
        self._webhooks = webhooks
        self._fetcher = fetcher
        self._clock = clock
        self._stopping = threading.Event()
        self._housekeeper: threading.Thread | None = None
        self.videos = VideoJobs(artifacts, self.limits.max_video_frames)
        self.evaluations = EvaluationJobs(artifacts)

    # -- life cycle ------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the runner, hand it what a previous run left unfinished, start housekeeping."""
        self._stopping.clear()
        self.runner.start()
        self.resume()
        self._housekeeper = threading.Thread(target=self._housekeep, name="visionserve-jobs-housekeeping", daemon=True)
        self._housekeeper.start()

    def resume(self) -> None:
        """Re-submit unfinished work. A runner whose queue is lost with the process gets every
        unfinished item and pending webhook; a durable one (a broker) only jobs never dispatched."""
        if not self.runner.durable:
            for job_id, indices in self.store.unfinished():
                log.info("resuming job %s: %d items left", job_id, len(indices))
                self.runner.submit(job_id, indices)
            for job_id in self.store.pending_webhooks():
                self.runner.notify(job_id)
            return
        self.dispatch_stranded(self._clock() - DISPATCH_GRACE)

    def dispatch_stranded(self, created_before: datetime) -> int:
        """Hand a durable runner the pending items of the active jobs created before ``created_before``
        that were never marked dispatched (the broker was down, a dispatch failed partway, or the
        server stopped in between); how many jobs. Items already claimed are the broker's already."""
        stranded = self.store.undispatched(created_before)
        for job_id in stranded:
            indices = [item.index for item in self.store.items(job_id) if item.state is ItemState.PENDING]
            self.runner.submit(job_id, indices)
            self.store.mark_dispatched(job_id, self._clock())
            log.info("dispatched stranded job %s (%d items)", job_id, len(indices))
        return len(stranded)

    def redispatch_stalled(self) -> int:
        """Send a durable runner the unfinished items of active jobs again when nothing progresses:
        no item was claimed or finished for ``redispatch_after``, the broker's queue is empty (so no
        worker is merely busy or behind) and jobs dispatched before that still have unfinished items.
        That is what a broker restart without persistence leaves: the messages are gone, the items
        stay pending (or running, claimed by a worker that lost its connection) for ever. How many
        jobs were sent again; each is then marked dispatched anew, so at most once per deadline.

        A re-dispatched item that a worker still holds is re-claimed and done again; only the latest
        claim commits (see :mod:`visionserve.jobs.processing`), so results stay exactly once."""
        deadline = self.limits.redispatch_after
        if deadline is None or not self.runner.durable or self.runner.queue_depth() != 0:
            return 0
        now = self._clock()
        stalled = self.store.stalled(now - deadline)
        for job_id, indices in stalled:
            self.runner.submit(job_id, indices)
            self.store.mark_dispatched(job_id, now)
            log.warning("job %s: nothing progressed for %s; sent %d items again", job_id, deadline, len(indices))
        return len(stalled)

    def stop(self) -> None:
        """Stop housekeeping and the runner, then close the store and the URL fetcher."""
        self._stopping.set()
        if self._housekeeper is not None:
            self._housekeeper.join()
            self._housekeeper = None
        self.runner.stop()
        self.store.close()
        if self._fetcher is not None:
            self._fetcher.close()

    def _housekeep(self) -> None:
        while not self._stopping.wait(self.limits.housekeeping_s):
            try:
                self.purge_expired()
                if self.runner.durable:
                    self.dispatch_stranded(self._clock() - DISPATCH_GRACE)
                    self.redispatch_stalled()
            except VisionServeError as exc:
                log.warning("jobs housekeeping failed: %s", exc)

    # -- submit ----------------------------------------------------------------------------------
    def submit(self, new: NewJob, classes: Sequence[str] | None = None) -> Job:
        """Validate, store inputs and job, hand the items to the runner; the stored (queued) job.

        ``classes`` are label names or ids to keep. Raises :class:`InvalidParameterError` (no images,
        too many, bad URL or webhook), :class:`ImageTooLargeError`, :class:`ModelNotFoundError`.
        """
        spec = self.repository.get(new.model or self.repository.default_name)
        options = new.options
        check_conf(spec, options.conf)
        if classes:
            options = dataclasses.replace(options, classes=tuple(sorted(resolve_classes(classes, spec_labels(spec)))))
        self._check(new)
        if options.video is not None:
            self.videos.check(new, spec.task, spec_labels(spec))
        if options.evaluate is not None:
            self.evaluations.check_inputs(len(new.inputs), any(one.url is not None for one in new.inputs))
        job_id = new_job_id()
        try:
            self._store_inputs(job_id, new.inputs, options)
            now = self._clock()
            job = self.store.create(job_id, spec.name, options, new.inputs, new.webhook_url, now, spec.task)
        except BaseException:  # no job row refers to the inputs: remove them (an upload cut short too)
            self._discard_inputs(job_id)
            raise
        try:
            self.runner.submit(job_id, range(len(new.inputs)))
        except StorageError as exc:  # stored all the same: housekeeping dispatches it once the broker is back
            log.warning("job %s stored but not dispatched: %s", job_id, exc)
            return job
        self.store.mark_dispatched(job_id, self._clock())
        log.info("job %s: %d images, model %s", job_id, len(new.inputs), spec.name)
        return job

    def _store_inputs(self, job_id: str, inputs: Sequence[JobInput], options: JobOptions) -> None:
        """Put each uploaded image (or the video, probed, or the archive, checked) in the artifact store,
        reading one at a time; raise :class:`ImageTooLargeError` for an input over the size limit,
        :class:`BadVideoError` for a video that does not decode, :class:`DatasetError` for an archive
        that is not a safe zip (the caller removes what was stored)."""
        video = options.video
        for index, one in enumerate(inputs):
            data = one.data if one.data is not None else one.read() if one.read is not None else None
            if data is None:
                continue
            archive = options.evaluate is not None
            if len(data) > self._max_bytes(video, archive):
                raise ImageTooLargeError(self._too_large(one.name, len(data), video, archive))
            if options.evaluate is not None:
                check_archive(data)
            self.artifacts.put(input_key(job_id, index), data)
            if video is not None:
                self.videos.accept(job_id, data, video)

    def _max_bytes(self, video: VideoOptions | None, archive: bool = False) -> int:
        return self.limits.max_image_bytes if video is None and not archive else self.limits.max_video_bytes

    def _discard_inputs(self, job_id: str) -> None:
        """Remove the stored inputs of a job that was not created; a failure is logged, so that the
        error that stopped the job is the one raised."""
        try:
            self.artifacts.delete_prefix(job_prefix(job_id))
        except Exception:
            log.exception("inputs of job %s not removed", job_id)

    def _too_large(self, name: str, size: int, video: VideoOptions | None = None, archive: bool = False) -> str:
        what = "archive" if archive else "image" if video is None else "video"
        return f"{what} {name!r} has {size} bytes; the limit is {self._max_bytes(video, archive)}"

    def _check(self, new: NewJob) -> None:
        count = len(new.inputs)
        if not 1 <= count <= self.limits.max_images:
            raise InvalidParameterError(f"a job takes 1 to {self.limits.max_images} images, got {count}")
        video, archive = new.options.video, new.options.evaluate is not None
        for one in new.inputs:
            size = one.declared_size
            if size is not None and size > self._max_bytes(video, archive):
                raise ImageTooLargeError(self._too_large(one.name, size, video, archive))
            if one.url is not None:
                if self._fetcher is None:
                    raise InvalidParameterError("image URLs are turned off on this server")
                self._fetcher.check(one.url)
        if new.webhook_url is not None:
            if self._webhooks is None:
                raise InvalidParameterError("webhooks are turned off on this server (no VISIONSERVE_WEBHOOK_SECRET)")
            self._webhooks.check(new.webhook_url)

    # -- read ------------------------------------------------------------------------------------
    def get(self, job_id: str) -> Job:
        return self.store.get(check_job_id(job_id))

    def list_jobs(self, query: JobQuery) -> JobPage:
        return self.store.list_jobs(query)

    def items(self, job_id: str, offset: int = 0, limit: int | None = None) -> list[Item]:
        return self.store.items(check_job_id(job_id), offset, limit)

    def errors(self, job_id: str, offset: int = 0, limit: int | None = None) -> list[Item]:
        """Items that failed, with their errors, in index order: ``limit`` of them from ``offset``
        (all when ``limit`` is None)."""
        return self.store.items(check_job_id(job_id), offset, limit, state=ItemState.FAILED)

    def item(self, job_id: str, index: int) -> tuple[Item, ItemRecords]:
        """Item ``index`` and its results; :class:`JobNotFoundError` if there is none."""
        item = self.store.item(check_job_id(job_id), index)
        return item, self._records(job_id, [index]).get(index, ItemRecords())

    def item_json(self, job_id: str, index: int) -> dict[str, Any]:
        """Item ``index`` with its results and artifact links (see :func:`visionserve.jobs.results.item_json`)."""
        item, found = self.item(job_id, index)
        return item_json(item, found, self._view(self.get(job_id)))

    def results_page(self, job: Job, offset: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        """Items ``offset`` to ``offset + limit`` of ``job`` with their results."""
        items = self.store.items(job.id, offset, limit)
        found = self._records(job.id, [item.index for item in items])
        view = self._view(job)
        return [item_json(item, found.get(item.index, ItemRecords()), view) for item in items]

    def results(self, job_id: str, offset: int = 0, limit: int | None = None) -> dict[str, Any]:
        """The items from ``offset`` (``limit`` of them; all when None) with their results (see
        :func:`visionserve.jobs.results.results_json`)."""
        job = self.get(job_id)
        items = self.store.items(job.id, offset, limit)
        found = self._records(job.id, [item.index for item in items]) if items else {}
        document = results_json(job, items, found, self._view(job))
        if job.options.video is not None:
            document["video"] = self.videos.status(job)
        if job.options.evaluate is not None:
            document["evaluation"] = self.evaluations.status(job)
        return document

    def coco(self, job_id: str) -> dict[str, Any]:
        """The results as a COCO document (see :mod:`visionserve.jobs.coco`); categories, keypoint
        names and skeleton are the model's when it is still known."""
        job = self.get(job_id)
        return coco_json(job, self.store.items(job.id), self._records(job.id), self._view(job))

    def _records(self, job_id: str, indices: Sequence[int] | None = None) -> dict[int, ItemRecords]:
        detections = self.store.detections(job_id, indices)
        classes = self.store.classes(job_id, indices)
        return {
            index: ItemRecords(tuple(detections.get(index, ())), tuple(classes.get(index, ())))
            for index in detections.keys() | classes.keys()
        }

    def _view(self, job: Job) -> ResultsView:
        """How ``job``'s results are shown, with its model's labels (none when the model is gone)."""
        try:
            labels = spec_labels(self.repository.get(job.model))
        except VisionServeError:
            labels = NO_LABELS
        return ResultsView.of(job, labels)

    def crop(self, job_id: str, index: int, k: int) -> bytes:
        """JPEG crop ``k`` (highest score first) of item ``index``; :class:`JobNotFoundError` if none."""
        item = self.store.item(check_job_id(job_id), index)
        if not 0 <= k < item.crop_count:
            raise JobNotFoundError(f"item {index} of job {job_id} has no crop {k} ({item.crop_count} crops)")
        return self.artifacts.get(crop_key(job_id, index, k))

    def annotated(self, job_id: str, index: int) -> bytes:
        """The annotated JPEG of item ``index``; :class:`JobNotFoundError` if it was not asked for."""
        item = self.store.item(check_job_id(job_id), index)
        if not item.annotated:
            raise JobNotFoundError(f"item {index} of job {job_id} has no annotated image")
        return self.artifacts.get(annotated_key(job_id, index))

    def check_storage(self) -> None:
        """Raise :class:`StorageError` unless the jobs database answers (readiness probes)."""
        self.store.ping()

    def stats(self) -> JobStats:
        backlog = self.store.backlog()
        return JobStats(
            runner=self.runner.name,
            pending=backlog.get(ItemState.PENDING, 0),
            running=backlog.get(ItemState.RUNNING, 0),
            finished_last_minute=self.store.finished_since(self._clock() - timedelta(minutes=1)),
            queue_depth=self.runner.queue_depth(),
        )

    # -- change ----------------------------------------------------------------------------------
    def cancel(self, job_id: str) -> Job:
        """Cancel a queued or running job: unfinished items are not processed, items in progress are
        discarded. Raises :class:`JobStateError` if the job has already ended."""
        job = self.store.cancel(check_job_id(job_id), self._clock())
        if job.webhook_url is not None:
            self.runner.notify(job.id)
        return job

    def purge_expired(self) -> int:
        """Remove jobs (and their artifacts) that ended more than ``retention`` ago; how many."""
        if self.limits.retention is None:
            return 0
        removed = 0
        while True:
            expired = self.store.expired(self._clock() - self.limits.retention)
            for job_id in expired:
                self.artifacts.delete_prefix(job_prefix(job_id))
                self.store.delete(job_id)
            removed += len(expired)
            if len(expired) < 100:
                break
        if removed:
            log.info("removed %d expired jobs", removed)
        return removed
