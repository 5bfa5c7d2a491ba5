"""``visionserve worker``: a Celery worker that processes job items, and ``visionserve db upgrade``.

A worker reads the same settings as the server (environment or ``--config``): it needs
``VISIONSERVE_BROKER_URL`` and the shared ``VISIONSERVE_DATABASE_URL``, and the same model repository
(``--models``). It upgrades the database schema, loads each model once per process on first use,
and takes one item at a time from the queue. Start one per GPU: ``--device auto`` picks GPU
``index % number of GPUs``.

Run workers under a supervisor that restarts them (systemd ``Restart=always``, a container restart
policy): a worker that loses its broker connection exits with a non-zero status rather than linger
without taking tasks (see :mod:`visionserve.jobs.celery_app`), and a fresh one waits for the broker.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import click

from visionserve.cli.common import models_dir_option, open_repository, reports_errors
from visionserve.errors import ConfigError
from visionserve.settings import Settings

log = logging.getLogger(__name__)

config_option = click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="VISIONSERVE_CONFIG",
    help="YAML settings file (the server's); the environment wins over it.",
)


def _pin_device(device: str) -> str:
    """Make ``cuda:N`` this process's only visible GPU, so that every runtime sees it as GPU 0;
    the device to load models on."""
    if not device.startswith("cuda:"):
        return device
    os.environ["CUDA_VISIBLE_DEVICES"] = device.split(":", 1)[1]  # before any runtime initializes CUDA
    return "cuda:0"


@click.command()
@models_dir_option
@config_option
@click.option(
    "-c",
    "--concurrency",
    type=click.IntRange(1, 256),
    default=1,
    show_default=True,
    help="Items processed at once: 1 runs in this process, more forks a pool of processes.",
)
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:N, or auto (index modulo GPUs).")
@click.option(
    "--index",
    type=click.IntRange(0),
    default=0,
    envvar="VISIONSERVE_WORKER_INDEX",
    show_envvar=True,
    help="This worker's number among its machine's workers (for --device auto).",
)
@click.option("--loglevel", type=click.Choice(["debug", "info", "warning", "error"]), default="info")
@reports_errors
def worker(
    models_dir: Path | None, config_file: Path | None, concurrency: int, device: str, index: int, loglevel: str
) -> None:
    """Process job items from the broker (VISIONSERVE_BROKER_URL) into the shared database."""
    from visionserve.jobs.celery_app import WorkerParts, create_celery_app, run_worker
    from visionserve.jobs.config import jobs_config
    from visionserve.jobs.devices import count_gpus, resolve_device
    from visionserve.jobs.factory import worker_parts_builder
    from visionserve.serving.malloc import limit_malloc_arenas
    from visionserve.storage.db import Database

    settings = Settings.load(models=models_dir, config=config_file)
    limit_malloc_arenas(settings.malloc_arena_max)
    config = jobs_config(settings)
    if not config.broker_url:
        raise ConfigError("visionserve worker needs a broker: set VISIONSERVE_BROKER_URL (redis://... or amqp://...)")
    chosen = resolve_device(device, index, count_gpus() if device == "auto" else 0)
    load_on = _pin_device(chosen)
    database = Database(config.resolved_database_url)
    database.upgrade()
    database.close()
    if database.is_sqlite:
        log.warning("jobs database is SQLite: workers on other machines need VISIONSERVE_DATABASE_URL (PostgreSQL)")
    repository = open_repository(settings.models)
    app = create_celery_app(config, WorkerParts(worker_parts_builder(config, repository, load_on)))
    click.echo(f"visionserve worker {index} on {chosen}, queue {config.queue!r}, database {database.display_url()}")
    status = run_worker(app, config.queue, concurrency, f"visionserve-{index}-{os.getpid()}", loglevel)
    if status:  # lost the broker: a supervisor starts a fresh worker (see the module docstring)
        raise SystemExit(status)


@click.group()
def db() -> None:
    """The jobs database: schema upgrades."""


@db.command("upgrade")
@config_option
@reports_errors
def upgrade(config_file: Path | None) -> None:
    """Create or upgrade the jobs database schema (the server and workers also do it on start)."""
    from visionserve.jobs.config import jobs_config
    from visionserve.storage.db import Database, head_revision

    database = Database(jobs_config(Settings.load(config=config_file)).resolved_database_url)
    before = database.revision()
    database.upgrade()
    click.echo(f"{database.display_url()}: {before or 'empty'} -> {database.revision()} (newest {head_revision()})")
    database.close()
