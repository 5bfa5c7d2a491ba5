"""``/v1/jobs``: asynchronous jobs over many images, their results and artifacts.

``POST /v1/jobs`` takes repeated multipart file fields ``image`` and/or repeated ``url`` fields (or a
JSON body ``{"urls": [...], ...}``) with the options ``model``, ``conf``, ``iou``, ``classes``,
``max_det``, ``top_k``, ``mask_format``, ``crops``, ``annotate``, ``webhook_url`` (form fields, JSON
keys or query parameters). A multipart file field ``video`` instead makes a video job, with
``frame_stride``, ``max_fps``, ``track``, and ``zones`` and ``lines`` (JSON lists, as a stream's);
stores everything and answers 202 with the queued job at once. The routes only parse and render:
the :class:`~visionserve.jobs.service.JobService` in ``app.state.jobs`` does the work, in a thread
(it blocks on the database).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from visionserve.api.wire.common import describe_validation_error
from visionserve.api.wire.jsonbody import parse_json
from visionserve.core.images import check_content_type
from visionserve.errors import InvalidParameterError, ShuttingDownError
from visionserve.jobs.model import JobInput, JobOptions, JobQuery, JobState, NewJob
from visionserve.jobs.results import errors_json, job_summary
from visionserve.jobs.service import JobService
from visionserve.jobs.video_model import VideoOptions
from visionserve.render.mask_encoding import MaskFormat
from visionserve.streams.spec import LineSpec, ZoneSpec

router = APIRouter(tags=["jobs"])

IMAGE_FIELD = "image"
VIDEO_FIELD = "video"
MP4 = "video/mp4"
URL_FIELD = "url"
JPEG = "image/jpeg"
_SOURCE_CHARS = 255
#: The largest integer the jobs database stores (SQLite and PostgreSQL BIGINT): larger offsets and
#: indices are a 422 here instead of an overflow in the driver.
DB_INT_MAX = 2**63 - 1
Offset = Annotated[int, Query(ge=0, le=DB_INT_MAX)]
#: The most items one page of results, and errors, may hold.
RESULTS_PAGE_MAX = 1000
ERRORS_PAGE_MAX = 1000
ItemIndex = Annotated[int, Path(ge=0, le=DB_INT_MAX)]


def get_jobs(request: Request) -> JobService:
    """The app's job service; :class:`ShuttingDownError` outside the lifespan."""
    jobs: JobService | None = getattr(request.app.state, "jobs", None)
    if jobs is None:
        raise ShuttingDownError("the job service is not running")
    return jobs


JobsDep = Annotated[JobService, Depends(get_jobs)]


