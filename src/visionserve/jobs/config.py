"""Everything the jobs subsystem is configured with, in one frozen value built from the settings.

Kept apart from the pydantic settings so that workers, tests and benchmarks can build it directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from visionserve.core.images import DEFAULT_MAX_PIXELS
from visionserve.jobs.service import JobLimits
from visionserve.jobs.webhooks import WebhookRetries
from visionserve.outbound import IPNetwork, OutboundPolicy, Resolver, parse_networks, system_resolver
from visionserve.settings import ArtifactBackend
from visionserve.storage.db import sqlite_url

if TYPE_CHECKING:
    from visionserve.settings import Settings


@dataclass(frozen=True)
class JobsConfig:
    """``database_url`` None means SQLite in ``data_dir``; ``broker_url`` None means the embedded pool
    of ``workers`` threads, a broker URL means Celery workers (``visionserve worker``) do the work."""

    data_dir: Path = Path("var")
    database_url: str | None = None
    artifact_backend: ArtifactBackend = ArtifactBackend.LOCAL
    broker_url: str | None = None
    queue: str = "visionserve"
    visibility_timeout_s: int = 600
    workers: int = 1
    device: str = "cpu"
    limits: JobLimits = field(default_factory=JobLimits)
    webhook_secret: str | None = field(default=None, repr=False)
    webhook_policy: WebhookRetries = field(default_factory=WebhookRetries)
    url_hosts: tuple[str, ...] = ()
    url_max_bytes: int = 20_000_000
    max_pixels: int = DEFAULT_MAX_PIXELS
    webhook_hosts: tuple[str, ...] = ()
    #: Private address blocks that image URLs and webhooks may reach (see :mod:`visionserve.outbound`).
    outbound_networks: tuple[IPNetwork, ...] = ()
    resolver: Resolver = field(default=system_resolver, repr=False, compare=False)

    def url_policy(self) -> OutboundPolicy:
        """The policy of job image URLs (``jobs_url_hosts``)."""
        return OutboundPolicy(self.url_hosts, self.outbound_networks, self.resolver, "image URL", "jobs_url_hosts")

    def webhook_outbound(self) -> OutboundPolicy:
        """The policy of webhook URLs (``webhook_hosts``)."""
        return OutboundPolicy(self.webhook_hosts, self.outbound_networks, self.resolver, "webhook_url", "webhook_hosts")

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or sqlite_url(self.data_dir)

    @property
    def artifacts_dir(self) -> Path:
        return self.data_dir / "artifacts"


def jobs_config(settings: Settings) -> JobsConfig:
    """The jobs configuration that ``settings`` describe."""
    retention = settings.jobs_retention_hours
    redispatch = settings.jobs_redispatch_after
    return JobsConfig(
        data_dir=settings.data_dir,
        database_url=None if settings.database_url is None else settings.database_url.get_secret_value(),
        artifact_backend=settings.artifact_store,
        broker_url=None if settings.broker_url is None else settings.broker_url.get_secret_value(),
        queue=settings.jobs_queue,
        visibility_timeout_s=settings.broker_visibility_timeout,
        workers=settings.jobs_workers,
        limits=JobLimits(
            max_images=settings.jobs_max_images,
            max_image_bytes=settings.max_body_bytes,
            max_video_bytes=settings.jobs_max_video_bytes,
            max_video_frames=settings.jobs_max_video_frames,
            max_attempts=settings.jobs_max_attempts,
            retention=timedelta(hours=retention) if retention > 0 else None,
            redispatch_after=timedelta(seconds=redispatch) if redispatch > 0 else None,
            housekeeping_s=min(60.0, redispatch / 4) if redispatch > 0 else 60.0,
        ),
        webhook_secret=None if settings.webhook_secret is None else settings.webhook_secret.get_secret_value(),
        webhook_policy=WebhookRetries(attempts=settings.webhook_attempts, backoff_s=settings.webhook_backoff),
        url_hosts=settings.jobs_url_hosts,
        url_max_bytes=settings.max_body_bytes,
        max_pixels=settings.max_image_pixels,
        webhook_hosts=settings.webhook_hosts,
        outbound_networks=parse_networks(settings.outbound_allow_networks),
    )
