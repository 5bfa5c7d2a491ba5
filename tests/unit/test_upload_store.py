"""The crop store behind /upload: layout, reads, missing crops, bad ids and pruning."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from visionserve.api.uploads import UploadStore
from visionserve.api.wire.upload import new_task_id
from visionserve.core.detections import Detections
from visionserve.errors import ImageTooLargeError, JobNotFoundError
from visionserve.render.annotators import crops


def test_crops_are_stored_per_task_and_read_back(tmp_path: Path) -> None:
    store = UploadStore(tmp_path / "uploads")
    task = new_task_id()
    store.save(task, [b"first", b"second"])
    assert sorted(p.name for p in (tmp_path / "uploads" / task).iterdir()) == ["0.jpg", "1.jpg"]
    assert store.read(task, 1) == b"second"
    with pytest.raises(JobNotFoundError, match="no crop 2"):
        store.read(task, 2)
    with pytest.raises(JobNotFoundError, match="no upload task"):
        store.read("../" + task[3:], 0)


def test_oldest_tasks_beyond_the_limit_are_removed(tmp_path: Path) -> None:
    store = UploadStore(tmp_path, max_tasks=2)
    tasks = [new_task_id() for _ in range(3)]
    for age, task in enumerate(tasks):
        store.save(task, [b"x"])
        os.utime(tmp_path / task, ns=(age * 10**9, age * 10**9))
    store.save(new_task_id(), [b"y"])
    remaining = {p.name for p in tmp_path.iterdir()}
    assert len(remaining) == 2 and tasks[0] not in remaining and tasks[1] not in remaining
    with pytest.raises(JobNotFoundError):
        store.read(tasks[0], 0)


def test_temporary_store_removes_its_folder() -> None:
    store = UploadStore.temporary()
    store.save(new_task_id(), [b"x"])
    assert store.root.is_dir()
    store.remove()
    assert not store.root.exists()
    with pytest.raises(ValueError, match="at least 1"):
        UploadStore(store.root, max_tasks=0)


def test_crops_of_boxes_past_the_frame_edges_keep_their_inside_pixels() -> None:
    frame = np.arange(100 * 80 * 3, dtype=np.uint8).reshape(100, 80, 3)
    found = Detections(
        np.array([[-5, -3, 20, 30], [70, 90, 95, 130]], np.float32), np.array([0.9, 0.8], np.float32), np.array([1, 2])
    )
    first, second = crops(frame, found)
    np.testing.assert_array_equal(first, frame[0:30, 0:20])
    np.testing.assert_array_equal(second, frame[90:100, 70:80])


def test_oldest_tasks_beyond_the_byte_cap_are_removed(tmp_path: Path) -> None:
    store = UploadStore(tmp_path, max_tasks=100, max_bytes=250)
    tasks = [new_task_id() for _ in range(3)]
    for age, task in enumerate(tasks):
        store.save(task, [b"x" * 50, b"y" * 50])
        os.utime(tmp_path / task, ns=(age * 10**9, age * 10**9))
    newest = new_task_id()
    store.save(newest, [b"z" * 100])  # 400 bytes in all: the two oldest tasks go
    assert {p.name for p in tmp_path.iterdir()} == {tasks[2], newest}
    assert store.read(newest, 0) == b"z" * 100
    with pytest.raises(JobNotFoundError):
        store.read(tasks[1], 0)


def test_an_upload_whose_crops_alone_exceed_the_cap_is_refused(tmp_path: Path) -> None:
    store = UploadStore(tmp_path, max_bytes=100)
    kept = new_task_id()
    store.save(kept, [b"x" * 100])
    refused = new_task_id()
    with pytest.raises(ImageTooLargeError, match="101 bytes, more than the store keeps"):
        store.save(refused, [b"y" * 60, b"z" * 41])
    assert {p.name for p in tmp_path.iterdir()} == {kept}
    with pytest.raises(ValueError, match="max_bytes must be at least 1"):
        UploadStore(tmp_path, max_bytes=0)
