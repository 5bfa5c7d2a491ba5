"""The job service with the embedded runner on SQLite, driven by a plugin model that logs what it sees."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
from tests.jobs_store_contract import output
from tests.jobs_support import (
    BASE_WIDTH,
    LOOPBACK,
    PLUGIN_MODEL,
    Receiver,
    Recorder,
    numbered_image,
    processed,
    wait_for,
    write_plugin_model,
)

from visionserve.errors import (
    ImageTooLargeError,
    InvalidParameterError,
    JobNotFoundError,
    JobStateError,
    ModelNotFoundError,
)
from visionserve.jobs.config import JobsConfig
from visionserve.jobs.factory import build_service, open_storage
from visionserve.jobs.model import Claim, ItemState, JobInput, JobOptions, JobQuery, JobState, NewJob, input_key
from visionserve.jobs.service import JobLimits, JobService
from visionserve.models.repository import ModelRepository


@dataclass
class Setup:
    root: Path
    log: Path
    repository: ModelRepository
    config: JobsConfig
    services: list[JobService] = field(default_factory=list)

    def service(self, **changes: object) -> JobService:
        service = build_service(dataclasses.replace(self.config, **changes), self.repository)  # type: ignore[arg-type]
        service.start()
        self.services.append(service)
        return service


def make_setup(tmp_path: Path, delay_s: float = 0.0) -> Setup:
    log = tmp_path / "seen.log"
    write_plugin_model(tmp_path / "models", log, delay_s)
    config = JobsConfig(data_dir=tmp_path / "data", workers=2, url_hosts=("127.0.0.1",), outbound_networks=LOOPBACK)
    return Setup(tmp_path, log, ModelRepository.scan(tmp_path / "models"), config)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    made = make_setup(tmp_path)
    yield made
    for service in made.services:
        service.stop()


@pytest.fixture
def slow(tmp_path: Path) -> Iterator[Setup]:
    made = make_setup(tmp_path, delay_s=0.03)
    yield made
    for service in made.services:
        service.stop()


def numbered(count: int, start: int = 0) -> list[JobInput]:
    return [JobInput(f"photo-{i}.png", data=numbered_image(i)) for i in range(start, start + count)]


def ended(service: JobService, job_id: str, timeout_s: float = 30.0) -> None:
    wait_for(lambda: service.get(job_id).state.terminal, timeout_s)


def test_a_job_runs_to_completion_with_results_and_artifacts(setup: Setup) -> None:
    service = setup.service()
    job = service.submit(NewJob(PLUGIN_MODEL, numbered(5), JobOptions(crops=True, annotate=True)))
    assert job.state is JobState.QUEUED and job.progress.total == 5
    ended(service, job.id)
    job = service.get(job.id)
    assert job.state is JobState.SUCCEEDED and job.progress.done == 5
    assert job.started_at is not None and job.finished_at is not None and job.started_at <= job.finished_at
    assert processed(setup.log) == dict.fromkeys(range(5), 1)
    results = service.results(job.id)
    assert results["job"]["state"] == "succeeded"
    for index, item in enumerate(results["items"]):
        width = BASE_WIDTH + index
        assert (item["index"], item["source"], item["state"], item["width"], item["height"]) == (
            index,
            f"photo-{index}.png",
            "done",
            width,
            32,
        )
        assert [(d["label"], d["score"]) for d in item["detections"]] == [("widget", 0.9), ("gadget", 0.6)]
        assert item["detections"][0]["box"] == {"x1": width / 4, "y1": 8.0, "x2": 3 * width / 4, "y2": 24.0}
        assert item["crops"] == [f"/v1/jobs/{job.id}/items/{index}/crops/{k}" for k in range(2)]
        crop = cv2.imdecode(np.frombuffer(service.crop(job.id, index, 0), np.uint8), cv2.IMREAD_COLOR)
        assert crop.shape[:2] == (16, round(3 * width / 4) - int(width / 4))
        annotated = cv2.imdecode(np.frombuffer(service.annotated(job.id, index), np.uint8), cv2.IMREAD_COLOR)
        assert annotated.shape[:2] == (32, width)
    with pytest.raises(JobNotFoundError, match="no crop 2"):
        service.crop(job.id, 0, 2)


def test_coco_export(setup: Setup) -> None:
    service = setup.service()
    job = service.submit(NewJob(PLUGIN_MODEL, [*numbered(2), JobInput("broken.jpg", data=b"not an image")]))
    ended(service, job.id)
    coco = service.coco(job.id)
    assert coco["categories"] == [{"id": 0, "name": "widget"}, {"id": 1, "name": "gadget"}]
    images = [(i["id"], i["file_name"], i["width"]) for i in coco["images"]]
    assert images == [(1, "photo-0.png", 40), (2, "photo-1.png", 41)]
    first = coco["annotations"][0]
    assert (first["image_id"], first["category_id"], first["bbox"]) == (1, 0, [10.0, 8.0, 20.0, 16.0])
    assert len(coco["annotations"]) == 4 and len({a["id"] for a in coco["annotations"]}) == 4


def test_a_bad_image_is_an_item_error_not_a_job_error(setup: Setup) -> None:
    service = setup.service()
    inputs = [*numbered(2), JobInput("notes.txt", data=b"hello")]
    job = service.submit(NewJob(PLUGIN_MODEL, inputs))
    ended(service, job.id)
    job = service.get(job.id)
    assert job.state is JobState.SUCCEEDED and (job.progress.done, job.progress.failed) == (2, 1)
    [error] = service.errors(job.id)
    assert (error.index, error.source) == (2, "notes.txt") and "cannot decode image" in (error.error or "")


def test_every_item_failing_fails_the_job(setup: Setup) -> None:
    service = setup.service()
    job = service.submit(NewJob(PLUGIN_MODEL, [JobInput("a", data=b"x"), JobInput("b", data=b"y")]))
    ended(service, job.id)
    assert service.get(job.id).state is JobState.FAILED and service.get(job.id).error == "every item failed"


def test_a_model_that_does_not_load_fails_the_job(setup: Setup) -> None:
    folder = setup.root / "models" / "broken"
    folder.mkdir()
    (folder / "model.yaml").write_text("name: broken\nbackend: plugin\nplugin: no_such_module:Nothing\n")
    setup.repository = ModelRepository.scan(setup.root / "models")
    service = setup.service()
    job = service.submit(NewJob("broken", numbered(3)))
    ended(service, job.id)
    job = service.get(job.id)
    assert job.state is JobState.FAILED and "cannot load model 'broken'" in (job.error or "")
    assert job.progress.done == 0


def test_a_restart_in_the_middle_loses_nothing_and_repeats_nothing(slow: Setup) -> None:
    first = slow.service(workers=1)
    job = first.submit(NewJob(PLUGIN_MODEL, numbered(30)))
    wait_for(lambda: first.get(job.id).progress.done >= 5)
    first.stop()
    slow.services.remove(first)
    stopped = first.get(job.id)
    assert stopped.state is JobState.RUNNING and stopped.progress.done < 30
    second = slow.service(workers=2)
    ended(second, job.id)
    assert second.get(job.id).state is JobState.SUCCEEDED
    assert processed(slow.log) == dict.fromkeys(range(30), 1)
    assert {item.attempts for item in second.items(job.id)} == {1}


def test_the_item_of_a_lost_worker_is_done_again_and_committed_once(setup: Setup) -> None:
    recorder = Recorder()
    storage = open_storage(setup.config)
    offline = JobService(storage.store, storage.artifacts, setup.repository, recorder)
    job = offline.submit(NewJob(PLUGIN_MODEL, numbered(3)))
    assert recorder.submitted == [(job.id, [0, 1, 2])]
    now = datetime.now(UTC)
    lost = storage.store.claim(job.id, 0, "worker-killed-with-sigkill", 3, now)
    assert isinstance(lost, Claim)
    service = setup.service()
    ended(service, job.id)
    assert service.get(job.id).state is JobState.SUCCEEDED
    assert processed(setup.log) == dict.fromkeys(range(3), 1)
    assert [item.attempts for item in service.items(job.id)] == [2, 1, 1]
    assert not storage.store.commit(lost, output(5), "late", now)
    assert len(service.item(job.id, 0)[1].detections) == 2
    storage.db.close()


def test_cancel_stops_the_rest_of_a_job(slow: Setup) -> None:
    service = slow.service(workers=1)
    job = service.submit(NewJob(PLUGIN_MODEL, numbered(40)))
    wait_for(lambda: service.get(job.id).progress.done >= 2)
    cancelled = service.cancel(job.id)
    assert cancelled.state is JobState.CANCELLED and cancelled.progress.cancelled > 0
    wait_for(lambda: service.stats().queue_depth == 0)
    final = service.get(job.id)
    assert final.progress.done + final.progress.cancelled == 40 and final.progress.done < 40
    assert sum(processed(slow.log).values()) <= final.progress.done + 1
    with pytest.raises(JobStateError):
        service.cancel(job.id)


def test_submissions_are_validated_before_anything_is_stored(setup: Setup) -> None:
    service = setup.service(limits=JobLimits(max_images=3, max_image_bytes=1000))
    with pytest.raises(InvalidParameterError, match="1 to 3 images"):
        service.submit(NewJob(PLUGIN_MODEL, []))
    with pytest.raises(InvalidParameterError, match="1 to 3 images"):
        service.submit(NewJob(PLUGIN_MODEL, numbered(4)))
    with pytest.raises(ImageTooLargeError, match=r"big\.jpg"):
        service.submit(NewJob(PLUGIN_MODEL, [JobInput("big.jpg", data=b"x" * 1001)]))
    with pytest.raises(ModelNotFoundError):
        service.submit(NewJob("no-such-model", numbered(1)))
    with pytest.raises(InvalidParameterError, match="unknown class 'wrench'"):
        service.submit(NewJob(PLUGIN_MODEL, numbered(1)), classes=["wrench"])
    with pytest.raises(InvalidParameterError, match="webhooks are turned off"):
        service.submit(NewJob(PLUGIN_MODEL, numbered(1), webhook_url="http://127.0.0.1/hook"))
    with pytest.raises(InvalidParameterError, match="not on this server's allow-list"):
        service.submit(NewJob(PLUGIN_MODEL, [JobInput("u", url="http://example.com/a.jpg")]))
    assert service.list_jobs(JobQuery()).total == 0
    job = service.submit(NewJob(PLUGIN_MODEL, numbered(1)), classes=["gadget"])
    assert job.options.classes == (1,)
    ended(service, job.id)
    assert [d.label for d in service.item(job.id, 0)[1].detections] == ["gadget"]


def test_image_urls_on_the_allow_list_are_fetched(setup: Setup) -> None:
    service = setup.service()
    with Receiver(files={"/img/7.png": numbered_image(7)}) as server:
        image_url = f"{server.url}/img/7.png"
        inputs = [JobInput(image_url, url=image_url), JobInput("m", url=f"{server.url}/nope")]
        job = service.submit(NewJob(PLUGIN_MODEL, inputs))
        ended(service, job.id)
    first, missing = service.items(job.id)
    assert (first.state, first.width) == (ItemState.DONE, BASE_WIDTH + 7)
    assert missing.state is ItemState.FAILED and "HTTP 404" in (missing.error or "")
    no_urls = setup.service(url_hosts=())
    with pytest.raises(InvalidParameterError, match="URLs are turned off"):
        no_urls.submit(NewJob(PLUGIN_MODEL, [JobInput("u", url="http://127.0.0.1/a.png")]))


def test_expired_jobs_and_their_artifacts_are_removed(setup: Setup) -> None:
    service = setup.service(limits=JobLimits(retention=timedelta(hours=1)))
    job = service.submit(NewJob(PLUGIN_MODEL, numbered(1)))
    ended(service, job.id)
    assert service.purge_expired() == 0
    later = datetime.now(UTC) + timedelta(hours=2)
    limits = service.limits
    aged = JobService(service.store, service.artifacts, setup.repository, Recorder(), limits, clock=lambda: later)
    assert aged.purge_expired() == 1
    with pytest.raises(JobNotFoundError):
        service.get(job.id)
    with pytest.raises(JobNotFoundError):
        service.artifacts.get(input_key(job.id, 0))


def test_stats_report_backlog_and_throughput(setup: Setup) -> None:
    service = setup.service()
    job = service.submit(NewJob(PLUGIN_MODEL, numbered(4)))
    ended(service, job.id)
    stats = service.stats()
    assert (stats.runner, stats.pending, stats.running, stats.queue_depth) == ("local", 0, 0, 0)
    assert stats.finished_last_minute == 4


def test_uploads_read_lazily_are_checked_when_read(setup: Setup) -> None:
    service = setup.service(limits=JobLimits(max_image_bytes=1000))
    reads: list[str] = []

    def reader(name: str, data: bytes) -> JobInput:
        def read() -> bytes:
            reads.append(name)
            return data

        return JobInput(name, read=read, size=10)  # the declared size lies

    inputs = [reader("small.png", numbered_image(0)), reader("huge.png", b"x" * 1001), reader("never.png", b"")]
    with pytest.raises(ImageTooLargeError, match=r"huge\.png"):
        service.submit(NewJob(PLUGIN_MODEL, inputs))
    assert reads == ["small.png", "huge.png"]
    assert service.list_jobs(JobQuery()).total == 0
    assert not [path for path in (setup.config.data_dir / "artifacts").rglob("*") if path.is_file()]
    job = service.submit(NewJob(PLUGIN_MODEL, [reader("ok.png", numbered_image(1))]))
    ended(service, job.id)
    assert service.get(job.id).progress.done == 1
