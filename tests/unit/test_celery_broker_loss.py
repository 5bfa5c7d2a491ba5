"""A worker that loses its broker stops instead of lingering (issue 11). In-process, no broker: the
task's request class is given a message whose acknowledgement fails as it does when Redis went away
(kombu logs "Couldn't ack" and swallows the error), and must ask Celery for a warm shutdown with
:data:`EXIT_ACK_FAILED`; a connection loss the consumer sees stops it too (no in-process retry)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from celery.worker import state as worker_state
from kombu.message import Message

from visionserve.jobs.celery_app import (
    DELIVER_WEBHOOK,
    EXIT_ACK_FAILED,
    PROCESS_ITEM,
    AckCheckedRequest,
    celery_settings,
    create_celery_app,
)
from visionserve.jobs.config import JobsConfig


class Channel:
    """What a kombu message acknowledges through; ``gone`` raises as a dropped Redis connection does."""

    no_ack_consumers = None

    def __init__(self, gone: bool) -> None:
        self.gone = gone
        self.acked: list[int] = []

    def basic_ack(self, delivery_tag: int, multiple: bool = False) -> None:
        if self.gone:
            raise ConnectionError("Connection closed by server.")
        self.acked.append(delivery_tag)


@pytest.fixture(autouse=True)
def no_stop_left_behind() -> Iterator[None]:
    yield
    worker_state.should_stop = None


def delivered(name: str, channel: Channel, later: list[Callable[[], None]] | None = None) -> AckCheckedRequest:
    """A request of task ``name`` over ``channel``; with ``later``, its acknowledgement is queued
    there and runs when the test says (as Celery runs it on its event loop)."""
    app = create_celery_app(JobsConfig(broker_url="memory://"))
    task = app.tasks[name]
    assert task.Request is AckCheckedRequest
    sent = app.amqp.as_task_v2("task-1", name, args=["job", 0])
    message = Message(
        body=json.dumps(sent.body),
        channel=channel,
        delivery_tag=7,
        content_type="application/json",
        content_encoding="utf-8",
        headers=sent.headers,
        delivery_info={},
    )

    def on_ack(*args: Any) -> None:
        if later is None:
            message.ack_log_error(*args)
        else:
            later.append(lambda: message.ack_log_error(*args))

    return AckCheckedRequest(message, on_ack=on_ack, app=app, task=task, connection_errors=(ConnectionError,))


@pytest.mark.parametrize("name", [PROCESS_ITEM, DELIVER_WEBHOOK])
def test_a_failed_acknowledgement_stops_the_worker_with_its_status(name: str) -> None:
    delivered(name, Channel(gone=True)).acknowledge()
    assert worker_state.should_stop == EXIT_ACK_FAILED != 0


def test_an_acknowledgement_that_fails_later_on_the_event_loop_stops_the_worker_then() -> None:
    later: list[Callable[[], None]] = []
    delivered(PROCESS_ITEM, Channel(gone=True), later).acknowledge()
    assert worker_state.should_stop is None and len(later) == 1
    later[0]()
    assert worker_state.should_stop == EXIT_ACK_FAILED


def test_an_acknowledgement_that_goes_through_changes_nothing() -> None:
    channel, later = Channel(gone=False), []
    delivered(PROCESS_ITEM, channel, later).acknowledge()
    later[0]()
    assert channel.acked == [7]
    assert worker_state.should_stop is None


def test_a_lost_connection_is_not_retried_in_process_but_on_startup() -> None:
    settings = celery_settings(JobsConfig(broker_url="redis://x"))
    assert settings["broker_connection_retry"] is False
    assert settings["broker_connection_retry_on_startup"] is True
    assert settings["worker_cancel_long_running_tasks_on_connection_loss"] is True
