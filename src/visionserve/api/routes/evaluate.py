"""Evaluation over HTTP: ``POST /v1/models/{name}/evaluate`` takes a zip archive (multipart file field
``archive``: images and their labels, see :mod:`visionserve.evaluation.archive`) with the form fields
``format`` (``coco``, ``yolo``, ``voc``, ``folders``, ``csv``; guessed when absent), ``skip_unknown``
and ``webhook_url``, and answers 202 with an evaluation job. Its report (``visionserve eval --json``)
is ``GET /v1/jobs/{id}/evaluation`` (and the job document's ``evaluation``), and the precision-recall
curve of each class a PNG at ``GET /v1/jobs/{id}/evaluation/plots/{k}``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from visionserve.api.deps import ServiceDep
from visionserve.api.metrics import tag_model
from visionserve.api.routes.jobs import ItemIndex, JobsDep
from visionserve.api.wire.common import describe_validation_error
from visionserve.errors import InvalidParameterError
from visionserve.evaluation.inputs import SetFormat
from visionserve.jobs.evaluation_model import EvaluateOptions
from visionserve.jobs.model import JobInput, JobOptions, NewJob
from visionserve.jobs.results import job_summary

router = APIRouter(tags=["jobs"])

ARCHIVE_FIELD = "archive"
PNG = "image/png"
_NAME_CHARS = 255


class EvaluateParams(BaseModel):
    """The form fields of ``POST /v1/models/{name}/evaluate`` (besides the archive)."""

    model_config = ConfigDict(extra="forbid")

    format: SetFormat | None = Field(None, description="coco, yolo, voc, folders or csv (default: guessed).")
    skip_unknown: bool = Field(False, description="Leave out classes the model lacks instead of refusing.")
    webhook_url: str | None = Field(None, max_length=2000, description="POSTed the job summary when it ends.")


def _params(fields: dict[str, Any]) -> EvaluateParams:
    try:
        return EvaluateParams.model_validate(fields)
    except ValidationError as exc:
        raise InvalidParameterError(describe_validation_error(exc)) from None


@router.post(
    "/v1/models/{name}/evaluate", status_code=202, summary="Evaluate a model on a labelled zip archive (a job)"
)
async def evaluate(name: str, request: Request, service: ServiceDep, jobs: JobsDep) -> JSONResponse:
    model = service.resolve_name(name)  # an unknown model is a 404 before the body is read
    tag_model(request, model)
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "multipart/form-data":
        raise InvalidParameterError(f"send the zip archive as a multipart/form-data file field {ARCHIVE_FIELD!r}")
    async with request.form(max_files=2, max_fields=16) as form:
        uploads: list[JobInput] = []
        fields: dict[str, Any] = dict(request.query_params)
        for field, value in form.multi_items():
            if not isinstance(value, UploadFile):
                fields[field] = value
            elif field == ARCHIVE_FIELD:
                filename = (value.filename or "archive.zip")[:_NAME_CHARS]
                uploads.append(JobInput(filename, read=value.file.read, size=value.size))
            else:
                raise InvalidParameterError(f"unexpected file field {field!r}: send the archive as {ARCHIVE_FIELD!r}")
        params = _params({k: v for k, v in fields.items() if v.strip()})
        options = JobOptions(evaluate=EvaluateOptions(params.format, params.skip_unknown))
        job = await run_in_threadpool(jobs.submit, NewJob(model, uploads, options, params.webhook_url))
    summary = job_summary(job)
    return JSONResponse(summary, status_code=202, headers={"Location": f"/v1/jobs/{summary['id']}"})


@router.get("/v1/jobs/{job_id}/evaluation", summary="The report of a finished evaluation job")
def get_evaluation(job_id: str, jobs: JobsDep) -> dict[str, Any]:
    return jobs.evaluations.report(jobs.get(job_id))


@router.get("/v1/jobs/{job_id}/evaluation/plots/{k}", summary="The precision-recall curve (PNG) of class k")
def get_plot(job_id: str, k: ItemIndex, jobs: JobsDep) -> Response:
    return Response(jobs.evaluations.plot(jobs.get(job_id), k), media_type=PNG)
