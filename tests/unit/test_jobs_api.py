"""The /v1/jobs routes in the real app (lifespan included), with the embedded runner on SQLite."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import cv2
import httpx
import numpy as np
import pytest
from tests.jobs_support import BASE_WIDTH, PLUGIN_MODEL, Receiver, numbered_image, write_plugin_model

from visionserve.api.app import create_app
from visionserve.models.repository import ModelRepository
from visionserve.settings import Settings

pytestmark = pytest.mark.anyio
LOCAL_URL = "http://127.0.0.1/a.png"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    models = tmp_path / "models"
    write_plugin_model(models, tmp_path / "seen.log")
    settings = Settings(
        models=models,
        data_dir=tmp_path / "data",
        jobs_url_hosts=("127.0.0.1",),
        outbound_allow_networks=("127.0.0.0/8",),
        max_body_bytes=4096,
        jobs_workers=2,
    )
    app = create_app(settings, ModelRepository.scan(models), set_threads=lambda n: None)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://visionserve.test") as test_client:
            yield test_client


def files(count: int) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("image", (f"photo-{i}.png", numbered_image(i), "image/png")) for i in range(count)]


async def finished(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        document: dict[str, Any] = (await client.get(f"/v1/jobs/{job_id}")).json()
        if document["state"] in {"succeeded", "failed", "cancelled"}:
            return document
        await anyio.sleep(0.02)
    raise AssertionError(f"job {job_id} did not end")


async def test_submit_poll_and_read_results(client: httpx.AsyncClient) -> None:
    answer = await client.post("/v1/jobs", files=files(3), data={"model": PLUGIN_MODEL, "crops": "true", "conf": "0.5"})
    assert answer.status_code == 202, answer.text
    job = answer.json()
    assert answer.headers["location"] == f"/v1/jobs/{job['id']}"
    assert (job["state"], job["progress"]["total"], job["options"]["crops"]) == ("queued", 3, True)
    document = await finished(client, job["id"])
    assert document["state"] == "succeeded" and document["errors"] == []
    assert [r["width"] for r in document["results"]] == [BASE_WIDTH, BASE_WIDTH + 1, BASE_WIDTH + 2]
    assert [d["label"] for d in document["results"][0]["detections"]] == ["widget", "gadget"]
    assert document["timings"]["elapsed_s"] is not None
    item = (await client.get(f"/v1/jobs/{job['id']}/items/2")).json()
    assert (item["source"], len(item["crops"])) == ("photo-2.png", 2)
    crop = await client.get(item["crops"][1])
    assert crop.headers["content-type"] == "image/jpeg"
    decoded = cv2.imdecode(np.frombuffer(crop.content, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape[:2] == (16, (BASE_WIDTH + 2) // 2)
    missing = await client.get(f"/v1/jobs/{job['id']}/items/2/annotated")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    coco = await client.get(f"/v1/jobs/{job['id']}/results", params={"format": "coco"})
    assert coco.headers["content-disposition"] == f'attachment; filename="job-{job["id"]}-coco.json"'
    assert len(coco.json()["images"]) == 3 and len(coco.json()["annotations"]) == 6
    assert len((await client.get(f"/v1/jobs/{job['id']}/results")).json()["items"]) == 3
    conflict = await client.delete(f"/v1/jobs/{job['id']}")
    assert conflict.status_code == 409 and "succeeded to cancelled" in conflict.json()["error"]["message"]


async def test_list_filters_and_pages(client: httpx.AsyncClient) -> None:
    ids = []
    for _ in range(3):
        ids.append((await client.post("/v1/jobs", files=files(1), data={"model": PLUGIN_MODEL})).json()["id"])
    for job_id in ids:
        await finished(client, job_id)
    page = (await client.get("/v1/jobs", params={"limit": 2})).json()
    assert page["total"] == 3 and [j["id"] for j in page["jobs"]] == ids[::-1][:2]
    assert (await client.get("/v1/jobs", params={"state": "queued"})).json()["total"] == 0
    assert (await client.get("/v1/jobs", params={"model": PLUGIN_MODEL, "offset": 2})).json()["jobs"][0]["id"] == ids[0]
    assert (await client.get("/v1/jobs", params={"state": "bogus"})).status_code == 422


async def test_urls_as_json(client: httpx.AsyncClient) -> None:
    with Receiver(files={"/a.png": numbered_image(4)}) as server:
        body = {"urls": [f"{server.url}/a.png"], "model": PLUGIN_MODEL, "max_det": 1}
        answer = await client.post("/v1/jobs", json=body)
        assert answer.status_code == 202, answer.text
        document = await finished(client, answer.json()["id"])
    [result] = document["results"]
    assert (result["source"], result["width"], len(result["detections"])) == (f"{server.url}/a.png", 44, 1)


@pytest.mark.parametrize(
    ("request_kwargs", "status", "message"),
    [
        ({"data": {"model": PLUGIN_MODEL}, "files": []}, 422, "a job takes 1 to"),
        ({"data": {"conf": "2"}, "files": files(1)}, 422, "conf"),
        ({"data": {"model": "nope"}, "files": files(1)}, 404, "unknown model 'nope'"),
        ({"data": {"colour": "red"}, "files": files(1)}, 422, "colour"),
        ({"files": [("photo", ("a.png", b"x", "image/png"))]}, 422, "unexpected file field 'photo'"),
        ({"files": [("image", ("a.txt", b"x", "text/plain"))]}, 415, "text/plain"),
        ({"content": b"[1]", "headers": {"content-type": "application/json"}}, 422, "must be an object"),
        ({"content": b"hello", "headers": {"content-type": "text/plain"}}, 422, "multipart/form-data"),
        ({"json": {"urls": ["http://example.com/a.jpg"]}}, 422, "not on this server's allow-list"),
        ({"json": {"urls": [LOCAL_URL], "webhook_url": LOCAL_URL}}, 422, "webhooks are turned off"),
        ({"json": {"urls": ["x"]}}, 422, "not an http(s) URL"),
        # Found by schemathesis: a 'urls' field before a 'url' field was a 500 ('str' has no append).
        ({"data": {"urls": "x", "url": LOCAL_URL}}, 422, "not both"),
    ],
)
async def test_bad_submissions(
    client: httpx.AsyncClient, request_kwargs: dict[str, Any], status: int, message: str
) -> None:
    answer = await client.post("/v1/jobs", **request_kwargs)
    assert answer.status_code == status, answer.text
    assert message in answer.json()["error"]["message"]
    assert (await client.get("/v1/jobs")).json()["total"] == 0


async def test_unknown_and_malformed_ids_are_404(client: httpx.AsyncClient) -> None:
    unknown = "a" * 32
    paths = [f"/v1/jobs/{unknown}", "/v1/jobs/../etc", "/v1/jobs/xyz/items/0", f"/v1/jobs/{unknown}/items/0/crops/0"]
    for path in paths:
        assert (await client.get(path)).status_code == 404
    assert (await client.delete("/v1/jobs/" + "b" * 32)).status_code == 404


async def test_jobs_have_their_own_body_limit(client: httpx.AsyncClient) -> None:
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    big = [("image", ("big.png", cv2.imencode(".png", noise)[1].tobytes(), "image/png"))]
    assert len(big[0][1][1]) > 4096
    too_big = await client.post("/v1/jobs", files=big, data={"model": PLUGIN_MODEL})
    assert too_big.status_code == 413 and "big.png" in too_big.json()["error"]["message"]
    many = files(60)
    assert sum(len(f[1][1]) for f in many) > 4096
    answer = await client.post("/v1/jobs", files=many, data={"model": PLUGIN_MODEL})
    assert answer.status_code == 202, answer.text
    assert (await client.post("/v1/detect", files=many)).status_code == 413
    await finished(client, answer.json()["id"])


async def test_metrics_show_job_backlog_and_throughput(client: httpx.AsyncClient) -> None:
    job_id = (await client.post("/v1/jobs", files=files(2), data={"model": PLUGIN_MODEL})).json()["id"]
    await finished(client, job_id)
    text = (await client.get("/metrics")).text
    assert 'visionserve_job_items{state="pending"} 0.0' in text
    assert "visionserve_job_items_finished_last_minute 2.0" in text
    assert "visionserve_job_queue_depth 0.0" in text


async def test_results_and_errors_come_a_page_at_a_time(client: httpx.AsyncClient) -> None:
    bad = [("image", (f"bad-{i}.png", b"not an image", "image/png")) for i in range(3)]
    answer = await client.post("/v1/jobs", files=[*files(2), *bad], data={"model": PLUGIN_MODEL})
    job_id = answer.json()["id"]
    await finished(client, job_id)
    first = (await client.get(f"/v1/jobs/{job_id}/results", params={"limit": 2})).json()
    assert [item["index"] for item in first["items"]] == [0, 1]
    assert first["page"]["total"] == 5 and first["page"]["next"].endswith(f"/v1/jobs/{job_id}/results?limit=2&offset=2")
    second = (await client.get(first["page"]["next"])).json()
    third = (await client.get(second["page"]["next"])).json()
    assert [item["index"] for item in second["items"] + third["items"]] == [2, 3, 4] and third["page"]["next"] is None
    assert (await client.get(f"/v1/jobs/{job_id}/results", params={"limit": 1001})).status_code == 422
    document = (await client.get(f"/v1/jobs/{job_id}", params={"errors_limit": 2})).json()
    assert len(document["errors"]) == 2 and document["errors_page"]["total"] == 3
    rest = (await client.get(document["errors_page"]["next"])).json()
    assert len(rest["errors"]) == 1 and rest["errors_page"]["next"] is None
    assert (await client.get(f"/v1/jobs/{job_id}", params={"errors_limit": 1001})).status_code == 422
