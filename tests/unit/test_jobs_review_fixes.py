"""Regressions found in review: load errors that killed job threads, webhook URLs that killed the
webhook thread, partial dispatches, orphaned inputs, an unclosed URL client, and full-size decodes."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from tests.jobs_store_contract import T0, claim, make_job
from tests.jobs_support import PLUGIN_MODEL, Recorder, loopback_policy, numbered_image, wait_for, write_plugin_model

from visionserve.core.detections import Detections
from visionserve.errors import (
    InvalidParameterError,
    JobNotFoundError,
    ModelLoadError,
    ModelSpecError,
    StorageError,
)
from visionserve.jobs.config import JobsConfig
from visionserve.jobs.detectors import ModelCache
from visionserve.jobs.factory import Storage, build_service, open_storage
from visionserve.jobs.fetch import UrlFetcher
from visionserve.jobs.local_runner import LocalRunner
from visionserve.jobs.model import ItemState, JobInput, JobState, NewJob, WebhookState, input_key
from visionserve.jobs.processing import ItemProcessor, Outcome, ProcessorConfig
from visionserve.jobs.service import JobService
from visionserve.jobs.webhooks import Outcome as PostOutcome
from visionserve.jobs.webhooks import WebhookDispatcher, post_once
from visionserve.models.labels import Labels, read_labels_file
from visionserve.models.loading import load_model
from visionserve.models.repository import ModelRepository
from visionserve.models.spec import ModelSpec
from visionserve.plugins import PluginModel
from visionserve.types import BGRImage


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[Storage]:
    opened = open_storage(JobsConfig(data_dir=tmp_path / "data"))
    yield opened
    opened.db.close()


def plugin_folder(root: Path, name: str, module: str, extra: str = "") -> Path:
    """A plugin model ``name`` whose module ``<name>_mod.py`` has the source ``module``."""
    folder = root / name
    folder.mkdir(parents=True)
    module_name = name.replace("-", "_") + "_mod"
    (folder / f"{module_name}.py").write_text(module, encoding="utf-8")
    (folder / "model.yaml").write_text(
        f"name: {name}\nbackend: plugin\nplugin: {module_name}:Model\nlabels: [a]\n{extra}", encoding="utf-8"
    )
    return folder


RAISING_LOAD = "class Model:\n    def load(self, spec):\n        raise RuntimeError('no GPU here')\n"
RAISING_LOAD += "    def predict(self, images):\n        return []\n"


# -- 1. model load errors ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "module", "expected"),
    [
        ("raising-load", RAISING_LOAD, "RuntimeError: no GPU here"),
        ("syntax-error", "class Model(:\n", "SyntaxError"),
        ("name-error", "undefined_name\n", "NameError"),
    ],
)
def test_any_plugin_failure_while_loading_is_a_model_load_error(
    tmp_path: Path, name: str, module: str, expected: str
) -> None:
    spec = ModelRepository.scan(plugin_folder(tmp_path, name, module).parent).get(name)
    with pytest.raises(ModelLoadError, match=f"plugin '{name.replace('-', '_')}_mod:Model'.*{expected}"):
        load_model(spec)


@pytest.mark.parametrize(
    "text",
    ["{a: person, 1: car}\n", '"bad \\q escape"\n', "{null: person}\n"],
    ids=["non-integer-key", "invalid-escape", "null-key"],
)
def test_unreadable_labels_files_are_model_spec_errors_naming_the_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "labels.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ModelSpecError, match=r"labels\.yaml"):
        read_labels_file(path)


def test_a_plugin_that_raises_in_load_fails_the_job_and_the_pool_keeps_working(tmp_path: Path) -> None:
    log = tmp_path / "seen.log"
    write_plugin_model(tmp_path / "models", log)
    plugin_folder(tmp_path / "models", "raising-load", RAISING_LOAD)
    config = JobsConfig(data_dir=tmp_path / "data", workers=1)
    service = build_service(config, ModelRepository.scan(tmp_path / "models"))
    service.start()
    try:
        broken = service.submit(NewJob("raising-load", [JobInput("a.png", data=numbered_image(0))]))
        wait_for(lambda: service.get(broken.id).state.terminal, 10)
        failed = service.get(broken.id)
        assert failed.state is JobState.FAILED and "no GPU here" in (failed.error or "")
        good = service.submit(NewJob(PLUGIN_MODEL, [JobInput("b.png", data=numbered_image(1))]))
        wait_for(lambda: service.get(good.id).state.terminal, 10)  # the only job thread is still alive
        assert service.get(good.id).state is JobState.SUCCEEDED
    finally:
        service.stop()


def test_an_untranslated_load_error_fails_the_job_instead_of_escaping(storage: Storage, tmp_path: Path) -> None:
    def load(spec: ModelSpec) -> Any:
        raise RuntimeError("loader bug")

    write_plugin_model(tmp_path / "models", tmp_path / "seen.log")
    cache = ModelCache(ModelRepository.scan(tmp_path / "models"), load=load)
    ended: list[str] = []
    processor = ItemProcessor(
        storage.store, storage.artifacts, cache, ProcessorConfig("w"), lambda j: ended.append(j.id)
    )
    job_id = make_job(storage, 2, model=PLUGIN_MODEL)
    assert processor.process(job_id, 0) is Outcome.JOB_FAILED
    job = storage.store.get(job_id)
    assert job.state is JobState.FAILED and "RuntimeError: loader bug" in (job.error or "")
    assert ended == [job_id] and job.progress.running == 0


class FlakyProcessor:
    def __init__(self, seen: list[int]) -> None:
        self.seen = seen

    def process(self, job_id: str, index: int) -> None:
        self.seen.append(index)
        if len(self.seen) == 1:
            raise RuntimeError("a bug")

    def close(self) -> None: ...


def test_an_unexpected_error_does_not_end_the_job_thread() -> None:
    seen: list[int] = []
    runner = LocalRunner(lambda n: FlakyProcessor(seen), workers=1, retry_s=0.01)  # type: ignore[arg-type,return-value]
    runner.start()
    try:
        runner.submit("c" * 32, [3, 4])
        wait_for(lambda: sorted(seen) == [3, 3, 4], 10)  # item 3 retried, item 4 processed
    finally:
        runner.stop()


# -- 2. webhook URLs -----------------------------------------------------------------------------
@pytest.mark.parametrize("url", ["http://a.com:abc/", "http://[::1/x", "http://a.com:99999/", "ftp://a.com/"])
def test_webhook_urls_an_http_client_refuses_are_refused_at_submit(tmp_path: Path, url: str) -> None:
    write_plugin_model(tmp_path / "models", tmp_path / "seen.log")
    storage = open_storage(JobsConfig(data_dir=tmp_path / "data"))
    service = JobService(
        storage.store,
        storage.artifacts,
        ModelRepository.scan(tmp_path / "models"),
        Recorder(),
        webhooks=loopback_policy(),
    )
    with pytest.raises(InvalidParameterError, match="webhook_url"):
        service.submit(NewJob(PLUGIN_MODEL, [JobInput("a.png", data=numbered_image(0))], webhook_url=url))
    storage.db.close()


@pytest.mark.parametrize("url", ["http://[::1/x", "http://127.0.0.1:abc/x.png"])
def test_image_urls_an_http_client_refuses_are_invalid_parameters(url: str) -> None:
    fetcher = UrlFetcher(loopback_policy("an image URL"))
    with pytest.raises(InvalidParameterError, match="not a valid URL"):
        fetcher.check(url)
    fetcher.close()


def test_a_stored_invalid_webhook_url_is_a_rejected_delivery(storage: Storage) -> None:
    with httpx.Client() as client:
        result = post_once(client, loopback_policy(), "http://a.com:abc/", b"{}", "s", "d")
    assert result.outcome is PostOutcome.REJECTED and "abc" in result.detail
    job_id = make_job(storage, 1, webhook="http://a.com:abc/")
    storage.store.fail_job(job_id, "x", T0)
    dispatcher = WebhookDispatcher(storage.store, "s", loopback_policy())
    delivery = dispatcher.run(job_id, lambda seconds: False)
    dispatcher.close()
    assert delivery is not None and (delivery.state, delivery.attempts) == (WebhookState.FAILED, 1)


class FlakyWebhooks:
    def __init__(self) -> None:
        self.runs: list[str] = []

    def run(self, job_id: str, sleep: Any) -> None:
        self.runs.append(job_id)
        if len(self.runs) == 1:
            raise JobNotFoundError(f"no job {job_id!r}")

    def close(self) -> None: ...


def test_a_webhook_error_does_not_end_the_webhook_thread() -> None:
    webhooks = FlakyWebhooks()
    runner = LocalRunner(lambda n: FlakyProcessor([]), webhooks=webhooks)  # type: ignore[arg-type,return-value]
    runner.start()
    try:
        runner.notify("gone")
        runner.notify("next")
        wait_for(lambda: webhooks.runs == ["gone", "next"], 10)
    finally:
        runner.stop()


# -- 3. partial dispatch -------------------------------------------------------------------------
@dataclass
class PartialBroker:
    """A durable runner that publishes ``limit`` items, then loses the broker."""

    limit: int | None
    submitted: list[tuple[str, list[int]]]
    name: str = "partial"
    durable: bool = True

    def start(self) -> None: ...

    def submit(self, job_id: str, indices: Sequence[int]) -> None:
        sent = list(indices)[: self.limit]
        self.submitted.append((job_id, sent))
        if self.limit is not None and len(sent) < len(indices):
            raise StorageError("cannot reach the broker")

    def notify(self, job_id: str) -> None: ...

    def queue_depth(self) -> int | None:
        return None

    def stop(self) -> None: ...


def test_a_dispatch_that_failed_partway_is_completed_with_the_pending_items(storage: Storage, tmp_path: Path) -> None:
    write_plugin_model(tmp_path / "models", tmp_path / "seen.log")
    repository = ModelRepository.scan(tmp_path / "models")
    broker = PartialBroker(2, [])
    service = JobService(storage.store, storage.artifacts, repository, broker, clock=lambda: T0)
    job = service.submit(NewJob(PLUGIN_MODEL, [JobInput(f"{i}.png", data=numbered_image(i)) for i in range(4)]))
    claim(storage, job.id, 0)  # a worker took a published item: the job is running
    assert storage.store.get(job.id).state is JobState.RUNNING
    broker.limit, broker.submitted[:] = None, []
    assert service.dispatch_stranded(T0 + timedelta(minutes=2)) == 1
    assert broker.submitted == [(job.id, [1, 2, 3])]  # item 0 is the broker's already
    assert service.dispatch_stranded(T0 + timedelta(minutes=2)) == 0


def test_resume_leaves_jobs_younger_than_the_grace_period_to_their_dispatcher(storage: Storage, tmp_path: Path) -> None:
    write_plugin_model(tmp_path / "models", tmp_path / "seen.log")
    repository = ModelRepository.scan(tmp_path / "models")
    job_id = make_job(storage, 2, model=PLUGIN_MODEL, at=T0)
    now = [T0 + timedelta(seconds=10)]
    broker = PartialBroker(None, [])
    service = JobService(storage.store, storage.artifacts, repository, broker, clock=lambda: now[0])
    service.resume()
    assert broker.submitted == []
    now[0] = T0 + timedelta(minutes=2)
    service.resume()
    assert broker.submitted == [(job_id, [0, 1])]


# -- 4. orphaned inputs --------------------------------------------------------------------------
def test_inputs_are_removed_when_the_job_cannot_be_created(storage: Storage, tmp_path: Path) -> None:
    write_plugin_model(tmp_path / "models", tmp_path / "seen.log")

    class FailingCreate:
        def __init__(self, inner: Any) -> None:
            self._inner = inner

        def create(self, job_id: str, *args: Any) -> Any:
            self.job_id = job_id
            raise StorageError("database is gone")

        def __getattr__(self, name: str) -> Any:
            return getattr(self._inner, name)

    store = FailingCreate(storage.store)
    service = JobService(store, storage.artifacts, ModelRepository.scan(tmp_path / "models"), Recorder())
    with pytest.raises(StorageError, match="database is gone"):
        service.submit(NewJob(PLUGIN_MODEL, [JobInput(f"{i}.png", data=numbered_image(i)) for i in range(2)]))
    for index in range(2):
        with pytest.raises(JobNotFoundError):
            storage.artifacts.get(input_key(store.job_id, index))


# -- 5. the URL client is closed -----------------------------------------------------------------
def test_closing_a_processor_closes_its_url_fetcher(storage: Storage, tmp_path: Path) -> None:
    write_plugin_model(tmp_path / "models", tmp_path / "seen.log")
    fetcher = UrlFetcher(loopback_policy("an image URL"))
    cache = ModelCache(ModelRepository.scan(tmp_path / "models"))
    processor = ItemProcessor(storage.store, storage.artifacts, cache, ProcessorConfig("w"), print, fetcher=fetcher)
    processor.close()
    with pytest.raises(RuntimeError, match="client has been closed"):
        fetcher.fetch("http://127.0.0.1:9/a.png")


# -- 6. decode at the size the letterbox needs ---------------------------------------------------
class ShapeRecorder:
    def __init__(self) -> None:
        self.shapes: list[tuple[int, ...]] = []

    def load(self, spec: ModelSpec) -> None: ...

    def predict(self, images: list[BGRImage]) -> list[Detections]:
        self.shapes.extend(image.shape for image in images)
        return [Detections(np.array([[0.0, 0.0, 100.0, 50.0]]), np.array([0.9]), np.array([0])) for _ in images]


def test_a_wide_jpeg_is_decoded_at_the_size_a_letterbox_needs(storage: Storage, tmp_path: Path) -> None:
    extra = "input: {width: 640, height: 640, resize: letterbox}\n"
    plugin_folder(tmp_path / "models", "wide", "class Model: ...\n", extra)
    recorder = ShapeRecorder()
    repository = ModelRepository.scan(tmp_path / "models")
    cache = ModelCache(repository, load=lambda spec: PluginModel(spec, recorder, Labels.from_list(["a"])))
    processor = ItemProcessor(storage.store, storage.artifacts, cache, ProcessorConfig("w"), print)
    image = np.random.default_rng(0).integers(0, 255, (1000, 4000, 3), dtype=np.uint8)
    ok, jpeg = cv2.imencode(".jpg", image)
    assert ok
    service = JobService(storage.store, storage.artifacts, repository, Recorder())
    job = service.submit(NewJob("wide", [JobInput("wide.jpg", data=bytes(jpeg.tobytes()))]))
    assert processor.process(job.id, 0) is Outcome.DONE
    assert recorder.shapes == [(250, 1000, 3)]  # 1/4 scale still covers the 640x160 letterbox
    item, found = service.item(job.id, 0)
    assert item.state is ItemState.DONE and (item.width, item.height) == (4000, 1000)
    assert found.detections[0].box == (0.0, 0.0, 400.0, 200.0)  # mapped back to source pixels
