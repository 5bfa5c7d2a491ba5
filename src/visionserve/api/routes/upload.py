"""``POST /upload`` (multipart ``file``) for phone and web clients, and the crops it links to.

The photo is detected at full size with the default model (or ``?model=<name>``); each detection's crop is stored as a
JPEG under a new task id (:class:`~visionserve.api.uploads.UploadStore`) and served by
``GET /upload/{task_id}/{index}.jpg`` with ``Cache-Control: no-store``. Errors are
``{"status": "error", "error": ...}``; a failed detection is a 500 whose traceback shows only in
debug mode.
"""

from __future__ import annotations

import cv2
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from visionserve.api.deps import ServiceDep, read_images
from visionserve.api.metrics import tag_model
from visionserve.api.routes.protocol_support import ProtocolError, protocol_route
from visionserve.api.uploads import UploadStore
from visionserve.api.wire import upload
from visionserve.api.wire.native import check_gives_boxes
from visionserve.core.detections import Detections
from visionserve.errors import InferenceError, JobNotFoundError
from visionserve.render.annotators import crops
from visionserve.serving.pixel_budget import PixelHold
from visionserve.types import BGRImage

_JPEG_QUALITY = 90


def _error(error: ProtocolError) -> Response:
    body = upload.render_error(error.message, error.traceback).model_dump(exclude_none=True)
    return JSONResponse(body, status_code=error.status, headers=error.headers)


router = APIRouter(tags=["upload"], route_class=protocol_route(_error))


def _store(request: Request) -> UploadStore:
    store: UploadStore = request.app.state.uploads
    return store


def _save_crops(store: UploadStore, task_id: str, image: BGRImage, found: Detections) -> None:
    """Encode the crop of each detection (in ``found``'s order) and store them. Blocking."""
    encoded = []
    for crop in crops(image, found):
        ok, data = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY])
        if not ok:
            raise InferenceError("cannot encode a crop as JPEG")
        encoded.append(data.tobytes())
    store.save(task_id, encoded)


@router.post("/upload", summary="Upload a photo: boxes, scores and links to each crop")
async def upload_photo(request: Request, service: ServiceDep, model: str | None = None) -> Response:
    name = service.resolve_name(model)
    tag_model(request, name)
    check_gives_boxes(service.spec(name))  # crops need boxes: refuse a classifier before reading the photo
    photo = await read_images(request, upload.FILE_FIELD)
    with PixelHold() as hold:
        (result,) = await service.detect(name, photo.images[:1], full_size=True, hold=hold)
        found = result.detections.sorted_by_confidence()
        task_id = upload.new_task_id()
        await run_in_threadpool(_save_crops, _store(request), task_id, result.image, found)

    def crop_url(index: int) -> str:
        return str(request.url_for("upload_crop", task_id=task_id, name=upload.crop_name(index)))

    answer = upload.render_upload(task_id, found, service.labels(name), crop_url)
    return JSONResponse(answer.model_dump(mode="json"))


@router.get("/upload/{task_id}/{name}", name="upload_crop", summary="One crop of an upload (JPEG)")
async def upload_crop(task_id: str, name: str, request: Request) -> Response:
    index = upload.crop_index(name)
    if index is None or not upload.is_task_id(task_id):
        raise JobNotFoundError(f"no crop {name!r} in upload task {task_id!r}")
    data = await run_in_threadpool(_store(request).read, task_id, index)
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})
