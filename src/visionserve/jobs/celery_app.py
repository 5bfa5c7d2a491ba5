"""Celery, as one :class:`~visionserve.jobs.runner.JobRunner`: the server sends one task per item,
``visionserve worker`` processes run them. The only module that imports Celery.

Delivery guarantees: tasks are acknowledged after they ran (``task_acks_late``) and a worker lost in
the middle of a task does not acknowledge it (``task_reject_on_worker_lost``), so the broker delivers
it again: RabbitMQ as soon as the worker's connection drops, Redis after ``visibility_timeout``
seconds. Redelivery is harmless because items are claimed and committed by compare-and-set (see
:mod:`visionserve.jobs.processing`). Prefetch is one task, so a killed worker holds at most two.

Losing the broker: a worker does not try to reconnect in-process (``broker_connection_retry`` off).
With Redis, kombu's reconnection leaves a worker alive but deaf: an acknowledgement fails ("Couldn't
ack"), or the next one after a reconnect does, and no further task is taken. So a worker exits
instead, for its supervisor to start a fresh one (which waits for the broker:
``broker_connection_retry_on_startup``): with status 1 when its consumer sees the connection drop
(Celery's own shutdown), and with :data:`EXIT_ACK_FAILED` when an acknowledgement fails, which the
consumer never notices. Tasks it held unacknowledged are delivered again by the broker; messages a
broker lost with its restart (Redis without persistence) are sent again by the server when nothing
progresses (:meth:`visionserve.jobs.service.JobService.redispatch_stalled`).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Sequence
from typing import Any

from celery import Celery, Task
from celery.worker import state as worker_state
from celery.worker.request import Request
from kombu.exceptions import OperationalError as BrokerError

from visionserve.errors import StorageError
from visionserve.jobs.config import JobsConfig
from visionserve.jobs.model import WebhookState
from visionserve.jobs.processing import ItemProcessor
from visionserve.jobs.webhooks import WebhookDispatcher

log = logging.getLogger(__name__)

PROCESS_ITEM = "visionserve.process_item"
DELIVER_WEBHOOK = "visionserve.deliver_webhook"
_STORAGE_RETRIES = 10
#: The exit status of a worker whose acknowledgement of a finished task failed (EX_TEMPFAIL: start
#: it again).
EXIT_ACK_FAILED = 75


def celery_settings(config: JobsConfig) -> dict[str, Any]:
    """The Celery configuration visionserve runs with (see the module docstring)."""
    restore_every = max(1, min(10, config.visibility_timeout_s // 4))
    return {
        "broker_url": config.broker_url,
        "broker_connection_retry_on_startup": True,
        # A connection lost after startup stops the worker (status 1) instead of an in-process
        # reconnection that leaves it alive and deaf (see the module docstring).
        "broker_connection_retry": False,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "broker_transport_options": {
            "visibility_timeout": config.visibility_timeout_s,
            "unacked_restore_interval": restore_every,
            "unacked_restore_throttle": 1,
        },
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "task_ignore_result": True,
        "task_default_queue": config.queue,
        "task_serializer": "json",
        "accept_content": ["json"],
        "worker_prefetch_multiplier": 1,
        "worker_hijack_root_logger": False,
        "worker_send_task_events": False,
        # Workers are run by a process supervisor, not steered with `celery control`: no pidbox
        # queue per worker is left behind on the broker.
        "worker_enable_remote_control": False,
    }


class _AckFailureLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """The logger kombu reports a failed acknowledgement to ("Couldn't ack", at CRITICAL): it still
    logs it, and asks Celery for a warm shutdown with :data:`EXIT_ACK_FAILED`, the way Celery's own
    signal handlers request one."""

    def critical(self, msg: object, *args: object, **kwargs: Any) -> None:
        super().critical(msg, *args, **kwargs)
        log.critical("the broker did not take an acknowledgement; stopping this worker")
        worker_state.should_stop = EXIT_ACK_FAILED


_ACK_FAILURES = _AckFailureLog(logging.getLogger("celery.worker.request"), {})


class AckCheckedRequest(Request):  # type: ignore[misc]
    """A task request that stops the worker when its acknowledgement fails.

    kombu logs a failed acknowledgement and carries on; with Redis the worker then takes no further
    task while it stays alive. The message was not acknowledged, so the broker still has it (or lost
    it with its own restart); either way a fresh worker is what helps. Celery runs the
    acknowledgement later on its event loop, so the failure is caught where kombu reports it: in
    the logger handed to ``ack_log_error``."""

    def acknowledge(self) -> None:
        if not self.acknowledged:  # type: ignore[has-type]
            self._on_ack(_ACK_FAILURES, self._connection_errors)
            self.acknowledged = True


class AckCheckedTask(Task):  # type: ignore[misc]
    Request = AckCheckedRequest


#: Builds, in the worker process, the processor (given the function that queues a webhook) and the
#: webhook dispatcher (None without a webhook secret).
PartsBuilder = Callable[[Callable[[str], None]], tuple[ItemProcessor, WebhookDispatcher | None]]


class WorkerParts:
    """What a worker process builds once, lazily, so that a prefork child builds its own after the
    fork: the processor with its models and database connections, and the webhook dispatcher."""

    def __init__(self, build: PartsBuilder) -> None:
        self._build = build
        self._pid = -1
        self._parts: tuple[ItemProcessor, WebhookDispatcher | None] | None = None

    def get(self, notify: Callable[[str], None]) -> tuple[ItemProcessor, WebhookDispatcher | None]:
        if self._parts is None or self._pid != os.getpid():
            self._parts = self._build(notify)
            self._pid = os.getpid()
        return self._parts


def create_celery_app(config: JobsConfig, parts: WorkerParts | None = None) -> Celery:
    """The Celery app. A server passes no ``parts`` (it only sends tasks); a worker passes the parts
    that process them. Tasks: ``process_item(job_id, index)`` and ``deliver_webhook(job_id)``."""
    app = Celery("visionserve", set_as_current=False)
    app.conf.update(celery_settings(config))
    policy = config.webhook_policy

    def notify(job_id: str) -> None:
        app.send_task(DELIVER_WEBHOOK, args=[job_id], queue=config.queue)

    @app.task(name=PROCESS_ITEM, base=AckCheckedTask, bind=True, shared=False, max_retries=_STORAGE_RETRIES)  # type: ignore[untyped-decorator]
    def process_item(task: Task[Any, Any], job_id: str, index: int) -> str:
        if parts is None:
            raise StorageError("this Celery app only sends tasks; run `visionserve worker`")
        try:
            return parts.get(notify)[0].process(job_id, index).value
        except StorageError as exc:
            log.warning("item %s/%d: %s; retrying", job_id, index, exc)
            raise task.retry(exc=exc, countdown=min(2**task.request.retries, 60)) from exc

    @app.task(name=DELIVER_WEBHOOK, base=AckCheckedTask, bind=True, shared=False, max_retries=None)  # type: ignore[untyped-decorator]
    def deliver_webhook(task: Task[Any, Any], job_id: str) -> str | None:
        dispatcher = None if parts is None else parts.get(notify)[1]
        if dispatcher is None:
            log.warning("webhook of job %s not sent: this worker has no VISIONSERVE_WEBHOOK_SECRET", job_id)
            return None
        delivery = dispatcher.attempt(job_id)
        if delivery is not None and delivery.state is WebhookState.PENDING:
            raise task.retry(countdown=policy.delay(delivery.attempts))
        return None if delivery is None else delivery.state.value

    return app


def run_worker(app: Celery, queue: str, concurrency: int, name: str, loglevel: str) -> int:
    """Run a worker of ``app`` on ``queue`` until it stops; its exit status (0 after a requested
    stop, non-zero when it lost the broker: see the module docstring). ``concurrency`` 1 runs items
    in this process, more in a pool of forked processes."""
    worker = app.Worker(
        hostname=f"{name}@{socket.gethostname()}",
        pool_cls="solo" if concurrency == 1 else "prefork",
        concurrency=concurrency,
        queues=[queue],
        loglevel=loglevel.upper(),
        without_gossip=True,
        without_mingle=True,
    )
    worker.start()
    return int(worker.exitcode or 0)


class CeleryRunner:
    """Sends items to the broker; ``visionserve worker`` processes do the rest."""

    def __init__(self, app: Celery, queue: str) -> None:
        self._app = app
        self._queue = queue

    @property
    def name(self) -> str:
        return "celery"

    @property
    def durable(self) -> bool:
        return True

    def start(self) -> None:
        """Nothing to start: workers are separate processes."""

    def submit(self, job_id: str, indices: Sequence[int]) -> None:
        """Publish one task per item over one connection. Raises :class:`StorageError` if the broker
        cannot be reached (the job stays stored and is dispatched again when the server restarts)."""
        try:
            with self._app.producer_or_acquire() as producer:
                for index in indices:
                    self._app.send_task(PROCESS_ITEM, args=[job_id, index], queue=self._queue, producer=producer)
        except BrokerError as exc:
            raise StorageError(f"cannot reach the broker: {exc}") from exc

    def notify(self, job_id: str) -> None:
        try:
            self._app.send_task(DELIVER_WEBHOOK, args=[job_id], queue=self._queue)
        except BrokerError as exc:
            log.warning("webhook of job %s not queued: cannot reach the broker: %s", job_id, exc)

    def queue_depth(self) -> int | None:
        """Messages waiting in the queue as the broker counts them: 0 when the queue does not exist
        (Redis drops empty lists), None when the broker cannot be asked."""
        try:
            with self._app.connection_for_read() as connection:
                connection.ensure_connection(max_retries=1, timeout=2)
                try:
                    declared = connection.default_channel.queue_declare(self._queue, passive=True)
                except connection.channel_errors:
                    return 0
        except Exception:  # an unreachable broker: no number, and no failure of the caller either
            log.debug("queue depth of %s unknown", self._queue, exc_info=True)
            return None
        return int(declared.message_count)

    def stop(self) -> None:
        self._app.close()
