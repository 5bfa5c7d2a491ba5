"""Plugging the jobs subsystem into the app: its lifespan, its metrics, and its body size limit.

* :func:`start_jobs` / :func:`stop_jobs` build, start and stop the
  :class:`~visionserve.jobs.service.JobService` (``app.state.jobs``); blocking work (schema upgrade,
  joining worker threads) runs in a thread.
* :class:`JobsCollector` reports, at scrape time (from the stats :func:`fetch_job_stats` read in a
  thread), ``visionserve_job_items`` (pending and running
  items of unfinished jobs), ``visionserve_job_queue_depth`` (items waiting in the runner's queue) and
  ``visionserve_job_items_finished_last_minute`` (throughput).
* :class:`JobsBodyLimit` gives ``POST /v1/jobs`` its own, larger body limit: a job is many images.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from dataclasses import replace

from fastapi import FastAPI
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from visionserve.api.limits import BodyLimitMiddleware
from visionserve.errors import StorageError, VisionServeError
from visionserve.jobs.config import jobs_config
from visionserve.jobs.detectors import ServedModels
from visionserve.jobs.factory import build_service
from visionserve.jobs.service import JobService, JobStats
from visionserve.models.repository import ModelRepository
from visionserve.outbound import Resolver, system_resolver
from visionserve.serving.service import DetectionService
from visionserve.settings import Settings

logger = logging.getLogger(__name__)

JOBS_PATH = "/v1/jobs"


async def start_jobs(
    app: FastAPI,
    settings: Settings,
    repository: ModelRepository,
    given: JobService | None,
    models: DetectionService,
    resolver: Resolver = system_resolver,
) -> None:
    """Build (unless ``given``) and start the job service; resumes what a previous run left. Its
    embedded pool runs items on ``models``, the served models of the app (one inference path);
    ``resolver`` resolves the hosts of image URLs and webhooks."""
    detector = ServedModels(models, asyncio.get_running_loop())

    def start() -> JobService:
        config = replace(jobs_config(settings), resolver=resolver)
        service = given or build_service(config, repository, detector=detector)
        service.start()
        return service

    app.state.jobs = await run_in_threadpool(start)
    logger.info("jobs: %s runner", app.state.jobs.runner.name)


async def stop_jobs(app: FastAPI) -> None:
    service: JobService | None = getattr(app.state, "jobs", None)
    app.state.jobs = None
    if service is not None:
        await run_in_threadpool(service.stop)


async def fetch_job_stats(service: JobService | None) -> JobStats | None:
    """The job service's :meth:`~JobService.stats`, read in a worker thread (they query the
    database and the broker); None without a job service or when they are unavailable (logged)."""
    if service is None:
        return None
    try:
        return await run_in_threadpool(service.stats)
    except VisionServeError as exc:
        logger.warning("job metrics unavailable: %s", exc)
        return None


async def storage_problem(service: JobService | None) -> str | None:
    """Why the jobs database cannot be used now (checked in a worker thread), or None when it
    answers or there is no job service. Lost connections are re-opened on the next check, so the
    answer turns back to None by itself once the database is back."""
    if service is None:
        return None
    try:
        await run_in_threadpool(service.check_storage)
    except StorageError as exc:
        return str(exc)
    return None


class JobsCollector(Collector):
    """Job backlog and throughput from ``stats``, fetched before the scrape with
    :func:`fetch_job_stats` (so that rendering does no I/O); empty families when None."""

    def __init__(self, stats: JobStats | None) -> None:
        self._stats = stats

    def collect(self) -> Iterator[GaugeMetricFamily]:
        items = GaugeMetricFamily("visionserve_job_items", "Unfinished items of jobs, by state", labels=["state"])
        depth = GaugeMetricFamily("visionserve_job_queue_depth", "Job items waiting in the runner's queue")
        finished = GaugeMetricFamily(
            "visionserve_job_items_finished_last_minute", "Job items finished in the last 60 seconds"
        )
        stats = self._stats
        if stats is not None:
            items.add_metric(["pending"], stats.pending)
            items.add_metric(["running"], stats.running)
            if stats.queue_depth is not None:
                depth.add_metric([], stats.queue_depth)
            finished.add_metric([], stats.finished_last_minute)
        yield items
        yield depth
        yield finished


def _multipart(scope: Scope) -> bool:
    media = Headers(scope=scope).get("content-type", "").split(";", 1)[0].strip().lower()
    return media == "multipart/form-data"


def _takes_files(path: str) -> bool:
    """``POST /v1/jobs`` and ``POST /v1/models/{name}/evaluate`` (an evaluation job's archive)."""
    return path == JOBS_PATH or (path.startswith("/v1/models/") and path.endswith("/evaluate"))


class JobsBodyLimit:
    """:class:`BodyLimitMiddleware` with ``jobs_max_bytes`` for multipart ``POST /v1/jobs`` and
    ``POST /v1/models/{name}/evaluate`` bodies (their files are spooled to disk) and ``max_bytes`` for
    everything else, JSON job bodies included: they hold only URLs and options, and are parsed whole
    in memory."""

    def __init__(self, app: ASGIApp, max_bytes: int, jobs_max_bytes: int) -> None:
        self._default = BodyLimitMiddleware(app, max_bytes)
        self._jobs = BodyLimitMiddleware(app, jobs_max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _takes_files(scope["path"]) and scope["method"] == "POST" and _multipart(scope):
            await self._jobs(scope, receive, send)
        else:
            await self._default(scope, receive, send)
