"""Processing one item: claim, read the input, detect, write artifacts, commit, and end the job.

The same :class:`ItemProcessor` runs in the embedded pool's threads and in Celery worker processes.
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

from visionserve.core.detections import Detections
from visionserve.core.images import DEFAULT_MAX_PIXELS
from visionserve.errors import (
    ConfigError,
    InferenceError,
    InputError,
    JobNotFoundError,
    ModelLoadError,
    ModelNotFoundError,
    StorageError,
)
from visionserve.jobs.devices import spec_on_device
from visionserve.jobs.fetch import UrlFetcher
from visionserve.jobs.model import (
    Claim,
    ClaimRefusal,
    DetectionRecord,
    ItemOutput,
    ItemTimings,
    Job,
    annotated_key,
    crop_key,
    input_key,
)
from visionserve.jobs.store import ArtifactStore, JobStore
from visionserve.models.loading import load_model
from visionserve.models.repository import ModelRepository
from visionserve.pipeline import Predictor
from visionserve.render.annotators import crops, default_annotators, render
from visionserve.serving.instances import decode_for_model, decode_with_source
from visionserve.types import BGRImage

log = logging.getLogger(__name__)

_JPEG_QUALITY = 90


def utc_now() -> datetime:
    return datetime.now(UTC)


class ModelCache:
    """Models loaded once and kept, by name, for one thread or one worker process (a predictor serves
    one caller at a time). ``load(spec)`` defaults to :func:`load_model`."""

    def __init__(
        self,
        repository: ModelRepository,
        device: str = "cpu",
        load: Callable[..., Predictor] = load_model,
    ) -> None:
        self._repository = repository
        self._device = device
        self._load = load
        self._models: dict[str, Predictor] = {}

    def get(self, name: str) -> Predictor:
        """The model called ``name`` (a repository name, never a path). Raises what
        :meth:`ModelRepository.get` and ``load`` raise."""
        if name not in self._models:
            spec = spec_on_device(self._repository.get(name), self._device)
            self._models[name] = self._load(spec)
            log.info("loaded model %s on %s", name, self._device)
        return self._models[name]

    def close(self) -> None:
        for model in self._models.values():
            model.close()
        self._models.clear()


class Outcome(StrEnum):
    """What :meth:`ItemProcessor.process` did with one delivery of an item."""

    DONE = "done"
    FAILED = "failed"  # the item's input or inference failed; recorded on the item
    STALE = "stale"  # processed, but a later claim or a cancel made this result void
    JOB_FAILED = "job_failed"  # the model could not be loaded; the whole job failed
    SKIPPED = "skipped"  # not claimed (see ClaimRefusal)


@dataclass(frozen=True)
class ProcessorConfig:
    worker: str
    max_attempts: int = 3
    max_pixels: int = DEFAULT_MAX_PIXELS


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
        models: ModelCache,
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

    def process(self, job_id: str, index: int) -> Outcome:
        """Process item ``index`` of ``job_id`` if it can be claimed. Raises :class:`StorageError` when
        the database or artifact store fails (the item stays claimed, to be redelivered)."""
        claim = self._store.claim(job_id, index, self._config.worker, self._config.max_attempts, self._clock())
        if isinstance(claim, ClaimRefusal):
            log.debug("item %s/%d not claimed: %s", job_id, index, claim.value)
            if claim is ClaimRefusal.EXHAUSTED:
                self._end_if_complete(job_id)
            return Outcome.SKIPPED
        try:
            model = self._models.get(claim.model)
        except (ModelNotFoundError, ModelLoadError, ConfigError) as exc:
            return self._fail_job(job_id, f"cannot load model {claim.model!r}: {exc}")
        except Exception as exc:  # an untranslated load error must not leave the item claimed forever
            log.exception("model %s of job %s failed to load unexpectedly", claim.model, job_id)
            return self._fail_job(job_id, f"cannot load model {claim.model!r}: {type(exc).__name__}: {exc}")
        try:
            output = self._run(claim, model)
        except StorageError:
            raise
        except (InputError, InferenceError, JobNotFoundError) as exc:
            return self._fail(claim, str(exc))
        except Exception as exc:  # an untranslated runtime error must not leave the item claimed forever
            log.exception("item %s/%d failed unexpectedly", job_id, index)
            return self._fail(claim, f"internal error: {type(exc).__name__}: {exc}")
        committed = self._store.commit(claim, output, self._config.worker, self._clock())
        self._end_if_complete(job_id)
        return Outcome.DONE if committed else Outcome.STALE

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

    def _run(self, claim: Claim, model: Predictor) -> ItemOutput:
        start = time.perf_counter()
        data = self._read(claim)
        fetched = time.perf_counter()
        options = claim.options
        keep_pixels = options.crops or options.annotate
        # The model sees the pixels it sees on every route; crops come from the full-size image.
        max_pixels, target = self._config.max_pixels, model.spec.input
        if keep_pixels:
            decoded, source = decode_with_source(data, max_pixels, target)
        else:
            decoded = decode_for_model(data, max_pixels, target)
            source = decoded.image
        decoded_at = time.perf_counter()
        (found,) = model.infer([decoded.image], options.predict_options()).detections
        inferred = time.perf_counter()
        found = found.sorted_by_confidence()
        sx, sy = decoded.scale
        if (sx, sy) != (1.0, 1.0):
            found = found.scaled(sx, sy)
        crop_count = self._write_artifacts(claim, source, found, model) if keep_pixels else 0
        records = tuple(
            DetectionRecord(int(c), model.labels.name(int(c)), float(s), (float(x1), float(y1), float(x2), float(y2)))
            for (x1, y1, x2, y2), s, c in zip(found.xyxy, found.confidence, found.class_id, strict=True)
        )
        timings = ItemTimings(
            fetch_ms=(fetched - start) * 1000.0,
            decode_ms=(decoded_at - fetched) * 1000.0,
            inference_ms=(inferred - decoded_at) * 1000.0,
            total_ms=(time.perf_counter() - start) * 1000.0,
        )
        return ItemOutput(decoded.width, decoded.height, records, timings, crop_count, options.annotate)

    def _write_artifacts(self, claim: Claim, image: BGRImage, found: Detections, model: Predictor) -> int:
        """Crops (highest score first) and the annotated copy, as the job asked; the number of crops."""
        count = 0
        if claim.options.crops:
            for k, crop in enumerate(crops(image, found)):
                self._artifacts.put(crop_key(claim.job_id, claim.index, k), encode_jpeg(crop))
                count += 1
        if claim.options.annotate:
            annotated = render(image, found, default_annotators(model.labels))
            self._artifacts.put(annotated_key(claim.job_id, claim.index), encode_jpeg(annotated))
        return count

    def close(self) -> None:
        """Close the models and the URL fetcher (its HTTP client)."""
        self._models.close()
        if self._fetcher is not None:
            self._fetcher.close()
