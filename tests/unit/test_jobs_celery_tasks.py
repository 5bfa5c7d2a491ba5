"""The Celery tasks run in-process (no broker): the same processor and store as the embedded pool."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.jobs_support import LOOPBACK, PLUGIN_MODEL, Receiver, Recorder, numbered_image, processed, write_plugin_model

from visionserve.jobs.celery_app import DELIVER_WEBHOOK, PROCESS_ITEM, WorkerParts, celery_settings, create_celery_app
from visionserve.jobs.config import JobsConfig
from visionserve.jobs.factory import Storage, make_processor, open_storage
from visionserve.jobs.model import Job, JobInput, JobState, NewJob, WebhookState
from visionserve.jobs.processing import ItemProcessor
from visionserve.jobs.service import JobService
from visionserve.jobs.webhooks import WebhookDispatcher, verify
from visionserve.models.repository import ModelRepository

SECRET = "k"


@dataclass
class Parts:
    config: JobsConfig
    storage: Storage
    service: JobService
    log: Path
    built: list[int]


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[Parts]:
    log = tmp_path / "seen.log"
    write_plugin_model(tmp_path / "models", log)
    config = JobsConfig(
        data_dir=tmp_path / "data",
        broker_url="memory://",
        webhook_secret=SECRET,
        webhook_hosts=("127.0.0.1",),
        outbound_networks=LOOPBACK,
    )
    storage = open_storage(config)
    repository = ModelRepository.scan(tmp_path / "models")
    service = JobService(storage.store, storage.artifacts, repository, Recorder(), webhooks=config.webhook_outbound())
    made = Parts(config, storage, service, log, [])
    yield made
    storage.db.close()


def worker_app(parts: Parts) -> Any:
    repository = ModelRepository.scan(parts.log.parent / "models")

    def build(notify: Callable[[str], None]) -> tuple[ItemProcessor, WebhookDispatcher]:
        parts.built.append(1)

        def on_ended(job: Job) -> None:
            notify(job.id)

        processor = make_processor(parts.config, parts.storage, repository, "test-worker", on_ended)
        return processor, WebhookDispatcher(parts.storage.store, SECRET, parts.config.webhook_outbound())

    return create_celery_app(parts.config, WorkerParts(build))


def test_the_settings_make_delivery_at_least_once() -> None:
    settings = celery_settings(JobsConfig(broker_url="redis://x", visibility_timeout_s=20, queue="q"))
    assert settings["task_acks_late"] and settings["task_reject_on_worker_lost"]
    assert settings["worker_prefetch_multiplier"] == 1
    assert settings["task_default_queue"] == "q"
    assert settings["broker_transport_options"] == {
        "visibility_timeout": 20,
        "unacked_restore_interval": 5,
        "unacked_restore_throttle": 1,
    }


def test_process_item_tasks_process_each_item_once(parts: Parts) -> None:
    app = worker_app(parts)
    job = parts.service.submit(NewJob(PLUGIN_MODEL, [JobInput(f"{i}", data=numbered_image(i)) for i in range(3)]))
    task = app.tasks[PROCESS_ITEM]
    outcomes = [task.apply(args=[job.id, index]).get() for index in (0, 1, 2, 1)]
    assert outcomes == ["done", "done", "done", "skipped"]
    assert parts.built == [1]  # one processor (and model) per process
    assert parts.service.get(job.id).state is JobState.SUCCEEDED
    assert processed(parts.log) == {0: 1, 1: 1, 2: 1}


def test_the_webhook_task_delivers_and_records(parts: Parts) -> None:
    app = worker_app(parts)
    with Receiver() as receiver:
        inputs = [JobInput("0", data=numbered_image(0))]
        job = parts.service.submit(NewJob(PLUGIN_MODEL, inputs, webhook_url=receiver.url))
        parts.service.cancel(job.id)
        result = app.tasks[DELIVER_WEBHOOK].apply(args=[job.id]).get()
    assert result == "delivered"
    assert parts.service.get(job.id).webhook_state is WebhookState.DELIVERED
    [request] = receiver.received
    assert verify(request.body, SECRET, request.headers["X-VisionServe-Signature"])
    assert json.loads(request.body)["job"]["state"] == "cancelled"
