"""Job and item states, the transition tables, options and keys: pure values."""

from __future__ import annotations

import pytest

from visionserve.errors import InvalidParameterError, JobNotFoundError, JobStateError
from visionserve.jobs.model import (
    ITEM_TRANSITIONS,
    JOB_TRANSITIONS,
    ItemState,
    JobInput,
    JobOptions,
    JobQuery,
    JobState,
    Progress,
    annotated_key,
    check_job_id,
    check_transition,
    crop_key,
    input_key,
    job_prefix,
    new_job_id,
    sources_of,
)

JOB_ID = "0123456789abcdef0123456789abcdef"


def test_every_state_has_a_row_in_its_table() -> None:
    assert set(JOB_TRANSITIONS) == set(JobState)
    assert set(ITEM_TRANSITIONS) == set(ItemState)


@pytest.mark.parametrize(
    ("current", "target", "allowed"),
    [
        (JobState.QUEUED, JobState.RUNNING, True),
        (JobState.QUEUED, JobState.CANCELLED, True),
        (JobState.RUNNING, JobState.SUCCEEDED, True),
        (JobState.RUNNING, JobState.CANCELLED, True),
        (JobState.QUEUED, JobState.SUCCEEDED, False),
        (JobState.SUCCEEDED, JobState.CANCELLED, False),
        (JobState.CANCELLED, JobState.RUNNING, False),
        (JobState.FAILED, JobState.QUEUED, False),
    ],
)
def test_job_transitions(current: JobState, target: JobState, allowed: bool) -> None:
    if allowed:
        check_transition(JOB_TRANSITIONS, current, target)
    else:
        with pytest.raises(JobStateError, match=f"cannot go from {current.value} to {target.value}"):
            check_transition(JOB_TRANSITIONS, current, target)


def test_terminal_states_are_those_without_exits() -> None:
    assert {s for s in JobState if s.terminal} == {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}
    assert {s for s in ItemState if s.terminal} == {ItemState.DONE, ItemState.FAILED, ItemState.CANCELLED}


def test_sources_of_gives_the_where_clause_of_each_change() -> None:
    assert sources_of(JOB_TRANSITIONS, JobState.RUNNING) == {JobState.QUEUED}
    assert sources_of(JOB_TRANSITIONS, JobState.CANCELLED) == {JobState.QUEUED, JobState.RUNNING}
    assert sources_of(ITEM_TRANSITIONS, ItemState.RUNNING) == {ItemState.PENDING, ItemState.RUNNING}
    assert sources_of(ITEM_TRANSITIONS, ItemState.DONE) == {ItemState.RUNNING}


def test_options_round_trip_and_validate() -> None:
    options = JobOptions(conf=0.5, iou=0.3, classes=(1, 3), max_det=7, crops=True, annotate=False)
    assert JobOptions.from_dict(options.to_dict()) == options
    assert options.predict_options().classes == frozenset({1, 3})
    with pytest.raises(InvalidParameterError, match="conf must be between 0 and 1"):
        JobOptions(conf=1.5)
    with pytest.raises(InvalidParameterError, match="max_det"):
        JobOptions(max_det=0)


def test_an_input_is_bytes_or_a_url() -> None:
    with pytest.raises(InvalidParameterError):
        JobInput("x")
    with pytest.raises(InvalidParameterError):
        JobInput("x", data=b"1", url="http://a/b.jpg")


def test_keys_derive_from_ids_only() -> None:
    job_id = new_job_id()
    assert check_job_id(job_id) == job_id
    assert input_key(JOB_ID, 3) == f"jobs/{JOB_ID}/inputs/000003"
    assert crop_key(JOB_ID, 3, 2) == f"jobs/{JOB_ID}/items/000003/crops/0002.jpg"
    assert annotated_key(JOB_ID, 12) == f"jobs/{JOB_ID}/items/000012/annotated.jpg"
    assert job_prefix(JOB_ID) == f"jobs/{JOB_ID}/"


@pytest.mark.parametrize("bad", ["", "../etc", "0123456789ABCDEF0123456789ABCDEF", JOB_ID + "0", "x" * 32])
def test_malformed_job_ids_are_not_found(bad: str) -> None:
    with pytest.raises(JobNotFoundError):
        input_key(bad, 0)


def test_query_limits() -> None:
    with pytest.raises(InvalidParameterError, match="limit"):
        JobQuery(limit=0)
    with pytest.raises(InvalidParameterError, match="offset"):
        JobQuery(offset=-1)


def test_progress_from_counts() -> None:
    progress = Progress.from_counts({ItemState.DONE: 3, ItemState.FAILED: 1, ItemState.PENDING: 2})
    assert (progress.total, progress.finished, progress.pending, progress.running) == (6, 4, 2, 0)
