"""A job is data: states, the one table of allowed transitions, and the values that jobs and items are.

Nothing here does I/O. The lifecycle (submit, claim, commit, finish, cancel) lives in
:mod:`visionserve.jobs.service` and :mod:`visionserve.jobs.processing`; the store applies every state
change as a compare-and-set whose allowed *from* states come from :data:`JOB_TRANSITIONS` and
:data:`ITEM_TRANSITIONS` (see :func:`sources_of`), so the tables below are the only place where the
state machines are written down.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Final, Literal, TypeVar

from visionserve.errors import InvalidParameterError, JobNotFoundError, JobStateError
from visionserve.jobs.evaluation_model import EvaluateOptions
from visionserve.jobs.video_model import VideoOptions
from visionserve.models.spec import Task
from visionserve.pipeline import PredictOptions
from visionserve.render.mask_encoding import MaskFormat


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return not JOB_TRANSITIONS[self]


class ItemState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return not ITEM_TRANSITIONS[self]


class WebhookState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


#: The job state machine. A job is queued until a worker claims its first item; it ends succeeded
#: (every item finished, at least one without error), failed (the model could not be loaded, or every
#: item failed) or cancelled.
JOB_TRANSITIONS: Final[Mapping[JobState, frozenset[JobState]]] = {
    JobState.QUEUED: frozenset({JobState.RUNNING, JobState.FAILED, JobState.CANCELLED}),
    JobState.RUNNING: frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}),
    JobState.SUCCEEDED: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.CANCELLED: frozenset(),
}

#: The item state machine. RUNNING -> RUNNING is a re-claim: the item was redelivered because the
#: worker that held it was lost (SIGKILL, restart). Each claim bumps the item's attempt number and only
#: the holder of the latest attempt can commit, so an item's result is committed exactly once.
ITEM_TRANSITIONS: Final[Mapping[ItemState, frozenset[ItemState]]] = {
    ItemState.PENDING: frozenset({ItemState.RUNNING, ItemState.CANCELLED}),
    ItemState.RUNNING: frozenset({ItemState.RUNNING, ItemState.DONE, ItemState.FAILED, ItemState.CANCELLED}),
    ItemState.DONE: frozenset(),
    ItemState.FAILED: frozenset(),
    ItemState.CANCELLED: frozenset(),
}

S = TypeVar("S", JobState, ItemState)


def sources_of(table: Mapping[S, frozenset[S]], target: S) -> frozenset[S]:
    """The states from which ``table`` allows a change to ``target`` (the WHERE of a compare-and-set)."""
    return frozenset(state for state, targets in table.items() if target in targets)


def check_transition(table: Mapping[S, frozenset[S]], current: S, target: S) -> None:
    """Raise :class:`JobStateError` unless ``table`` allows ``current -> target``."""
    if target not in table[current]:
        raise JobStateError(f"cannot go from {current.value} to {target.value}")


_JOB_ID = re.compile(r"[0-9a-f]{32}")


def new_job_id() -> str:
    """A fresh job id: 32 lowercase hex digits."""
    return uuid.uuid4().hex


def check_job_id(job_id: str) -> str:
    """``job_id`` if it has the form of a job id, else :class:`JobNotFoundError` (ids never reach a
    path or a query unchecked)."""
    if not _JOB_ID.fullmatch(job_id):
        raise JobNotFoundError(f"no job {job_id!r}")
    return job_id


# Artifact keys are derived from ids only, never from user-supplied names.
def job_prefix(job_id: str) -> str:
    return f"jobs/{check_job_id(job_id)}/"


def input_key(job_id: str, index: int) -> str:
    """Where the uploaded bytes of item ``index`` are kept until the job is removed."""
    return f"{job_prefix(job_id)}inputs/{index:06d}"


def crop_key(job_id: str, index: int, k: int) -> str:
    """The JPEG crop of detection ``k`` (highest score first) of item ``index``."""
    return f"{job_prefix(job_id)}items/{index:06d}/crops/{k:04d}.jpg"


def annotated_key(job_id: str, index: int) -> str:
    """The annotated JPEG copy of item ``index``."""
    return f"{job_prefix(job_id)}items/{index:06d}/annotated.jpg"


@dataclass(frozen=True)
class JobOptions:
    """Prediction options of a job (None keeps the model's default), which artifacts to keep, and how
    results show masks (``mask_format``: stored masks are always RLE; this only changes the view).
    ``video`` makes it a recorded-video job (its one item is a video; see :mod:`visionserve.jobs.video`),
    ``evaluate`` an evaluation job (its one item is a zip archive; see :mod:`visionserve.jobs.evaluation_jobs`).

    Raises :class:`InvalidParameterError` for out-of-range thresholds.
    """

    conf: float | Literal["best"] | None = None
    iou: float | None = None
    classes: tuple[int, ...] | None = None
    max_det: int | None = None
    crops: bool = False
    annotate: bool = False
    top_k: int | None = None
    mask_format: MaskFormat = MaskFormat.RLE
    video: VideoOptions | None = None
    evaluate: EvaluateOptions | None = None

    def __post_init__(self) -> None:
        self.predict_options()

    def predict_options(self) -> PredictOptions:
        classes = None if self.classes is None else frozenset(self.classes)
        return PredictOptions(conf=self.conf, iou=self.iou, classes=classes, max_det=self.max_det, top_k=self.top_k)

    def to_dict(self) -> dict[str, Any]:
        return {
            "conf": self.conf,
            "iou": self.iou,
            "classes": None if self.classes is None else list(self.classes),
            "max_det": self.max_det,
            "top_k": self.top_k,
            "mask_format": self.mask_format.value,
            "crops": self.crops,
            "annotate": self.annotate,
            "video": None if self.video is None else self.video.to_dict(),
            "evaluate": None if self.evaluate is None else self.evaluate.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobOptions:
        """The options of :meth:`to_dict`; keys missing from jobs stored by older versions keep
        their defaults."""
        classes = data.get("classes")
        video, evaluate = data.get("video"), data.get("evaluate")
        return cls(
            conf=data.get("conf"),
            iou=data.get("iou"),
            classes=None if classes is None else tuple(int(c) for c in classes),
            max_det=data.get("max_det"),
            crops=bool(data.get("crops", False)),
            annotate=bool(data.get("annotate", False)),
            top_k=data.get("top_k"),
            mask_format=MaskFormat(data.get("mask_format", MaskFormat.RLE.value)),
            video=None if video is None else VideoOptions.from_dict(video),
            evaluate=None if evaluate is None else EvaluateOptions.from_dict(evaluate),
        )


@dataclass(frozen=True)
class JobInput:
    """One image of a job: uploaded ``data``, a ``read()`` that returns the bytes when the job is
    stored (an upload spooled to disk, read one at a time), or a ``url`` to fetch. ``size`` is the
    declared byte size of what ``read`` returns, checked before anything is stored. ``name`` (a file
    name or the URL) is only shown back to the user."""

    name: str
    data: bytes | None = None
    url: str | None = None
    read: Callable[[], bytes] | None = field(default=None, compare=False)
    size: int | None = None

    def __post_init__(self) -> None:
        if sum(source is not None for source in (self.data, self.url, self.read)) != 1:
            raise InvalidParameterError("a job input is either image bytes or a URL")

    @property
    def declared_size(self) -> int | None:
        return len(self.data) if self.data is not None else self.size


@dataclass(frozen=True)
class NewJob:
    """What a caller asks for (``model`` None: the default model); validated by the service before
    anything is stored."""

    model: str | None
    inputs: Sequence[JobInput]
    options: JobOptions = JobOptions()
    webhook_url: str | None = None


@dataclass(frozen=True)
class Progress:
    """Item counts by state."""

    total: int = 0
    pending: int = 0
    running: int = 0
    done: int = 0
    failed: int = 0
    cancelled: int = 0

    @property
    def finished(self) -> int:
        return self.done + self.failed + self.cancelled

    @classmethod
    def from_counts(cls, counts: Mapping[ItemState, int]) -> Progress:
        return cls(total=sum(counts.values()), **{state.value: counts.get(state, 0) for state in ItemState})


@dataclass(frozen=True)
class Job:
    """The status row of a job with its progress; results live apart, in items, detections and
    classifications. ``task`` is its model's task when it was submitted (``detect`` for jobs stored
    before tasks were: they hold boxes only)."""

    id: str
    state: JobState
    model: str
    options: JobOptions
    progress: Progress
    created_at: datetime
    task: Task = Task.DETECT
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    webhook_url: str | None = None
    webhook_state: WebhookState | None = None
    webhook_attempts: int = 0


@dataclass(frozen=True)
class ItemTimings:
    """Milliseconds spent on one item: reading its input, decoding, inference, and in all."""

    fetch_ms: float = 0.0
    decode_ms: float = 0.0
    inference_ms: float = 0.0
    total_ms: float = 0.0


@dataclass(frozen=True)
class MaskRle:
    """A mask as COCO compressed RLE over the whole ``height x width`` source image (exact, and
    compact: a few bytes per boundary row)."""

    height: int
    width: int
    counts: str

    def to_coco(self) -> dict[str, Any]:
        """``{"size": [height, width], "counts": str}``, as ``pycocotools.mask.decode`` reads it."""
        return {"size": [self.height, self.width], "counts": self.counts}

    @classmethod
    def from_coco(cls, encoded: Mapping[str, Any]) -> MaskRle:
        height, width = encoded["size"]
        return cls(int(height), int(width), str(encoded["counts"]))


#: One keypoint as stored: ``(x, y, score)`` in source pixels; its name is the model's.
StoredKeypoint = tuple[float, float, float]


@dataclass(frozen=True)
class DetectionRecord:
    """One detection as stored: box ``(x1, y1, x2, y2)`` in source pixels, the instance ``mask`` of
    segment models and the ``keypoints`` (in the model's keypoint order) of pose models."""

    class_id: int
    label: str
    score: float
    box: tuple[float, float, float, float]
    mask: MaskRle | None = None
    keypoints: tuple[StoredKeypoint, ...] | None = None


@dataclass(frozen=True)
class ClassRecord:
    """One of the top classes of an image, as stored (rank = position, highest score first)."""

    class_id: int
    label: str
    score: float


@dataclass(frozen=True)
class ItemRecords:
    """The stored results of one item: ``detections`` (box tasks) or ``classes`` (classify), highest
    score first."""

    detections: tuple[DetectionRecord, ...] = ()
    classes: tuple[ClassRecord, ...] = ()


@dataclass(frozen=True)
class ItemOutput:
    """What processing an item produced; committed in one transaction with the item's state.
    ``detections`` for box tasks, ``classes`` for classifiers."""

    width: int
    height: int
    detections: tuple[DetectionRecord, ...]
    timings: ItemTimings
    crop_count: int = 0
    annotated: bool = False
    classes: tuple[ClassRecord, ...] = ()


@dataclass(frozen=True)
class Item:
    """One image of a job and where it stands."""

    job_id: str
    index: int
    state: ItemState
    source: str
    attempts: int = 0
    worker: str | None = None
    error: str | None = None
    width: int | None = None
    height: int | None = None
    timings: ItemTimings | None = None
    detection_count: int = 0
    crop_count: int = 0
    annotated: bool = False
    finished_at: datetime | None = None


@dataclass(frozen=True)
class Claim:
    """The right to process one item: only the holder of ``attempt`` may commit its result."""

    job_id: str
    index: int
    attempt: int
    model: str
    options: JobOptions
    url: str | None


class ClaimRefusal(StrEnum):
    """Why an item was not handed out."""

    FINISHED = "finished"  # already done, failed or cancelled: a redelivered duplicate
    JOB_ENDED = "job_ended"  # the job was cancelled or failed meanwhile
    EXHAUSTED = "exhausted"  # lost with its worker too many times; now failed
    TAKEN = "taken"  # another delivery of the same item claimed it at the same moment


@dataclass(frozen=True)
class JobQuery:
    """Filters and one page of ``GET /v1/jobs``, newest first."""

    state: JobState | None = None
    model: str | None = None
    limit: int = 50
    offset: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= 1000:
            raise InvalidParameterError(f"limit must be between 1 and 1000, got {self.limit}")
        if self.offset < 0:
            raise InvalidParameterError(f"offset must be at least 0, got {self.offset}")


@dataclass(frozen=True)
class JobPage:
    jobs: list[Job]
    total: int
    query: JobQuery = field(default_factory=JobQuery)