class JobParams(BaseModel):
    """The options of ``POST /v1/jobs``; ``classes`` are label names or ids, comma-separated."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    conf: Annotated[float, Field(ge=0, le=1)] | Literal["best"] | None = None
    iou: float | None = Field(None, ge=0, le=1)
    classes: str | None = None
    max_det: int | None = Field(None, ge=1, le=10_000)
    top_k: int | None = Field(None, ge=1, le=10_000)
    mask_format: MaskFormat = MaskFormat.RLE
    crops: bool = False
    annotate: bool = False
    webhook_url: str | None = Field(None, max_length=2000)
    urls: list[str] = Field(default_factory=list)
    frame_stride: int = Field(1, ge=1, le=10_000)
    max_fps: float | None = Field(None, gt=0, le=1000)
    track: bool = True
    zones: list[ZoneSpec] = Field(default_factory=list, max_length=100)
    lines: list[LineSpec] = Field(default_factory=list, max_length=100)

    @field_validator("zones", "lines", mode="before")
    @classmethod
    def _json_text(cls, value: Any) -> Any:
        """Form fields carry zones and lines as JSON text."""
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                raise ValueError("must be a JSON list") from None
        return value


def parse_params(values: Mapping[str, Any]) -> JobParams:
    """Validate ``values`` (name -> value; blank strings count as absent). Raises
    :class:`InvalidParameterError` naming the field."""
    cleaned = {k: v for k, v in values.items() if not (isinstance(v, str) and not v.strip())}
    try:
        return JobParams.model_validate(cleaned)
    except ValidationError as exc:
        raise InvalidParameterError(describe_validation_error(exc)) from None


def _video_options(params: JobParams, video: bool) -> VideoOptions | None:
    """The video options of a job with an uploaded video; zones, lines or a stride without one are refused."""
    if video:
        zones, lines = tuple(params.zones), tuple(params.lines)
        return VideoOptions(params.frame_stride, params.track, zones, lines, params.max_fps)
    if params.zones or params.lines or params.frame_stride != 1 or params.max_fps is not None:
        raise InvalidParameterError(
            f"zones, lines, frame_stride and max_fps apply to a video job (file field {VIDEO_FIELD!r})"
        )
    return None


def _new_job(params: JobParams, uploads: Sequence[JobInput], video: bool = False) -> tuple[NewJob, list[str] | None]:
    options = JobOptions(
        params.conf,
        params.iou,
        None,
        params.max_det,
        params.crops,
        params.annotate,
        top_k=params.top_k,
        mask_format=params.mask_format,
        video=_video_options(params, video),
    )
    inputs = [*uploads, *(JobInput(url[:_SOURCE_CHARS], url=url) for url in params.urls)]
    classes = [c for c in params.classes.split(",") if c.strip()] if params.classes else None
    return NewJob(params.model, inputs, options, params.webhook_url), classes


def _upload(index: int, value: UploadFile, video: bool = False) -> JobInput:
    """An uploaded image (its content type checked) or video (probed by the service instead)."""
    if not video:
        check_content_type(value.content_type)
    name = (value.filename or f"{'video' if video else 'image'}-{index}")[:_SOURCE_CHARS]
    return JobInput(name, read=value.file.read, size=value.size)


def _accepted(job_summary_json: dict[str, Any]) -> JSONResponse:
    location = f"/v1/jobs/{job_summary_json['id']}"
    return JSONResponse(job_summary_json, status_code=202, headers={"Location": location})


@router.post("/v1/jobs", status_code=202, summary="Submit a job over many images")
async def submit(request: Request, jobs: JobsDep) -> JSONResponse:
    query: dict[str, Any] = {k: v for k, v in request.query_params.items()}
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media == "application/json":
        body = await run_in_threadpool(parse_json, await request.body())
        if not isinstance(body, dict):
            raise InvalidParameterError("the JSON body must be an object")
        new, classes = _new_job(parse_params({**query, **body}), [])
        job = await run_in_threadpool(jobs.submit, new, classes)
        return _accepted(job_summary(job))
    if media not in {"multipart/form-data", "application/x-www-form-urlencoded"}:
        raise InvalidParameterError("send images as multipart/form-data fields 'image', or JSON {\"urls\": [...]}")
    limit = jobs.limits.max_images
    async with request.form(max_files=limit, max_fields=limit + 32) as form:
        uploads: list[JobInput] = []
        urls: list[str] = []
        fields: dict[str, Any] = dict(query)
        kinds: set[str] = set()
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                if name not in {IMAGE_FIELD, VIDEO_FIELD}:
                    raise InvalidParameterError(
                        f"unexpected file field {name!r}: send images as {IMAGE_FIELD!r}, a video as {VIDEO_FIELD!r}"
                    )
                kinds.add(name)
                uploads.append(_upload(len(uploads), value, name == VIDEO_FIELD))
            elif name == URL_FIELD:
                urls.append(value)
            else:
                fields[name] = value
        if urls:
            # A 'urls' field (or query parameter) beside repeated 'url' fields is one list too many.
            if "urls" in fields:
                raise InvalidParameterError("give image URLs as repeated 'url' fields or as 'urls', not both")
            fields["urls"] = urls
        if VIDEO_FIELD in kinds and len(kinds) > 1:
            raise InvalidParameterError("a job takes images or one video, not both")
        new, classes = _new_job(parse_params(fields), uploads, VIDEO_FIELD in kinds)
        job = await run_in_threadpool(jobs.submit, new, classes)
    return _accepted(job_summary(job))


@router.get("/v1/jobs", summary="List jobs, newest first")
def list_jobs(
    jobs: JobsDep,
    state: JobState | None = None,
    model: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    page = jobs.list_jobs(JobQuery(state, model, limit, offset))
    return {"jobs": [job_summary(job) for job in page.jobs], "total": page.total, "limit": limit, "offset": offset}


@router.get("/v1/jobs/{job_id}", summary="State, progress, errors, and results once the job has ended")
def get_job(
    job_id: str,
    request: Request,
    jobs: JobsDep,
    items_offset: Offset = 0,
    items_limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    errors_offset: Offset = 0,
    errors_limit: Annotated[int, Query(ge=1, le=ERRORS_PAGE_MAX)] = 100,
) -> dict[str, Any]:
    job = jobs.get(job_id)
    document = job_summary(job)
    document["errors"] = errors_json(jobs.errors(job_id, errors_offset, errors_limit))
    document["errors_page"] = _page(request, "errors_offset", errors_offset, errors_limit, job.progress.failed)
    video = jobs.videos.status(job)
    if video is not None:
        document["video"] = video
    evaluation = jobs.evaluations.status(job)
    if evaluation is not None:
        document["evaluation"] = evaluation
    if job.state.terminal:
        document["results"] = jobs.results_page(job, items_offset, items_limit)
        document["results_page"] = {"offset": items_offset, "limit": items_limit, "total": job.progress.total}
    return document


@router.delete("/v1/jobs/{job_id}", summary="Cancel a job (409 if it has already ended)")
def cancel_job(job_id: str, jobs: JobsDep) -> dict[str, Any]:
    return job_summary(jobs.cancel(job_id))


def _page(request: Request, offset_name: str, offset: int, limit: int, total: int) -> dict[str, Any]:
    """``{"offset", "limit", "total", "next"}``: ``next`` is this URL at the following page, or None."""
    following = offset + limit
    next_url = str(request.url.include_query_params(**{offset_name: following})) if following < total else None
    return {"offset": offset, "limit": limit, "total": total, "next": next_url}


@router.get("/v1/jobs/{job_id}/results", summary="Results a page at a time (format=json), or whole as COCO")
def results(
    job_id: str,
    request: Request,
    jobs: JobsDep,
    format: Annotated[str, Query(pattern="^(json|coco)$")] = "json",
    limit: Annotated[int, Query(ge=1, le=RESULTS_PAGE_MAX)] = RESULTS_PAGE_MAX,
    offset: Offset = 0,
) -> Response:
    if format == "coco":
        document = jobs.coco(job_id)
    else:
        document = jobs.results(job_id, offset, limit)
        document["page"] = _page(request, "offset", offset, limit, int(document["job"]["progress"]["total"]))
    suffix = "-coco" if format == "coco" else ""
    headers = {"Content-Disposition": f'attachment; filename="job-{job_id}{suffix}.json"'}
    return JSONResponse(document, headers=headers)


@router.get("/v1/jobs/{job_id}/items/{index}", summary="One item with its detections or classes")
def get_item(job_id: str, index: ItemIndex, jobs: JobsDep) -> dict[str, Any]:
    return jobs.item_json(job_id, index)


@router.get("/v1/jobs/{job_id}/items/{index}/crops/{k}", summary="Crop k of an item (highest score first)")
def get_crop(job_id: str, index: ItemIndex, k: ItemIndex, jobs: JobsDep) -> Response:
    return Response(jobs.crop(job_id, index, k), media_type=JPEG)


@router.get("/v1/jobs/{job_id}/items/{index}/annotated", summary="The annotated copy of an item")
def get_annotated(job_id: str, index: ItemIndex, jobs: JobsDep) -> Response:
    return Response(jobs.annotated(job_id, index), media_type=JPEG)


@router.get("/v1/jobs/{job_id}/video", summary="The annotated MP4 of a finished video job")
def get_video(job_id: str, jobs: JobsDep) -> Response:
    return Response(jobs.videos.annotated(jobs.get(job_id)), media_type=MP4)


@router.get("/v1/jobs/{job_id}/frames", summary="A video job's frames with detections and track ids, a page at a time")
def get_frames(
    job_id: str,
    request: Request,
    jobs: JobsDep,
    limit: Annotated[int, Query(ge=1, le=RESULTS_PAGE_MAX)] = RESULTS_PAGE_MAX,
    offset: Offset = 0,
) -> dict[str, Any]:
    document = jobs.videos.frames(jobs.get(job_id), offset, limit)
    document["page"] = _page(request, "offset", offset, limit, int(document["total"]))
    return document
