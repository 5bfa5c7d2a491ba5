"""One inference path: the embedded job pool runs on the server's served models (no second copy of a
model), at a lower priority than requests (which never wait behind a queue of job items)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.jobs_support import BASE_WIDTH, PLUGIN_MODEL, numbered_image, write_plugin_model

from visionserve.api.app import create_app
from visionserve.models.loading import load_model
from visionserve.models.repository import ModelRepository
from visionserve.models.spec import ModelSpec
from visionserve.pipeline import BatchResult, PredictOptions, Predictor
from visionserve.serving import DetectionService, ServiceConfig
from visionserve.settings import Settings
from visionserve.types import BGRImage

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

DELAY_S = 0.15
JOB_IMAGES = 8


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Seeing:
    """A predictor that records the widths of the numbered images it is given (40 + n, 32 high)."""

    def __init__(self, inner: Predictor, seen: list[int]) -> None:
        self._inner = inner
        self._seen = seen
        self.spec = inner.spec
        self.labels = inner.labels

    def infer(self, images: Sequence[BGRImage], options: PredictOptions | None = None) -> BatchResult:
        self._seen.extend(image.shape[1] for image in images if image.shape[0] == 32)  # not warm-ups
        return self._inner.infer(images, options)

    def predict(self, images: Sequence[BGRImage], options: PredictOptions | None = None) -> Any:
        return self.infer(images, options).detections

    def close(self) -> None:
        self._inner.close()


async def test_jobs_and_requests_share_one_set_of_instances_and_requests_go_first(tmp_path: Path) -> None:
    models = tmp_path / "models"
    write_plugin_model(models, tmp_path / "seen.log", delay_s=DELAY_S)
    repository = ModelRepository.scan(models)
    loads: Counter[str] = Counter()
    seen: list[int] = []

    def counting_load(spec: ModelSpec) -> Predictor:
        loads[spec.name] += 1
        return Seeing(load_model(spec), seen)

    service = DetectionService(repository, ServiceConfig(cores=1), set_threads=lambda n: None, load=counting_load)
    settings = Settings(models=models, data_dir=tmp_path / "data", jobs_workers=4)
    app = create_app(settings, repository, set_threads=lambda n: None, service=service)
    async with app.router.lifespan_context(app):
        await service.wait_started()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t", timeout=60) as client:
            files = [("image", (f"{i}.png", numbered_image(i), "image/png")) for i in range(JOB_IMAGES)]
            answer = await client.post("/v1/jobs", files=files, data={"model": PLUGIN_MODEL})
            assert answer.status_code == 202, answer.text
            job_id = answer.json()["id"]
            await asyncio.sleep(2 * DELAY_S)  # job items now fill the model's queue (4 job threads)
            started = time.perf_counter()
            request = await client.post(
                f"/v1/models/{PLUGIN_MODEL}/detect", files={"image": ("r.png", numbered_image(99), "image/png")}
            )
            latency = time.perf_counter() - started
            assert request.status_code == 200
            while (await client.get(f"/v1/jobs/{job_id}")).json()["state"] in {"queued", "running"}:
                await asyncio.sleep(0.05)
            assert (await client.get(f"/v1/jobs/{job_id}")).json()["state"] == "succeeded"
    assert loads[PLUGIN_MODEL] == 1  # one instance (cores=1), shared: the job pool loaded no copy
    assert sorted(w - BASE_WIDTH for w in seen) == [*range(JOB_IMAGES), 99]
    # The request waited for at most the pass running when it came (plus its own), not for the
    # job items queued before it.
    assert latency < 3.5 * DELAY_S, f"request took {latency:.3f} s behind job items"
