"""Re-dispatch of stalled items (issue 11): a broker restart without persistence loses the queued
messages, and the items would stay pending for ever. The service sends them again when nothing has
progressed for ``redispatch_after`` and the broker's queue is empty; a late result of the first
delivery is ignored. Driven with an injected clock and a recording runner (no broker)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from tests.jobs_store_contract import T0, output
from tests.jobs_support import PLUGIN_MODEL, numbered_image, wait_for, write_plugin_model

from visionserve.jobs.config import JobsConfig
from visionserve.jobs.factory import Storage, open_storage
from visionserve.jobs.model import Claim, ItemState, JobInput, NewJob
from visionserve.jobs.service import JobLimits, JobService
from visionserve.models.repository import ModelRepository

DEADLINE = timedelta(minutes=10)


@dataclass
class Broker:
    """A durable runner that records what it is sent; ``depth`` is what it says its queue holds."""

    depth: int | None = 0
    submitted: list[tuple[str, list[int]]] = field(default_factory=list)
    name: str = "broker"
    durable: bool = True

    def start(self) -> None: ...

    def submit(self, job_id: str, indices: Sequence[int]) -> None:
        self.submitted.append((job_id, list(indices)))

    def notify(self, job_id: str) -> None: ...

    def queue_depth(self) -> int | None:
        return self.depth

    def stop(self) -> None: ...


@dataclass
class Setup:
    storage: Storage
    broker: Broker
    service: JobService
    now: list[datetime]

    def at(self, delay: timedelta) -> datetime:
        self.now[0] = T0 + delay
        return self.now[0]

    def claim(self, job_id: str, index: int, worker: str, delay: timedelta) -> Claim:
        claimed = self.storage.store.claim(job_id, index, worker, 3, T0 + delay)
        assert isinstance(claimed, Claim), claimed
        return claimed


def make(tmp_path: Path, limits: JobLimits, runner: Broker) -> tuple[Storage, JobService, list[datetime]]:
    write_plugin_model(tmp_path / "models", tmp_path / "seen.log")
    storage = open_storage(JobsConfig(data_dir=tmp_path / "data"))
    now = [T0]
    repository = ModelRepository.scan(tmp_path / "models")
    service = JobService(storage.store, storage.artifacts, repository, runner, limits, clock=lambda: now[0])
    return storage, service, now


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    broker = Broker()
    storage, service, now = make(tmp_path, JobLimits(redispatch_after=DEADLINE), broker)
    yield Setup(storage, broker, service, now)
    storage.db.close()


def submit(setup: Setup, count: int) -> str:
    inputs = [JobInput(f"{i}.png", data=numbered_image(i)) for i in range(count)]
    job_id = setup.service.submit(NewJob(PLUGIN_MODEL, inputs)).id
    setup.broker.submitted.clear()
    return job_id


def test_items_lost_with_the_broker_are_sent_again_after_the_deadline(setup: Setup) -> None:
    job_id = submit(setup, 4)
    first = setup.claim(job_id, 0, "a", timedelta(seconds=1))
    assert setup.storage.store.commit(first, output(), "a", T0 + timedelta(seconds=2))
    setup.claim(job_id, 1, "a", timedelta(seconds=3))  # then the broker restarts: items 1-3 are lost
    setup.at(timedelta(seconds=3) + DEADLINE)
    assert setup.service.redispatch_stalled() == 0  # not yet: the last claim is not older than the deadline
    assert setup.broker.submitted == []
    setup.at(timedelta(seconds=4) + DEADLINE)
    assert setup.service.redispatch_stalled() == 1
    assert setup.broker.submitted == [(job_id, [1, 2, 3])]
    assert setup.service.redispatch_stalled() == 0  # marked dispatched anew: once per deadline at most
    setup.at(timedelta(seconds=5) + 2 * DEADLINE)
    assert setup.service.redispatch_stalled() == 1  # still nothing: again


def test_a_late_result_of_the_first_delivery_is_ignored(setup: Setup) -> None:
    job_id = submit(setup, 2)
    lost = setup.claim(job_id, 0, "a", timedelta(seconds=1))  # a worker that lost its broker holds item 0
    setup.at(timedelta(seconds=2) + DEADLINE)
    assert setup.service.redispatch_stalled() == 1
    assert setup.broker.submitted == [(job_id, [0, 1])]
    again = setup.claim(job_id, 0, "b", DEADLINE + timedelta(seconds=3))
    assert setup.storage.store.commit(again, output(3), "b", T0 + DEADLINE + timedelta(seconds=4))
    assert not setup.storage.store.commit(lost, output(1), "a", T0 + DEADLINE + timedelta(seconds=5))
    item = setup.storage.store.item(job_id, 0)
    assert (item.state, item.worker, item.attempts) == (ItemState.DONE, "b", 2)
    assert len(setup.storage.store.detections(job_id)[0]) == 3  # b's detections only, once


@pytest.mark.parametrize("depth", [1, None])
def test_nothing_is_sent_while_the_broker_holds_items_or_cannot_be_asked(setup: Setup, depth: int | None) -> None:
    submit(setup, 2)
    setup.broker.depth = depth  # workers are busy, behind or gone: sending more would only duplicate
    setup.at(2 * DEADLINE)
    assert setup.service.redispatch_stalled() == 0
    assert setup.broker.submitted == []


def test_progress_on_any_job_means_nothing_is_stalled(setup: Setup) -> None:
    waiting = submit(setup, 2)
    other = submit(setup, 1)  # the workers are busy with this one (a long queue ahead of `waiting`)
    setup.claim(other, 0, "a", DEADLINE + DEADLINE / 2)
    setup.at(2 * DEADLINE)
    assert setup.service.redispatch_stalled() == 0
    setup.at(DEADLINE / 2 + 2 * DEADLINE + timedelta(seconds=1))
    assert setup.service.redispatch_stalled() == 2
    assert sorted(setup.broker.submitted) == sorted([(waiting, [0, 1]), (other, [0])])


def test_ended_jobs_are_not_sent_again(setup: Setup) -> None:
    job_id = submit(setup, 2)
    setup.service.cancel(job_id)
    setup.at(2 * DEADLINE)
    assert setup.service.redispatch_stalled() == 0


def test_it_can_be_turned_off(tmp_path: Path) -> None:
    broker = Broker()
    storage, service, now = make(tmp_path, JobLimits(redispatch_after=None), broker)
    try:
        service.submit(NewJob(PLUGIN_MODEL, [JobInput("0.png", data=numbered_image(0))]))
        now[0] = T0 + timedelta(days=1)
        assert service.redispatch_stalled() == 0
    finally:
        storage.db.close()


def test_housekeeping_re_dispatches_with_the_real_clock(tmp_path: Path) -> None:
    write_plugin_model(tmp_path / "models", tmp_path / "seen.log")
    storage = open_storage(JobsConfig(data_dir=tmp_path / "data"))
    broker = Broker()
    limits = JobLimits(redispatch_after=timedelta(seconds=0.3), housekeeping_s=0.05)
    service = JobService(storage.store, storage.artifacts, ModelRepository.scan(tmp_path / "models"), broker, limits)
    service.start()
    try:
        job = service.submit(NewJob(PLUGIN_MODEL, [JobInput("0.png", data=numbered_image(0))]))
        wait_for(lambda: len(broker.submitted) >= 2, 10, 0.05)
        assert broker.submitted[:2] == [(job.id, [0]), (job.id, [0])]
    finally:
        service.stop()


def test_the_setting_reaches_the_service_limits() -> None:
    from visionserve.jobs.config import jobs_config
    from visionserve.settings import Settings

    limits = jobs_config(Settings(jobs_redispatch_after=20)).limits
    assert (limits.redispatch_after, limits.housekeeping_s) == (timedelta(seconds=20), 5.0)
    off = jobs_config(Settings(jobs_redispatch_after=0)).limits
    assert (off.redispatch_after, off.housekeeping_s) == (None, 60.0)
