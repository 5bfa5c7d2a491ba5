"""``POST /v1/models/{name}/evaluate`` on a real server: a zip of the labelled photo set gives, as a
job, the report that ``visionserve eval`` computes offline, with a PR-curve PNG per class; unsafe or
broken archives are refused before a job exists."""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Iterator
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from tests.evaluation_support import build_coco, write_photos
from tests.integration.conftest import ServerProcess, running_server

from visionserve.evaluation.datasets import read_coco
from visionserve.evaluation.evaluate import evaluate_boxes
from visionserve.evaluation.runner import local_infer
from visionserve.models.default import DEFAULT_MODEL_NAME, default_spec
from visionserve.models.loading import load_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running_server(log_dir=tmp_path_factory.mktemp("evaluate-server")) as started:
        yield started


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, dict[str, Any]]:
    """The zip archive of the set, and the report of ``visionserve eval``'s code run here on it."""
    root = tmp_path_factory.mktemp("evaluate-set")
    names = write_photos(root / "images")
    model = load_model(default_spec())
    try:
        coco = build_coco(root / "images", local_infer(model), model.labels)
        (root / "gt.json").write_text(json.dumps(coco))
        labelled_set = read_coco(root / "gt.json")
        local = evaluate_boxes(
            model.spec, model.labels, labelled_set, root / "images", local_infer(model), lambda c: 0.4
        )
    finally:
        model.close()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.write(root / "gt.json", "annotations.json")
        for name in names:
            archive.write(root / "images" / name, f"images/{name}")
    return buffer.getvalue(), local.report


def submit(server: ServerProcess, data: bytes, model: str = DEFAULT_MODEL_NAME, **fields: str) -> httpx.Response:
    files = {"archive": ("set.zip", data, "application/zip")}
    return httpx.post(f"{server.url}/v1/models/{model}/evaluate", files=files, data=fields, timeout=60)


def wait(server: ServerProcess, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job: dict[str, Any] = httpx.get(f"{server.url}/v1/jobs/{job_id}").json()
        if job["state"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not end")


def test_the_job_reports_what_eval_computes_offline(server: ServerProcess, labelled: tuple[bytes, Any]) -> None:
    data, local = labelled
    created = submit(server, data)
    assert created.status_code == 202, created.text
    job = wait(server, created.json()["id"])
    assert job["state"] == "succeeded", job
    report = httpx.get(f"{server.url}/v1/jobs/{job['id']}/evaluation").json()
    assert job["evaluation"] == report
    assert report["metrics"]["bbox"]["stats"] == pytest.approx(local["metrics"]["bbox"]["stats"], abs=1e-9)
    assert report["classes"] == local["classes"]
    assert [p["label"] for p in report["plots"]] == sorted(row["label"] for row in local["classes"])
    for plot in report["plots"]:
        png = httpx.get(server.url + plot["url"])
        assert png.status_code == 200 and png.headers["content-type"] == "image/png"
        image = cv2.imdecode(np.frombuffer(png.content, np.uint8), cv2.IMREAD_COLOR)
        assert image.shape == (480, 640, 3)
    assert httpx.get(f"{server.url}/v1/jobs/{job['id']}/evaluation/plots/99").status_code == 404


def zip_of(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not a zip", "not a readable zip"),
        (zip_of({"../escape.json": b"{}"}), "leads outside"),
        (zip_of({"/abs.json": b"{}"}), "leads outside"),
        (zip_of({"bomb.json": b"0" * 5_000_000}), "expands more than"),
    ],
    ids=["not-zip", "traversal", "absolute", "bomb"],
)
def test_unsafe_archives_are_refused_before_a_job_exists(server: ServerProcess, data: bytes, message: str) -> None:
    answer = submit(server, data)
    assert answer.status_code == 422, answer.text
    assert message in answer.json()["error"]["message"]


def test_bad_sets_fail_the_job_with_the_reason(server: ServerProcess) -> None:
    data = zip_of(
        {"annotations.json": json.dumps({"images": [], "categories": [{"id": 1, "name": "unicorn"}]}).encode()}
    )
    job = wait(server, submit(server, data).json()["id"])
    assert job["state"] == "failed" or job["progress"]["failed"] == 1
    assert "'unicorn'" in json.dumps(job["errors"])
    assert httpx.get(f"{server.url}/v1/jobs/{job['id']}/evaluation").status_code == 404


def test_unknown_model_wrong_field_and_format(server: ServerProcess, labelled: tuple[bytes, Any]) -> None:
    data, _ = labelled
    assert submit(server, data, model="nope").status_code == 404
    wrong = httpx.post(f"{server.url}/v1/models/{DEFAULT_MODEL_NAME}/evaluate", files={"image": ("a.zip", data)})
    assert wrong.status_code == 422
    assert submit(server, data, format="pdf").status_code == 422
