"""The behaviour every JobStore and ArtifactStore must have, as test classes to subclass.

A subclass provides the ``storage`` fixture (a :class:`visionserve.jobs.factory.Storage`);
``tests/unit`` runs the contract on SQLite, ``tests/services`` on PostgreSQL.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from visionserve.core.masks import MaskPatch
from visionserve.errors import JobNotFoundError, JobStateError, StorageError
from visionserve.jobs.factory import Storage
from visionserve.jobs.model import (
    Claim,
    ClaimRefusal,
    ClassRecord,
    DetectionRecord,
    ItemOutput,
    ItemState,
    ItemTimings,
    JobInput,
    JobOptions,
    JobQuery,
    JobState,
    MaskRle,
    WebhookState,
    crop_key,
    input_key,
    job_prefix,
    new_job_id,
)
from visionserve.models.spec import Task
from visionserve.render.mask_encoding import rle

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def output(n: int = 2) -> ItemOutput:
    found = tuple(DetectionRecord(k % 2, f"label{k % 2}", 0.9 - k / 10, (k, k, k + 10.0, k + 20.0)) for k in range(n))
    return ItemOutput(64, 48, found, ItemTimings(1.0, 2.0, 3.0, 6.5))


def make_job(storage: Storage, items: int = 3, model: str = "m", webhook: str | None = None, at: datetime = T0) -> str:
    job_id = new_job_id()
    inputs = [JobInput(f"img{i}.png", data=b"x") for i in range(items)]
    storage.store.create(job_id, model, JobOptions(conf=0.5, classes=(0,)), inputs, webhook, at)
    return job_id


def claim(storage: Storage, job_id: str, index: int, max_attempts: int = 3) -> Claim:
    result = storage.store.claim(job_id, index, "w", max_attempts, T0)
    assert isinstance(result, Claim), result
    return result


def task_output() -> ItemOutput:
    """A segment detection with its mask and a pose detection with keypoints (one item of each
    would never mix, but the store does not care), and no classes."""
    mask = MaskRle.from_coco(rle(MaskPatch(3, 4, np.ones((10, 20), np.bool_)), 48, 64))
    points = ((10.5, 20.25, 0.9), (0.0, 0.0, 0.0))
    found = (
        DetectionRecord(0, "dent", 0.9, (1.0, 2.0, 30.0, 40.0), mask=mask),
        DetectionRecord(1, "person", 0.8, (5.0, 6.0, 7.0, 8.0), keypoints=points),
        DetectionRecord(2, "plain", 0.7, (0.0, 0.0, 1.0, 1.0)),
    )
    return ItemOutput(64, 48, found, ItemTimings(1.0, 2.0, 3.0, 6.5))


def class_output() -> ItemOutput:
    ranked = (ClassRecord(1, "dog", 0.6), ClassRecord(3, "fish", 0.25), ClassRecord(0, "cat", 0.1))
    return ItemOutput(64, 48, (), ItemTimings(1.0, 2.0, 3.0, 6.5), classes=ranked)


class StoreContract:
    def test_masks_keypoints_and_classes_round_trip(self, storage: Storage) -> None:
        store = storage.store
        boxes = make_job(storage, 1)
        assert store.get(boxes).task is Task.DETECT
        assert store.commit(claim(storage, boxes, 0), task_output(), "w", T0)
        assert store.detections(boxes) == {0: list(task_output().detections)}
        assert store.classes(boxes) == {}
        job_id = new_job_id()
        inputs = [JobInput(f"img{i}.png", data=b"x") for i in range(2)]
        store.create(job_id, "cls", JobOptions(top_k=3), inputs, None, T0, Task.CLASSIFY)
        job = store.get(job_id)
        assert (job.task, job.options.top_k) == (Task.CLASSIFY, 3)
        assert store.commit(claim(storage, job_id, 0), class_output(), "w", T0)
        assert store.commit(claim(storage, job_id, 1), class_output(), "w", T0)
        ranked = list(class_output().classes)
        assert store.classes(job_id) == {0: ranked, 1: ranked}
        assert store.classes(job_id, [1]) == {1: ranked}
        assert store.detections(job_id) == {} and store.item(job_id, 0).detection_count == 0
        assert store.claim(job_id, 0, "w", 3, T0) is ClaimRefusal.FINISHED
        store.delete(job_id)
        assert store.classes(job_id) == {}

    def test_create_get_and_list(self, storage: Storage) -> None:
        store = storage.store
        first = make_job(storage, 2, model="a", at=T0)
        second = make_job(storage, 1, model="b", at=T0 + timedelta(seconds=1))
        third = make_job(storage, 1, model="a", at=T0 + timedelta(seconds=2))
        job = store.get(first)
        assert (job.state, job.model, job.progress.total, job.progress.pending) == (JobState.QUEUED, "a", 2, 2)
        assert job.options == JobOptions(conf=0.5, classes=(0,))
        assert job.created_at == T0
        page = store.list_jobs(JobQuery(limit=2))
        assert [j.id for j in page.jobs] == [third, second] and page.total == 3
        assert [j.id for j in store.list_jobs(JobQuery(limit=2, offset=2)).jobs] == [first]
        assert [j.id for j in store.list_jobs(JobQuery(model="a")).jobs] == [third, first]
        assert store.list_jobs(JobQuery(state=JobState.RUNNING)).total == 0
        assert [i.source for i in store.items(first)] == ["img0.png", "img1.png"]
        with pytest.raises(JobNotFoundError):
            store.get(new_job_id())
        with pytest.raises(JobNotFoundError):
            store.item(first, 5)

    def test_a_claimed_item_is_committed_once(self, storage: Storage) -> None:
        store = storage.store
        job_id = make_job(storage, 2)
        first = claim(storage, job_id, 0)
        assert (first.attempt, first.model, first.options.conf) == (1, "m", 0.5)
        assert store.get(job_id).state is JobState.RUNNING
        assert store.commit(first, output(3), "w", T0)
        assert not store.commit(first, output(3), "w", T0)
        assert store.claim(job_id, 0, "w", 3, T0) is ClaimRefusal.FINISHED
        item = store.item(job_id, 0)
        assert (item.state, item.detection_count, item.width, item.attempts) == (ItemState.DONE, 3, 64, 1)
        assert item.timings == ItemTimings(1.0, 2.0, 3.0, 6.5)
        assert [d.box for d in store.detections(job_id)[0]] == [d.box for d in output(3).detections]
        assert store.finish_if_complete(job_id, T0) is None  # item 1 is still pending
        assert store.commit(claim(storage, job_id, 1), output(0), "w", T0)
        ended = store.finish_if_complete(job_id, T0 + timedelta(seconds=5))
        assert ended is not None and ended.state is JobState.SUCCEEDED and ended.progress.done == 2
        assert ended.finished_at == T0 + timedelta(seconds=5)
        assert store.finish_if_complete(job_id, T0) is None  # only one caller ends a job

    def test_a_redelivered_item_is_reclaimed_and_only_the_latest_claim_commits(self, storage: Storage) -> None:
        store = storage.store
        job_id = make_job(storage, 1)
        lost = claim(storage, job_id, 0)
        again = claim(storage, job_id, 0)
        assert again.attempt == lost.attempt + 1
        assert not store.commit(lost, output(1), "lost", T0)
        assert not store.fail_item(lost, "late", T0)
        assert store.commit(again, output(2), "w", T0)
        assert store.item(job_id, 0).attempts == 2
        assert len(store.detections(job_id)[0]) == 2

    def test_an_item_lost_too_often_fails(self, storage: Storage) -> None:
        store = storage.store
        job_id = make_job(storage, 1)
        claim(storage, job_id, 0, max_attempts=2)
        claim(storage, job_id, 0, max_attempts=2)
        assert store.claim(job_id, 0, "w", 2, T0) is ClaimRefusal.EXHAUSTED
        item = store.item(job_id, 0)
        assert item.state is ItemState.FAILED and "lost with its worker 2 times" in (item.error or "")
        ended = store.finish_if_complete(job_id, T0)
        assert ended is not None and ended.state is JobState.FAILED and ended.error == "every item failed"

    def test_some_failed_items_still_succeed_the_job(self, storage: Storage) -> None:
        store = storage.store
        job_id = make_job(storage, 2)
        assert store.fail_item(claim(storage, job_id, 0), "cannot decode image", T0)
        assert store.commit(claim(storage, job_id, 1), output(), "w", T0)
        ended = store.finish_if_complete(job_id, T0)
        assert ended is not None and ended.state is JobState.SUCCEEDED
        assert (ended.progress.done, ended.progress.failed) == (1, 1)
        assert store.item(job_id, 0).error == "cannot decode image"
        assert [item.index for item in store.items(job_id, state=ItemState.FAILED)] == [0]
        assert [item.index for item in store.items(job_id, offset=1, limit=5)] == [1]

    def test_cancel_stops_unfinished_items(self, storage: Storage) -> None:
        store = storage.store
        job_id = make_job(storage, 3, webhook="http://hook/x")
        assert store.commit(claim(storage, job_id, 0), output(), "w", T0)
        running = claim(storage, job_id, 1)
        job = store.cancel(job_id, T0)
        assert job.state is JobState.CANCELLED and job.webhook_state is WebhookState.PENDING
        assert (job.progress.done, job.progress.cancelled) == (1, 2)
        assert not store.commit(running, output(), "w", T0)
        assert store.claim(job_id, 2, "w", 3, T0) is ClaimRefusal.JOB_ENDED
        with pytest.raises(JobStateError, match="cancelled to cancelled"):
            store.cancel(job_id, T0)
        assert store.pending_webhooks() == [job_id]
        store.set_webhook(job_id, WebhookState.DELIVERED, 1)
        assert store.pending_webhooks() == []

    def test_fail_job(self, storage: Storage) -> None:
        store = storage.store
        job_id = make_job(storage, 2)
        claim(storage, job_id, 0)
        job = store.fail_job(job_id, "cannot load model", T0)
        assert job is not None and job.state is JobState.FAILED and job.error == "cannot load model"
        assert job.progress.cancelled == 2
        assert store.fail_job(job_id, "again", T0) is None
        assert store.claim(new_job_id(), 0, "w", 3, T0) is ClaimRefusal.JOB_ENDED

    def test_unfinished_dispatch_backlog_and_throughput(self, storage: Storage) -> None:
        store = storage.store
        old = make_job(storage, 3, at=T0)
        new = make_job(storage, 1, at=T0 + timedelta(minutes=5))
        assert store.commit(claim(storage, old, 0), output(), "w", T0 + timedelta(seconds=30))
        claim(storage, old, 1)
        assert store.unfinished() == [(old, [1, 2]), (new, [0])]
        assert store.backlog() == {ItemState.PENDING: 2, ItemState.RUNNING: 1}
        assert store.finished_since(T0) == 1
        assert store.finished_since(T0 + timedelta(minutes=1)) == 0
        # `old` is running but was never marked dispatched: a dispatch that failed partway
        assert store.undispatched(T0 + timedelta(minutes=10)) == [old, new]
        assert store.undispatched(T0 + timedelta(minutes=1)) == [old]
        assert store.undispatched(T0) == []
        store.mark_dispatched(new, T0)
        store.mark_dispatched(old, T0)
        assert store.undispatched(T0 + timedelta(minutes=10)) == []

    def test_expired_and_delete(self, storage: Storage) -> None:
        store = storage.store
        done = make_job(storage, 1)
        assert store.commit(claim(storage, done, 0), output(), "w", T0)
        assert store.finish_if_complete(done, T0) is not None
        queued = make_job(storage, 1)
        assert store.expired(T0 + timedelta(seconds=1)) == [done]
        assert store.expired(T0) == []
        store.delete(done)
        store.delete(done)
        with pytest.raises(JobNotFoundError):
            store.get(done)
        assert store.detections(done) == {}
        assert store.get(queued).state is JobState.QUEUED

    def test_concurrent_deliveries_commit_each_item_once(self, storage: Storage) -> None:
        store = storage.store
        job_id = make_job(storage, 12)
        commits: list[int] = []
        lock = threading.Lock()

        def deliver_all() -> None:
            for index in range(12):
                result = store.claim(job_id, index, threading.current_thread().name, 100, T0)
                if isinstance(result, Claim) and store.commit(result, output(2), "w", T0):
                    with lock:
                        commits.append(index)

        threads = [threading.Thread(target=deliver_all) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(commits) == list(range(12))
        assert all(item.state is ItemState.DONE for item in store.items(job_id))
        assert {index: len(found) for index, found in store.detections(job_id).items()} == dict.fromkeys(range(12), 2)


class ArtifactContract:
    def test_put_get_replace_and_delete(self, storage: Storage) -> None:
        artifacts = storage.artifacts
        job_id = new_job_id()
        artifacts.put(input_key(job_id, 0), b"first")
        artifacts.put(input_key(job_id, 0), b"second")
        artifacts.put(crop_key(job_id, 0, 1), b"\xff\xd8crop")
        assert artifacts.get(input_key(job_id, 0)) == b"second"
        assert artifacts.get(crop_key(job_id, 0, 1)) == b"\xff\xd8crop"
        other = new_job_id()
        artifacts.put(input_key(other, 0), b"kept")
        artifacts.delete_prefix(job_prefix(job_id))
        artifacts.delete_prefix(job_prefix(job_id))
        with pytest.raises(JobNotFoundError):
            artifacts.get(input_key(job_id, 0))
        assert artifacts.get(input_key(other, 0)) == b"kept"

    @pytest.mark.parametrize("key", ["../x", "jobs/../../etc/passwd", "/abs", "Jobs/UPPER", "jobs//x", "a/b c"])
    def test_bad_keys_are_refused(self, storage: Storage, key: str) -> None:
        with pytest.raises(StorageError, match="invalid artifact key"):
            storage.artifacts.put(key, b"x")
