"""Evaluation jobs (``POST /v1/models/{name}/evaluate``): one item, a zip archive of images and their
labels (see :mod:`visionserve.evaluation.archive`), evaluated on the served model like
``visionserve eval`` does offline. Its artifacts:

- ``evaluation/report.json``: the report (as ``visionserve eval --json`` prints it), with ``plots``
  listing the PR-curve images;
- ``evaluation/pr-<k>.png``: the precision-recall curve of the ``k``-th class of the report
  (box models only);
- ``evaluation/detections.json``: the detections as COCO results against the set's ids.

Every key derives from the job id, so a redelivered item rewrites the same artifacts.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from visionserve.errors import InvalidParameterError, JobNotFoundError
from visionserve.evaluation.archive import ArchiveLimits, extract_archive, locate_set
from visionserve.evaluation.classify_sets import ClassifySet
from visionserve.evaluation.evaluate import Evaluation, configured_conf, evaluate_boxes, evaluate_classes
from visionserve.evaluation.inputs import guess_format, read_set
from visionserve.evaluation.plots import pr_curve_png
from visionserve.evaluation.runner import Infer, eval_options
from visionserve.jobs.detectors import ItemDetector
from visionserve.jobs.evaluation_model import EvaluateOptions
from visionserve.jobs.model import Claim, ItemOutput, ItemTimings, Job, check_job_id, job_prefix
from visionserve.jobs.store import ArtifactStore

API_PREFIX = "/v1/jobs"


def evaluation_key(job_id: str, name: str) -> str:
    """Where artifact ``name`` of an evaluation job is kept."""
    return f"{job_prefix(job_id)}evaluation/{name}"


class EvaluationProcessor:
    """Runs an evaluation item on ``models`` (the served models in a server, a worker's own in Celery)."""

    def __init__(self, artifacts: ArtifactStore, models: ItemDetector, limits: ArchiveLimits | None = None) -> None:
        self._artifacts = artifacts
        self._models = models
        self._limits = limits or ArchiveLimits()

    def run(self, claim: Claim, data: bytes, fetch_ms: float) -> ItemOutput:
        """Extract, evaluate, store the artifacts; raises :class:`~visionserve.errors.DatasetError` (the
        item fails with its message) or what the model raises."""
        started = time.perf_counter()
        options = claim.options.evaluate or EvaluateOptions()
        with tempfile.TemporaryDirectory(prefix="visionserve-eval-") as folder:
            extract_archive(data, Path(folder), self._limits)
            evaluation = self._evaluate(claim.model, Path(folder), options)
        self._store(claim.job_id, evaluation)
        total_ms = (time.perf_counter() - started) * 1000.0 + fetch_ms
        return ItemOutput(0, 0, (), ItemTimings(fetch_ms=fetch_ms, total_ms=total_ms))

    def _evaluate(self, model: str, root: Path, options: EvaluateOptions) -> Evaluation:
        spec, labels = self._models.describe(model)
        images, annotations = locate_set(root)
        fmt = options.format or guess_format(annotations, spec.task)
        labelled = read_set(fmt, images, annotations, spec.task)
        infer = self._infer(model, eval_options(spec))
        if isinstance(labelled, ClassifySet):
            return evaluate_classes(spec, labels, labelled, images, infer, options.skip_unknown)
        conf = configured_conf(spec, labels)
        return evaluate_boxes(spec, labels, labelled, images, infer, conf, options.skip_unknown)

    def _infer(self, model: str, options: Any) -> Infer:
        def infer(data: bytes) -> Any:
            detected = self._models.detect(model, data, options, False)
            return detected.prediction, detected.width, detected.height

        return infer

    def _store(self, job_id: str, evaluation: Evaluation) -> None:
        report = dict(evaluation.report)
        plots = []
        ap50 = {row["label"]: row.get("ap50") for row in report.get("classes", [])}
        for k, (label, curve) in enumerate(sorted(evaluation.curves.items())):
            name = f"pr-{k}.png"
            self._artifacts.put(evaluation_key(job_id, name), pr_curve_png(label, curve, ap50.get(label)))
            plots.append({"label": label, "url": f"{API_PREFIX}/{job_id}/evaluation/plots/{k}"})
        report["plots"] = plots
        self._artifacts.put(evaluation_key(job_id, "detections.json"), json.dumps(evaluation.results).encode())
        self._artifacts.put(evaluation_key(job_id, "report.json"), json.dumps(report).encode())


class EvaluationJobs:
    """The service side: checks at submission, and the report and plots read back."""

    def __init__(self, artifacts: ArtifactStore) -> None:
        self._artifacts = artifacts

    @staticmethod
    def check_inputs(count: int, has_url: bool) -> None:
        if count != 1 or has_url:
            raise InvalidParameterError("an evaluation job takes exactly one uploaded zip archive (field 'archive')")

    def report(self, job: Job) -> dict[str, Any]:
        """The report of a finished evaluation job; :class:`JobNotFoundError` when the job is not one
        or has no report (yet, or its archive failed: see the job's errors)."""
        if job.options.evaluate is None:
            raise JobNotFoundError(f"job {job.id} is not an evaluation job")
        document: dict[str, Any] = json.loads(self._artifacts.get(evaluation_key(check_job_id(job.id), "report.json")))
        return document

    def status(self, job: Job) -> dict[str, Any] | None:
        """The report once there is one, ``{}`` before (None for other jobs)."""
        if job.options.evaluate is None:
            return None
        try:
            return self.report(job)
        except JobNotFoundError:
            return {}

    def plot(self, job: Job, k: int) -> bytes:
        """PNG ``k`` of the report's ``plots``; :class:`JobNotFoundError` when there is none."""
        self.report(job)
        return self._artifacts.get(evaluation_key(job.id, f"pr-{k}.png"))
