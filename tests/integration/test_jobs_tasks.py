"""Jobs of every task through a real server process: segment, pose and classify jobs submitted over
HTTP (and the CLI), run on the server's served models, read back as JSON, artifacts and COCO
(loaded by pycocotools). The models are the tiny constant-output ones of tests/factories.py, so
every answer is known exactly."""

from __future__ import annotations

import contextlib
import copy
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from click.testing import CliRunner
from pycocotools import mask as coco_mask
from pycocotools.coco import COCO
from tests.conftest import encode
from tests.factories import (
    CLASS_SCORES,
    POSE_KEYPOINTS,
    SEG_LABELS,
    classifier_model_folder,
    pose_model_folder,
    seg_model_folder,
    solid_image,
)
from tests.integration.conftest import ServerProcess, running_server
from tests.jobs_support import wait_for

from visionserve.api.wire.predictions import Detection
from visionserve.cli.main import main
from visionserve.render.mask_decoding import patch_from_polygons

SEG, POSE, CLS = "tiny-seg", "tiny-pose", "tiny-cls"
SIZE = 128  # the models' input is 64 x 64: source pixels are twice the factories' input pixels
GRAY = (40, 40, 40)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("task-jobs")
    seg_model_folder(root, SEG)
    pose_model_folder(root, POSE)
    classifier_model_folder(root, CLS, top_k=3)
    with running_server(("--models", str(root)), log_dir=tmp_path_factory.mktemp("logs")) as running:
        yield running


@pytest.fixture
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60.0) as client:
        yield client


def submit(http: httpx.Client, model: str, images: int = 1, **fields: str) -> httpx.Response:
    image = encode(solid_image(SIZE, SIZE, GRAY), ".png")
    files = [("image", (f"{i}.png", image, "image/png")) for i in range(images)]
    return http.post("/v1/jobs", files=files, data={"model": model, **fields})


def finished(http: httpx.Client, model: str, images: int = 1, **fields: str) -> dict[str, Any]:
    """Submit a job, wait for it to end, and return ``GET /v1/jobs/{id}`` (with its results)."""
    answer = submit(http, model, images, **fields)
    assert answer.status_code == 202, answer.text
    url = f"/v1/jobs/{answer.json()['id']}"
    wait_for(lambda: http.get(url).json()["state"] not in ("queued", "running"), 60, 0.05)
    document: dict[str, Any] = http.get(url).json()
    assert document["state"] == "succeeded", document
    return document


def coco_results(http: httpx.Client, job_id: str) -> tuple[dict[str, Any], COCO]:
    """The job's COCO document, and its annotations loaded by pycocotools as results."""
    document: dict[str, Any] = http.get(f"/v1/jobs/{job_id}/results", params={"format": "coco"}).json()
    truth = COCO()
    truth.dataset = {"images": document["images"], "categories": document["categories"], "annotations": []}
    with contextlib.redirect_stdout(io.StringIO()):
        truth.createIndex()
        return document, truth.loadRes(copy.deepcopy(document["annotations"]))  # loadRes rewrites them


def test_segment_job_masks_as_rle_crops_annotated_and_coco(http: httpx.Client) -> None:
    job = finished(http, SEG, images=2, crops="true", annotate="true")
    assert (job["task"], job["options"]["mask_format"]) == ("segment", "rle")
    result = job["results"][0]
    first, second = result["detections"]
    Detection.model_validate(first)  # the native API's detection schema
    assert [first["label"], second["label"]] == list(SEG_LABELS)
    assert "polygons" not in first and first["rle"]["size"] == [SIZE, SIZE]
    mask = coco_mask.decode(first["rle"] | {"counts": first["rle"]["counts"].encode()}).astype(bool)
    assert mask[27:53, 27:53].all() and not mask[60:80, 60:80].any()  # the prototype's square, in the box
    assert len(result["crops"]) == 2 and http.get(result["crops"][1]).status_code == 200
    drawn = cv2.imdecode(np.frombuffer(http.get(result["annotated"]).content, np.uint8), cv2.IMREAD_COLOR)
    assert np.abs(drawn[40, 40].astype(int) - np.array(GRAY)).max() > 30  # the mask is painted
    document, results = coco_results(http, job["id"])
    assert [image["id"] for image in document["images"]] == [1, 2] and len(results.anns) == 4
    annotation = document["annotations"][0]
    assert annotation["area"] == int(mask.sum()) < 64 * 64  # the mask's area, not the box's
    assert (results.annToMask(results.anns[1]).astype(bool) == mask).all()
    assert http.get(f"/v1/jobs/{job['id']}/items/1").json()["detections"] == result["detections"]


