"""Identifier checks match the whole text: a trailing newline (which ``$`` lets through) is refused."""

from __future__ import annotations

import pytest

from visionserve.api.wire.upload import crop_index, is_task_id
from visionserve.errors import JobNotFoundError, StorageError
from visionserve.jobs.model import check_job_id
from visionserve.storage.artifacts import check_artifact_key

HEX = "a" * 32


def test_ids_with_a_trailing_newline_are_refused() -> None:
    assert check_job_id(HEX) == HEX
    with pytest.raises(JobNotFoundError):
        check_job_id(HEX + "\n")
    assert is_task_id(HEX) and not is_task_id(HEX + "\n")
    assert crop_index("3.jpg") == 3 and crop_index("3.jpg\n") is None
    assert check_artifact_key("jobs/abc/0.jpg") == "jobs/abc/0.jpg"
    with pytest.raises((StorageError, JobNotFoundError, ValueError)):
        check_artifact_key("jobs/abc\n")


def test_unknown_model_errors_do_not_echo_huge_names_or_list_every_model() -> None:
    from visionserve.models.repository import unknown_model

    message = str(unknown_model("x" * 1_000_000, [f"m{i:03d}" for i in range(500)]))
    assert len(message) < 400
    assert "m019" in message and "m020" not in message and "480 more" in message
