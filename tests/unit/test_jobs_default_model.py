"""A job on the embedded pool with the real default model and real photos."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from tests.conftest import PHOTOS, encode
from tests.jobs_support import wait_for

from visionserve.jobs.config import JobsConfig
from visionserve.jobs.factory import build_service
from visionserve.jobs.model import JobInput, JobOptions, JobState, NewJob
from visionserve.models.repository import ModelRepository
from visionserve.types import BGRImage


def test_the_default_model_finds_what_is_in_the_photos(tmp_path: Path, photos: dict[str, BGRImage]) -> None:
    service = build_service(JobsConfig(data_dir=tmp_path), ModelRepository.scan(None))
    service.start()
    try:
        inputs = [JobInput(f"{name}.jpg", data=encode(photos[name])) for name in PHOTOS]
        job = service.submit(NewJob(None, inputs, JobOptions(annotate=True, crops=True)))
        wait_for(lambda: service.get(job.id).state.terminal, 60)
        assert service.get(job.id).state is JobState.SUCCEEDED
        for index, (name, label) in enumerate(PHOTOS.items()):
            item, records = service.item(job.id, index)
            found = records.detections
            height, width = photos[name].shape[:2]
            assert (item.width, item.height) == (width, height)
            assert label in [d.label for d in found]
            assert all(0 <= d.box[0] < d.box[2] <= width and 0 <= d.box[1] < d.box[3] <= height for d in found)
            annotated = cv2.imdecode(np.frombuffer(service.annotated(job.id, index), np.uint8), cv2.IMREAD_COLOR)
            assert annotated.shape == photos[name].shape
            assert item.crop_count == len(found)
    finally:
        service.stop()
