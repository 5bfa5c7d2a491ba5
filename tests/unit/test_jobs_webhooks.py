"""Signed webhooks with retries, against a small HTTP server started by the test."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.jobs_store_contract import T0, claim, make_job, output
from tests.jobs_support import (
    LOOPBACK,
    PLUGIN_MODEL,
    Receiver,
    loopback_policy,
    numbered_image,
    wait_for,
    write_plugin_model,
)

from visionserve.jobs.config import JobsConfig
from visionserve.jobs.factory import Storage, build_service, open_storage
from visionserve.jobs.model import JobInput, JobState, NewJob, WebhookState
from visionserve.jobs.webhooks import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    WebhookDispatcher,
    WebhookRetries,
    sign,
    verify,
)
from visionserve.models.repository import ModelRepository

SECRET = "s3cret"


def test_signature_is_hmac_sha256_of_the_body() -> None:
    # RFC 4231, test case 1
    key = "\x0b" * 20
    assert sign(b"Hi There", key) == "sha256=b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
    assert verify(b"Hi There", key, sign(b"Hi There", key))
    assert not verify(b"Hi there", key, sign(b"Hi There", key))
    assert not verify(b"Hi There", "other", sign(b"Hi There", key))
    assert not verify(b"Hi There", key, None)


def test_backoff_doubles_up_to_the_cap() -> None:
    policy = WebhookRetries(attempts=8, backoff_s=0.5, factor=2.0, max_backoff_s=3.0)
    assert [policy.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[Storage]:
    opened = open_storage(JobsConfig(data_dir=tmp_path))
    yield opened
    opened.db.close()


def ended_job(storage: Storage, url: str) -> str:
    job_id = make_job(storage, 1, webhook=url)
    assert storage.store.commit(claim(storage, job_id, 0), output(), "w", T0)
    assert storage.store.finish_if_complete(job_id, T0) is not None
    return job_id


def test_a_failing_receiver_is_retried_with_backoff_until_it_accepts(storage: Storage) -> None:
    waits: list[float] = []
    with Receiver(statuses=[500, 503]) as receiver:
        job_id = ended_job(storage, f"{receiver.url}/hooks/jobs")
        dispatcher = WebhookDispatcher(
            storage.store, SECRET, loopback_policy(), WebhookRetries(attempts=5, backoff_s=1.0)
        )
        delivery = dispatcher.run(job_id, lambda seconds: waits.append(seconds) is not None)
        dispatcher.close()
    assert delivery is not None and (delivery.state, delivery.attempts) == (WebhookState.DELIVERED, 3)
    assert waits == [1.0, 2.0]
    assert [r.path for r in receiver.received] == ["/hooks/jobs"] * 3
    assert len({r.body for r in receiver.received}) == 1
    for request in receiver.received:
        assert verify(request.body, SECRET, request.headers[SIGNATURE_HEADER])
        assert request.headers[EVENT_HEADER] == "job.ended" and request.headers[DELIVERY_HEADER] == job_id
    document = json.loads(receiver.received[0].body)
    assert document["job"]["id"] == job_id and document["job"]["state"] == "succeeded"
    job = storage.store.get(job_id)
    assert (job.webhook_state, job.webhook_attempts) == (WebhookState.DELIVERED, 3)
    assert dispatcher.attempt(job_id) is None  # settled: nothing more to send


@pytest.mark.parametrize(("statuses", "attempts"), [([400], 1), ([500, 500, 500, 500], 3)])
def test_rejections_and_spent_attempts_fail_the_webhook(storage: Storage, statuses: list[int], attempts: int) -> None:
    with Receiver(statuses=statuses) as receiver:
        job_id = ended_job(storage, receiver.url)
        dispatcher = WebhookDispatcher(storage.store, SECRET, loopback_policy(), WebhookRetries(attempts=3))
        delivery = dispatcher.run(job_id, lambda seconds: False)
        dispatcher.close()
    assert delivery is not None and (delivery.state, delivery.attempts) == (WebhookState.FAILED, attempts)
    assert len(receiver.received) == attempts
    assert storage.store.pending_webhooks() == []


def test_an_unreachable_receiver_is_retried_then_given_up(storage: Storage) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    job_id = ended_job(storage, f"http://127.0.0.1:{port}/hook")
    dispatcher = WebhookDispatcher(storage.store, SECRET, loopback_policy(), WebhookRetries(attempts=2, timeout_s=2))
    delivery = dispatcher.run(job_id, lambda seconds: False)
    dispatcher.close()
    assert delivery is not None and delivery.state is WebhookState.FAILED and "ConnectError" in delivery.detail


def test_a_delivery_stopped_while_waiting_resumes_where_it_stopped(storage: Storage) -> None:
    with Receiver(statuses=[500]) as receiver:
        job_id = ended_job(storage, receiver.url)
        first = WebhookDispatcher(storage.store, SECRET, loopback_policy())
        stopped = first.run(job_id, lambda seconds: True)
        first.close()
        assert stopped is not None and (stopped.state, stopped.attempts) == (WebhookState.PENDING, 1)
        assert storage.store.pending_webhooks() == [job_id]
        second = WebhookDispatcher(storage.store, SECRET, loopback_policy())
        resumed = second.run(job_id, lambda seconds: False)
        second.close()
    assert resumed is not None and (resumed.state, resumed.attempts) == (WebhookState.DELIVERED, 2)


@pytest.mark.parametrize("cancel", [False, True], ids=["ended", "cancelled"])
def test_jobs_of_the_embedded_pool_send_their_webhooks(tmp_path: Path, cancel: bool) -> None:
    write_plugin_model(tmp_path / "models", tmp_path / "seen.log", delay_s=0.05 if cancel else 0.0)
    config = JobsConfig(
        data_dir=tmp_path / "data",
        webhook_secret=SECRET,
        webhook_policy=WebhookRetries(backoff_s=0.01),
        webhook_hosts=("127.0.0.1",),
        outbound_networks=LOOPBACK,
    )
    service = build_service(config, ModelRepository.scan(tmp_path / "models"))
    service.start()
    inputs = [JobInput(f"{i}.png", data=numbered_image(i)) for i in range(20 if cancel else 2)]
    try:
        with Receiver(statuses=[502]) as receiver:
            job = service.submit(NewJob(PLUGIN_MODEL, inputs, webhook_url=f"{receiver.url}/done"))
            if cancel:
                service.cancel(job.id)
            wait_for(lambda: service.get(job.id).webhook_state is WebhookState.DELIVERED)
    finally:
        service.stop()
    assert [r.path for r in receiver.received] == ["/done", "/done"]
    body = receiver.received[-1].body
    assert verify(body, SECRET, receiver.received[-1].headers[SIGNATURE_HEADER])
    summary = json.loads(body)["job"]
    expected = JobState.CANCELLED if cancel else JobState.SUCCEEDED
    assert (summary["id"], summary["state"], summary["progress"]["total"]) == (job.id, expected.value, len(inputs))
    assert service.get(job.id).webhook_attempts == 2