def test_segment_job_masks_as_polygons_or_none(http: httpx.Client) -> None:
    rle = finished(http, SEG)["results"][0]["detections"][0]["rle"]
    polygons = finished(http, SEG, mask_format="polygon")["results"][0]["detections"][0]
    assert "rle" not in polygons
    traced = patch_from_polygons(polygons["polygons"]).dense(SIZE, SIZE)
    assert (traced == coco_mask.decode(rle | {"counts": rle["counts"].encode()}).astype(bool)).all()
    bare = finished(http, SEG, mask_format="none")["results"][0]["detections"][0]
    assert "rle" not in bare and "polygons" not in bare and bare["box"] == polygons["box"]


def test_pose_job_keypoints_named_and_coco_keypoints(http: httpx.Client) -> None:
    job = finished(http, POSE)
    (person,) = job["results"][0]["detections"]
    expected = [{"name": n, "x": x * 2, "y": y * 2, "score": s} for n, (x, y, s) in POSE_KEYPOINTS.items()]
    assert person["keypoints"] == [pytest.approx(point) for point in expected]
    document, results = coco_results(http, job["id"])
    assert document["categories"] == [
        {"id": 0, "name": "person", "keypoints": list(POSE_KEYPOINTS), "skeleton": [[1, 2], [1, 3]]}
    ]
    flat = [v for x, y, s in POSE_KEYPOINTS.values() for v in (x * 2, y * 2, s)]
    assert results.anns[1]["keypoints"] == pytest.approx(flat) and results.anns[1]["num_keypoints"] == 3


def test_classify_job_top_k_classes_and_coco_ranks(http: httpx.Client) -> None:
    job = finished(http, CLS, images=2, top_k="2", crops="true", annotate="true")
    assert (job["task"], job["options"]["top_k"]) == ("classify", 2)
    for result in job["results"]:
        assert [c["label"] for c in result["classes"]] == ["dog", "fish"]
        assert result["classes"][0] == {"label": "dog", "class_id": 1, "score": CLASS_SCORES["dog"]}
        assert "detections" not in result and result["crops"] == [] and result["annotated"]
    document, _ = coco_results(http, job["id"])
    assert [(a["image_id"], a["category_id"], a["rank"]) for a in document["annotations"]] == [
        (1, 1, 1),
        (1, 3, 2),
        (2, 1, 1),
        (2, 3, 2),
    ]
    assert all("bbox" not in a for a in document["annotations"])
    assert len(finished(http, CLS)["results"][0]["classes"]) == 3  # the model's top_k


@pytest.mark.parametrize(("field", "value"), [("mask_format", "png"), ("top_k", "0")])
def test_bad_task_options_are_422s_naming_the_field(http: httpx.Client, field: str, value: str) -> None:
    answer = submit(http, SEG, **{field: value})
    assert answer.status_code == 422, answer.text
    assert field in answer.json()["error"]["message"]


def test_cli_submits_a_classify_job_and_downloads_coco(server: ServerProcess, tmp_path: Path) -> None:
    photo = tmp_path / "gray.png"
    photo.write_bytes(encode(solid_image(SIZE, SIZE, GRAY), ".png"))
    runner = CliRunner()
    base = ["jobs", "--server", server.url]
    submitted = runner.invoke(main, [*base, "submit", str(photo), "--model", CLS, "--top-k", "1", "--wait", "--json"])
    assert submitted.exit_code == 0, submitted.output
    job = json.loads(submitted.stdout)
    assert job["results"][0]["classes"] == [{"label": "dog", "class_id": 1, "score": CLASS_SCORES["dog"]}]
    out = tmp_path / "coco.json"
    downloaded = runner.invoke(main, [*base, "results", job["id"], "--format", "coco", "-o", str(out)])
    assert downloaded.exit_code == 0, downloaded.output
    assert json.loads(out.read_text())["annotations"][0]["rank"] == 1
