"""Jobs on segment, pose and classify models, processed by a model cache of their own (what a
Celery worker runs) with the tiny constant-output models of tests/factories.py: what is stored, the
artifacts drawn, and crops only for box tasks. (Through a server's served models and HTTP:
tests/integration/test_jobs_tasks.py.)"""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np
import pytest
from pycocotools import mask as coco_mask
from tests.conftest import encode
from tests.factories import (
    POSE_KEYPOINTS,
    SEG_LABELS,
    classifier_model_folder,
    pose_model_folder,
    seg_model_folder,
    solid_image,
)
from tests.jobs_support import wait_for

from visionserve.jobs.config import JobsConfig
from visionserve.jobs.factory import build_service
from visionserve.jobs.model import JobInput, JobOptions, JobState, NewJob
from visionserve.jobs.service import JobService
from visionserve.models.repository import ModelRepository
from visionserve.models.spec import Task
from visionserve.render.palette import color_for

SIZE = 128  # the models' input is 64 x 64: source pixels are twice the factories' input pixels
GRAY = (40, 40, 40)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JobService]:
    root = tmp_path_factory.mktemp("task-jobs")
    seg_model_folder(root / "models", "seg")
    pose_model_folder(root / "models", "pose")
    classifier_model_folder(root / "models", "cls", top_k=3)
    made = build_service(JobsConfig(data_dir=root / "data"), ModelRepository.scan(root / "models"))
    made.start()
    yield made
    made.stop()


def run(service: JobService, model: str, options: JobOptions) -> str:
    image = encode(solid_image(SIZE, SIZE, GRAY), ".png")
    job = service.submit(NewJob(model, [JobInput("gray.png", data=image)], options))
    wait_for(lambda: service.get(job.id).state.terminal, 60)
    assert service.get(job.id).state is JobState.SUCCEEDED, service.errors(job.id)
    return job.id


def annotated(service: JobService, job_id: str) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(service.annotated(job_id, 0), np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (SIZE, SIZE, 3)
    return image.astype(int)


def test_a_segment_job_stores_masks_crops_and_draws_them(service: JobService) -> None:
    job_id = run(service, "seg", JobOptions(crops=True, annotate=True))
    assert service.get(job_id).task is Task.SEGMENT
    item, found = service.item(job_id, 0)
    assert [d.label for d in found.detections] == list(SEG_LABELS) and item.crop_count == 2
    first = found.detections[0]
    assert first.box == (16.0, 16.0, 80.0, 80.0) and first.mask is not None
    mask = coco_mask.decode(first.mask.to_coco() | {"counts": first.mask.counts.encode()}).astype(bool)
    assert mask[27:53, 27:53].all() and not mask[60:80, 60:80].any()  # the prototype's square, not the box
    crop = cv2.imdecode(np.frombuffer(service.crop(job_id, 0, 0), np.uint8), cv2.IMREAD_COLOR)
    assert crop.shape == (64, 64, 3)
    drawn = annotated(service, job_id)
    blended = np.array(GRAY) * 0.55 + np.array(color_for(0)) * 0.45  # the mask annotator's fill
    inside, in_box_only = drawn[40, 40], drawn[20, 60]
    assert np.abs(inside - blended).max() <= 30  # the mask is filled
    assert np.abs(in_box_only - np.array(GRAY)).max() <= 30  # the box outside the mask is not


def test_a_pose_job_stores_keypoints_and_draws_them(service: JobService) -> None:
    job_id = run(service, "pose", JobOptions(annotate=True))
    (person,) = service.results(job_id)["items"][0]["detections"]
    expected = [{"name": n, "x": x * 2, "y": y * 2, "score": s} for n, (x, y, s) in POSE_KEYPOINTS.items()]
    assert person["keypoints"] == [pytest.approx(point) for point in expected]
    x, y, _ = POSE_KEYPOINTS["head"]
    assert np.abs(annotated(service, job_id)[int(y * 2), int(x * 2)] - 255).max() <= 40  # a white dot


def test_a_classify_job_stores_top_k_classes_without_crops(service: JobService) -> None:
    job_id = run(service, "cls", JobOptions(top_k=2, crops=True, annotate=True))
    item, found = service.item(job_id, 0)
    assert [(c.label, c.score) for c in found.classes] == [("dog", pytest.approx(0.6)), ("fish", pytest.approx(0.25))]
    assert found.detections == () and item.crop_count == 0 and item.annotated
    document = service.results(job_id)
    assert document["job"]["task"] == "classify"
    assert [c["label"] for c in document["items"][0]["classes"]] == ["dog", "fish"]
    banner = annotated(service, job_id)[:12, :40]
    assert np.abs(banner - np.array(GRAY)).max() > 60  # the class banner is drawn in the corner
    default = run(service, "cls", JobOptions())  # the model's own top_k (3)
    assert len(service.item(default, 0)[1].classes) == 3
