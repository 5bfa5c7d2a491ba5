"""Assembling the jobs subsystem from a :class:`JobsConfig`: storage, processors, runner, service.

The one place that picks implementations (SQL store, file or database artifacts, embedded pool or
Celery); everything else receives them.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass

from visionserve.jobs.config import JobsConfig
from visionserve.jobs.detectors import ItemDetector, ModelCache
from visionserve.jobs.fetch import UrlFetcher
from visionserve.jobs.local_runner import LocalRunner
from visionserve.jobs.model import Job
from visionserve.jobs.processing import ItemProcessor, ProcessorConfig
from visionserve.jobs.runner import JobRunner
from visionserve.jobs.service import JobService
from visionserve.jobs.store import ArtifactStore
from visionserve.jobs.webhooks import WebhookDispatcher
from visionserve.models.repository import ModelRepository
from visionserve.settings import ArtifactBackend
from visionserve.storage.artifacts import DatabaseArtifactStore, LocalArtifactStore
from visionserve.storage.db import Database
from visionserve.storage.jobs import SqlJobStore


@dataclass(frozen=True)
class Storage:
    db: Database
    store: SqlJobStore
    artifacts: ArtifactStore


def open_storage(config: JobsConfig, migrate: bool = True) -> Storage:
    """Open the database (upgrading its schema unless ``migrate`` is False) and the artifact store."""
    db = Database(config.resolved_database_url)
    if migrate:
        db.upgrade()
    artifacts: ArtifactStore
    if config.artifact_backend is ArtifactBackend.DATABASE:
        artifacts = DatabaseArtifactStore(db)
    else:
        artifacts = LocalArtifactStore(config.artifacts_dir)
    return Storage(db, SqlJobStore(db), artifacts)


def worker_name(role: str) -> str:
    """``host:pid:role``: who claimed an item, as stored on it."""
    return f"{socket.gethostname()}:{os.getpid()}:{role}"


def url_fetcher(config: JobsConfig) -> UrlFetcher | None:
    return UrlFetcher(config.url_policy(), config.url_max_bytes) if config.url_hosts else None


def webhook_dispatcher(config: JobsConfig, storage: Storage) -> WebhookDispatcher | None:
    """The dispatcher of signed webhooks; None without a secret (webhooks are then refused)."""
    if not config.webhook_secret:
        return None
    return WebhookDispatcher(storage.store, config.webhook_secret, config.webhook_outbound(), config.webhook_policy)


def make_processor(
    config: JobsConfig,
    storage: Storage,
    repository: ModelRepository,
    worker: str,
    on_ended: Callable[[Job], None],
    device: str | None = None,
    detector: ItemDetector | None = None,
) -> ItemProcessor:
    """A processor on ``detector`` (the server's served models), or else with a model cache of its own
    on ``device`` (for a worker process)."""
    return ItemProcessor(
        storage.store,
        storage.artifacts,
        detector or ModelCache(repository, device or config.device, max_pixels=config.max_pixels),
        ProcessorConfig(worker, config.limits.max_attempts, config.limits.max_video_frames),
        on_ended,
        fetcher=url_fetcher(config),
    )


def local_runner(
    config: JobsConfig, storage: Storage, repository: ModelRepository, detector: ItemDetector | None = None
) -> LocalRunner:
    """The embedded pool: ``config.workers`` threads on ``detector`` (in a server: its served models;
    without one, each thread loads its own); webhooks when a secret is configured."""
    dispatcher = webhook_dispatcher(config, storage)

    def on_ended(job: Job) -> None:
        if job.webhook_url is not None:
            runner.notify(job.id)

    def processor(n: int) -> ItemProcessor:
        return make_processor(config, storage, repository, worker_name(f"local-{n}"), on_ended, detector=detector)

    runner = LocalRunner(processor, config.workers, dispatcher)
    return runner


def build_service(
    config: JobsConfig,
    repository: ModelRepository,
    runner: JobRunner | None = None,
    detector: ItemDetector | None = None,
) -> JobService:
    """The service for a server: embedded pool without a broker URL (on ``detector``: pass the
    server's :class:`~visionserve.jobs.detectors.ServedModels`), Celery runner with one (``runner``
    overrides both). Call ``start()`` on it, and ``stop()`` at shutdown."""
    storage = open_storage(config)
    if runner is None and config.broker_url:
        from visionserve.jobs.celery_app import CeleryRunner, create_celery_app

        runner = CeleryRunner(create_celery_app(config), config.queue)
    if runner is None:
        runner = local_runner(config, storage, repository, detector)
    return JobService(
        storage.store,
        storage.artifacts,
        repository,
        runner,
        config.limits,
        webhooks=config.webhook_outbound() if config.webhook_secret else None,
        fetcher=url_fetcher(config),
    )


def worker_parts_builder(
    config: JobsConfig, repository: ModelRepository, device: str
) -> Callable[[Callable[[str], None]], tuple[ItemProcessor, WebhookDispatcher | None]]:
    """What a Celery worker process builds on its first task: storage (schema already upgraded by
    ``visionserve worker``), a processor with models on ``device``, the webhook dispatcher."""

    def build(notify: Callable[[str], None]) -> tuple[ItemProcessor, WebhookDispatcher | None]:
        storage = open_storage(config, migrate=False)

        def on_ended(job: Job) -> None:
            if job.webhook_url is not None:
                notify(job.id)

        processor = make_processor(config, storage, repository, worker_name("celery"), on_ended, device)
        return processor, webhook_dispatcher(config, storage)

    return build
