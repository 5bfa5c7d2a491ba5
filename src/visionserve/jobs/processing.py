"""Processing one item: claim, read the input, detect, write artifacts, commit, and end the job.

The same :class:`ItemProcessor` runs in the embedded pool's threads (on the server's served models, see
:class:`~visionserve.jobs.detectors.ServedModels`) and in Celery worker processes (on their own models,
:class:`~visionserve.jobs.detectors.ModelCache`).
Exactly once: artifacts are written under keys derived from the item's ids (a second write replaces
the first with the same bytes), and the result is committed only by the holder of the item's latest
claim, in one transaction with the item's state. A worker killed anywhere in between leaves the item
claimed; its redelivery re-claims it and does it again, and at most one commit is ever stored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

import cv2

from visionserve.core.classifications import Classifications
from visionserve.errors import (
    ConfigError,
    InferenceError,
    InputError,
    JobNotFoundError,
    JobStateError,
    ModelLoadError,
    ModelNotFoundError,
    ModelNotReadyError,
    OverloadedError,
    ShuttingDownError,
    StorageError,
)
from visionserve.jobs.detectors import Detected, ItemDetector
from visionserve.jobs.evaluation_jobs import EvaluationProcessor
from visionserve.jobs.fetch import UrlFetcher
from visionserve.jobs.model import (
    Claim,
    ClaimRefusal,
    ItemOutput,
    ItemTimings,
    Job,
    annotated_key,
    crop_key,
    input_key,
)
from visionserve.jobs.records import item_records
from visionserve.jobs.store import ArtifactStore, JobStore
from visionserve.jobs.video import VideoProcessor
from visionserve.render.annotators import annotators_for, crops, render
from visionserve.types import BGRImage

log = logging.getLogger(__name__)

_JPEG_QUALITY = 90


def utc_now() -> datetime:
    return datetime.now(UTC)


class Outcome(StrEnum):
    """What :meth:`ItemProcessor.process` did with one delivery of an item."""

    DONE = "done"
    FAILED = "failed"  # the item's input or inference failed; recorded on the item
    STALE = "stale"  # processed, but a later claim or a cancel made this result void
    JOB_FAILED = "job_failed"  # the model could not be loaded; the whole job failed
    SKIPPED = "skipped"  # not claimed (see ClaimRefusal)


@dataclass(frozen=True)
class ProcessorConfig:
    """``max_video_frames`` caps the frames read from one video (submission checks it too)."""

    worker: str
    max_attempts: int = 3
    max_video_frames: int = 108_000


def encode_jpeg(image: BGRImage) -> bytes:
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY])
    if not ok:
        raise InferenceError(f"cannot encode a {image.shape} image as JPEG")
    return bytes(buffer.tobytes())


class ItemProcessor:
    """Processes items one at a time. ``on_ended(job)`` is called once per job, by the processor whose
    commit ended it (it sends the webhook)."""

    def __init__(
        self,
        store: JobStore,
        artifacts: ArtifactStore,
        models: ItemDetector,
        config: ProcessorConfig,
        on_ended: Callable[[Job], None],
        fetcher: UrlFetcher | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._store = store
        self._artifacts = artifacts
        self._models = models
        self._config = config
        self._on_ended = on_ended
        self._fetcher = fetcher
        self._clock = clock
        self._video = VideoProcessor(artifacts, models, config.max_video_frames, active=self._active)
        self._evaluation = EvaluationProcessor(artifacts, models)

    def process(self, job_id: str, index: int) -> Outcome:
        """Process item ``index`` of ``job_id`` if it can be claimed. Raises :class:`StorageError` when
        the database or artifact store fails, and :class:`ShuttingDownError` or :class:`OverloadedError`
        when the server cannot run it now (the item stays claimed, to be redelivered)."""
        claim = self._store.claim(job_id, index, self._config.worker, self._config.max_attempts, self._clock())
        if isinstance(claim, ClaimRefusal):
            log.debug("item %s/%d not claimed: %s", job_id, index, claim.value)
            if claim is ClaimRefusal.EXHAUSTED:
                self._end_if_complete(job_id)
            return Outcome.SKIPPED
        try:
            self._models.prepare(claim.model)
        except (ModelNotFoundError, ModelLoadError, ConfigError, ModelNotReadyError) as exc:
            return self._fail_job(job_id, f"cannot load model {claim.model!r}: {exc}")
        except Exception as exc:  # an untranslated load error must not leave the item claimed forever
            log.exception("model %s of job %s failed to load unexpectedly", claim.model, job_id)
            return self._fail_job(job_id, f"cannot load model {claim.model!r}: {type(exc).__name__}: {exc}")
        try:
            output = self._run(claim)
        except (StorageError, ShuttingDownError, OverloadedError):
            raise
        except JobStateError:  # the job was cancelled or failed while its video was processed
            return Outcome.STALE
        except (InputError, InferenceError, JobNotFoundError) as exc:
            return self._fail(claim, str(exc))
        except Exception as exc:  # an untranslated runtime error must not leave the item claimed forever
            log.exception("item %s/%d failed unexpectedly", job_id, index)
            return self._fail(claim, f"internal error: {type(exc).__name__}: {exc}")
        committed = self._store.commit(claim, output, self._config.worker, self._clock())
        self._end_if_complete(job_id)
        return Outcome.DONE if committed else Outcome.STALE

    def _active(self, job_id: str) -> bool:
        """Whether ``job_id`` is still queued or running (a long video stops early when it is not)."""
        return not self._store.get(job_id).state.terminal

    def _fail_job(self, job_id: str, error: str) -> Outcome:
        ended = self._store.fail_job(job_id, error, self._clock())
        if ended is not None:
            self._on_ended(ended)
        return Outcome.JOB_FAILED

    def _fail(self, claim: Claim, error: str) -> Outcome:
        failed = self._store.fail_item(claim, error, self._clock())
        self._end_if_complete(claim.job_id)
        return Outcome.FAILED if failed else Outcome.STALE

    def _end_if_complete(self, job_id: str) -> None:
        ended = self._store.finish_if_complete(job_id, self._clock())
        if ended is not None:
            self._on_ended(ended)

    def _read(self, claim: Claim) -> bytes:
        if claim.url is None:
            return self._artifacts.get(input_key(claim.job_id, claim.index))
        if self._fetcher is None:
            raise InputError("image URLs are turned off on this worker")
        return self._fetcher.fetch(claim.url)

    def _run(self, claim: Claim) -> ItemOutput:
        start = time.perf_counter()
        data = self._read(claim)
        fetched = time.perf_counter()
        if claim.options.video is not None:
            return self._video.run(claim, data, (fetched - start) * 1000.0)
        if claim.options.evaluate is not None:
            return self._evaluation.run(claim, data, (fetched - start) * 1000.0)
        options = claim.options
        keep_pixels = options.crops or options.annotate
        detected = self._models.detect(claim.model, data, options.predict_options(), keep_pixels)
        records = item_records(detected.prediction, detected.labels, (detected.width, detected.height))
        crop_count = self._write_artifacts(claim, detected)
        timings = ItemTimings(
            fetch_ms=(fetched - start) * 1000.0,
            decode_ms=detected.decode_ms,
            inference_ms=detected.inference_ms,
            total_ms=(time.perf_counter() - start) * 1000.0,
        )
        size = (detected.width, detected.height)
        return ItemOutput(*size, records.detections, timings, crop_count, options.annotate, records.classes)

    def _write_artifacts(self, claim: Claim, detected: Detected) -> int:
        """Crops (box tasks only, highest score first: the order of the records) and the annotated
        copy (masks, keypoints or the class banner drawn too), as the job asked; the number of crops."""
        image, prediction = detected.source, detected.prediction
        if image is None:
            return 0
        count = 0
        if claim.options.crops and not isinstance(prediction, Classifications):
            for k, crop in enumerate(crops(image, prediction.sorted_by_confidence())):
                self._artifacts.put(crop_key(claim.job_id, claim.index, k), encode_jpeg(crop))
                count += 1
        if claim.options.annotate:
            annotated = render(image, prediction, annotators_for(detected.labels))
            self._artifacts.put(annotated_key(claim.job_id, claim.index), encode_jpeg(annotated))
        return count

    def close(self) -> None:
        """Close the models and the URL fetcher (its HTTP client)."""
        self._models.close()
        if self._fetcher is not None:
            self._fetcher.close()
