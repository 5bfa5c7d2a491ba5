"""Upgrading a jobs database that holds results: the test every supported database must pass.

A subclass provides the ``database_url`` fixture (an empty database); ``tests/unit`` runs it on
SQLite, ``tests/services`` on PostgreSQL. The database is created at revision 0001, given a finished
job with its detections and a failed item through tables reflected from the database itself (so the
rows are those that version wrote), then upgraded to the head revision.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, Table, insert
from tests.jobs_support import Recorder

from visionserve.jobs.config import JobsConfig
from visionserve.jobs.factory import Storage, open_storage
from visionserve.jobs.model import (
    Claim,
    ClassRecord,
    DetectionRecord,
    ItemOutput,
    ItemRecords,
    ItemState,
    ItemTimings,
    JobInput,
    JobOptions,
    JobState,
    new_job_id,
)
from visionserve.jobs.service import JobService
from visionserve.models.repository import ModelRepository
from visionserve.models.spec import Task
from visionserve.render.mask_encoding import MaskFormat
from visionserve.storage.db import Database, head_revision
from visionserve.storage.tables import metadata

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
JOB = "0123456789abcdef0123456789abcdef"
#: The options JSON that revision 0001's code wrote (no top_k, no mask_format).
OLD_OPTIONS = {"conf": 0.5, "iou": None, "classes": None, "max_det": None, "crops": True, "annotate": False}
OLD_DETECTIONS = [(0, "cat", 0.9, (1.0, 2.0, 30.0, 40.0)), (2, "dog", 0.5, (5.5, 6.5, 7.5, 8.5))]


def write_a_finished_job_at_0001(db: Database) -> None:
    with db.begin() as c:
        tables = MetaData()
        jobs, items, detections = (Table(name, tables, autoload_with=c) for name in ("jobs", "job_items", "detections"))
        c.execute(
            insert(jobs),
            [
                {"id": JOB, "state": "succeeded", "model": "old-model", "options": json.dumps(OLD_OPTIONS)}
                | {"total": 2, "webhook_attempts": 0, "created_at": T0, "started_at": T0, "finished_at": T0}
            ],
        )
        item = {"job_id": JOB, "attempt": 1, "finished_at": T0}
        done = {"idx": 0, "state": "done", "source": "a.jpg", "width": 64, "height": 48, "total_ms": 5.0}
        c.execute(insert(items), [item | done | {"detection_count": 2, "crop_count": 2, "annotated": False}])
        failed = {"idx": 1, "state": "failed", "source": "b.jpg", "error": "cannot decode image"}
        c.execute(insert(items), [item | failed | {"detection_count": 0, "crop_count": 0, "annotated": False}])
        rows = [
            {"job_id": JOB, "idx": 0, "k": k, "class_id": c_id, "label": label, "score": score}
            | dict(zip(("x1", "y1", "x2", "y2"), box, strict=True))
            for k, (c_id, label, score, box) in enumerate(OLD_DETECTIONS)
        ]
        c.execute(insert(detections), rows)


class MigrationContract:
    def test_upgrading_from_0001_keeps_finished_jobs_readable(self, database_url: str, tmp_path: Path) -> None:
        old = Database(database_url)
        old.upgrade("0001")
        assert old.revision() == "0001"
        write_a_finished_job_at_0001(old)
        old.close()
        storage = open_storage(JobsConfig(data_dir=tmp_path, database_url=database_url))  # as a server starts
        try:
            assert storage.db.revision() == head_revision() != "0001"
            with storage.db.engine.connect() as connection:
                context = MigrationContext.configure(connection, opts={"compare_type": True})
                assert compare_metadata(context, metadata) == []
            service = JobService(storage.store, storage.artifacts, ModelRepository.scan(None), Recorder())
            self.check_old_results(service)
            self.check_new_results(storage)
        finally:
            storage.db.close()

    @staticmethod
    def check_old_results(service: JobService) -> None:
        job = service.get(JOB)
        assert (job.state, job.task, job.model) == (JobState.SUCCEEDED, Task.DETECT, "old-model")
        assert (job.progress.done, job.progress.failed) == (1, 1)
        assert (job.options.conf, job.options.crops, job.options.top_k) == (0.5, True, None)
        assert job.options.mask_format is MaskFormat.RLE
        item, found = service.item(JOB, 0)
        assert (item.state, item.detection_count, item.crop_count) == (ItemState.DONE, 2, 2)
        assert found == ItemRecords(detections=tuple(DetectionRecord(*row) for row in OLD_DETECTIONS))
        document = service.results(JOB)
        assert document["job"]["task"] == "detect"
        first, failed = document["items"]
        assert first["detections"][1] == {
            "label": "dog",
            "class_id": 2,
            "score": 0.5,
            "box": {"x1": 5.5, "y1": 6.5, "x2": 7.5, "y2": 8.5},
        }
        assert failed["detections"] == [] and failed["error"] == "cannot decode image"
        coco = service.coco(JOB)
        assert [a["bbox"] for a in coco["annotations"]] == [[1.0, 2.0, 29.0, 38.0], [5.5, 6.5, 2.0, 2.0]]
        assert all("segmentation" not in a and "keypoints" not in a for a in coco["annotations"])

    @staticmethod
    def check_new_results(storage: Storage) -> None:
        """Jobs of the new kinds are stored in the upgraded database, and removed with their job."""
        store = storage.store
        job_id = new_job_id()
        store.create(job_id, "cls", JobOptions(top_k=2), [JobInput("c.png", data=b"x")], None, T0, Task.CLASSIFY)
        claim = store.claim(job_id, 0, "w", 3, T0)
        assert isinstance(claim, Claim)
        ranked = (ClassRecord(1, "dog", 0.6), ClassRecord(3, "fish", 0.25))
        assert store.commit(claim, ItemOutput(8, 8, (), ItemTimings(), classes=ranked), "w", T0)
        assert store.classes(job_id) == {0: list(ranked)}
        store.delete(job_id)
        store.delete(JOB)
        assert store.classes(job_id) == {} and store.detections(JOB) == {}
