"""The app's life cycle, /metrics and the graceful stop, in process (no server subprocess)."""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from tests.jobs_support import PLUGIN_MODEL, write_plugin_model

from visionserve.api.app import create_app
from visionserve.cli.serve import _draining_server
from visionserve.errors import StorageError
from visionserve.jobs.service import JobService
from visionserve.models.repository import ModelRepository
from visionserve.serving import DetectionService, ModelState, ServiceConfig
from visionserve.settings import Settings

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def settings_for(tmp_path: Path) -> tuple[Settings, ModelRepository]:
    models = tmp_path / "models"
    write_plugin_model(models, tmp_path / "seen.log")
    return Settings(models=models, data_dir=tmp_path / "data"), ModelRepository.scan(models)


class _Runner:
    name = "fake"


class FaultyJobs:
    """A job service whose ``start`` or ``stop`` fails."""

    runner = _Runner()

    def __init__(self, failing: str) -> None:
        self.failing = failing

    def start(self) -> None:
        if self.failing == "start":
            raise StorageError("the jobs database is unreachable")

    def stop(self) -> None:
        if self.failing == "stop":
            raise StorageError("the jobs database went away")


@pytest.mark.parametrize("failing", ["start", "stop"])
async def test_a_failing_job_service_never_leaks_the_detection_service(tmp_path: Path, failing: str) -> None:
    settings, repository = settings_for(tmp_path)
    service = DetectionService(repository, ServiceConfig(cores=1), set_threads=lambda n: None)
    jobs: Any = FaultyJobs(failing)
    app = create_app(settings, repository, set_threads=lambda n: None, service=service, jobs_service=jobs)
    with pytest.raises(StorageError):
        async with app.router.lifespan_context(app):
            await service.wait_started()
            assert service.model(PLUGIN_MODEL).state is ModelState.LOADED
    assert service.draining
    assert service.model(PLUGIN_MODEL).state is ModelState.UNLOADED  # instances closed, threads stopped
    assert app.state.service is None


@pytest.fixture
async def app_client(tmp_path: Path) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    settings, repository = settings_for(tmp_path)
    app = create_app(settings, repository, set_threads=lambda n: None)
    async with app.router.lifespan_context(app):
        await app.state.service.wait_started()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://visionserve.test") as client:
            yield app, client


async def test_metrics_read_job_stats_off_the_event_loop(
    app_client: tuple[Any, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, client = app_client
    jobs: JobService = app.state.jobs
    loop_thread = threading.get_ident()
    read_in: list[int] = []
    stats = jobs.stats

    def recording_stats() -> Any:
        read_in.append(threading.get_ident())
        return stats()

    monkeypatch.setattr(jobs, "stats", recording_stats)
    answer = await client.get("/metrics")
    assert answer.status_code == 200
    assert len(read_in) == 1 and read_in[0] != loop_thread
    assert 'visionserve_job_items{state="pending"} 0.0' in answer.text
    assert f'visionserve_model_loaded{{model="{PLUGIN_MODEL}"}} 1.0' in answer.text


async def test_metrics_still_answer_when_job_stats_fail(
    app_client: tuple[Any, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    app, client = app_client

    def unreachable() -> Any:
        raise StorageError("the jobs database is unreachable")

    monkeypatch.setattr(app.state.jobs, "stats", unreachable)
    with caplog.at_level(logging.WARNING, logger="visionserve.api.jobs_wiring"):
        answer = await client.get("/metrics")
    assert answer.status_code == 200
    assert "# TYPE visionserve_job_items gauge" in answer.text
    assert "visionserve_job_items{" not in answer.text  # the family, without samples
    assert f'visionserve_queue_depth{{model="{PLUGIN_MODEL}"}} 0.0' in answer.text
    assert "job metrics unavailable: the jobs database is unreachable" in caplog.text


@pytest.mark.parametrize(("path", "body"), [("/model/add", {"api_key": "k"}), ("/model/remove", {})])
async def test_roboflow_unknown_models_never_become_metric_labels(
    app_client: tuple[Any, httpx.AsyncClient], path: str, body: dict[str, str]
) -> None:
    _, client = app_client
    answer = await client.post(path, json={"model_id": "no-such-model-7", **body})
    assert answer.status_code == 404
    known = await client.post(path, json={"model_id": PLUGIN_MODEL, **body})
    assert known.status_code == 200, known.text
    text = (await client.get("/metrics")).text
    assert "no-such-model-7" not in text
    assert f'visionserve_requests_total{{method="POST",model="{PLUGIN_MODEL}",route="{path}",status="200"}}' in text


async def _no_app(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("never served")


@pytest.mark.parametrize(
    ("timeout", "drain_s", "left"),
    [(10.0, 7.5, 2.5), (10.0, 12.0, 0.0), (0.0, 0.0, 0.0), (2.5, 0.0, 2.5)],
)
def test_uvicorn_gets_only_what_draining_left_of_the_shutdown_timeout(
    timeout: float, drain_s: float, left: float
) -> None:
    now = [100.0]
    asked: list[float] = []

    async def drain(budget: float) -> None:
        asked.append(budget)
        now[0] += drain_s

    config = uvicorn.Config(_no_app, timeout_graceful_shutdown=math.ceil(timeout))
    server = _draining_server(config, drain, timeout, clock=lambda: now[0])
    asyncio.run(server._drain_then_exit())
    assert asked == [timeout]
    assert server.config.timeout_graceful_shutdown == left
    assert server.should_exit


def test_a_failed_drain_still_stops_within_the_budget() -> None:
    now = [0.0]

    async def drain(budget: float) -> None:
        now[0] += 4.0
        raise RuntimeError("drain failed")

    server = _draining_server(uvicorn.Config(_no_app, timeout_graceful_shutdown=5), drain, 5.0, clock=lambda: now[0])
    with pytest.raises(RuntimeError, match="drain failed"):
        asyncio.run(server._drain_then_exit())
    assert (server.config.timeout_graceful_shutdown, server.should_exit) == (1.0, True)
