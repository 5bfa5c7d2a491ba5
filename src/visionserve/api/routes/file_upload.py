"""``/file_upload``: the endpoint of the seeds' Android photo app, and a small upload form.

``POST /file_upload`` takes the photo as the multipart file field ``file`` (the field repeated: one
result each) or as a raw image body, and answers exactly as ``POST /v1/predict`` does (native JSON,
see :mod:`visionserve.api.wire.native`), on the default model or ``?model=<name>``, with the same
options (``conf``, ``iou``, ``classes``, ``max_det``, ``format=image`` ...), limits and errors
(``{"error": {"code", "message"}}``). ``GET /file_upload`` shows a plain HTML form (no script) that
posts to its own address (so ``?model=`` carries over).

The app cannot set headers on every build, so, as for DeepStack clients, the API key may also come
as the ``api_key`` query parameter or form field (:data:`AUTH_REALMS`); the form has that field.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from visionserve.api.auth import BodyKeyRealm
from visionserve.api.deps import PixelHoldDep, ServiceDep
from visionserve.api.errors import visionserve_error_response
from visionserve.api.routes.native import predict
from visionserve.errors import AuthenticationError

PATH = "/file_upload"
#: The multipart field of the photo.
FILE_FIELD = "file"
#: Query and form names the route reads itself (not prediction options).
_ROUTE_FIELDS = frozenset({"model", "api_key"})

_FORM = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>visionserve: upload a photo</title></head>
<body>
<h1>Upload a photo</h1>
<form method="post" enctype="multipart/form-data">
<p><label>Photo <input type="file" name="file" accept="image/*" required></label></p>
<p>The default model answers; add <code>?model=name</code> to this page's address for another.</p>
<p><label>API key <input type="password" name="api_key" autocomplete="off"></label> (only when the server
asks for one)</p>
<p><button type="submit">Detect</button></p>
</form>
</body>
</html>
"""

router = APIRouter(tags=["upload"])


def _refuse(error: AuthenticationError) -> Response:
    return visionserve_error_response(error, f"POST {PATH}", False)


#: The app may send its key as ``api_key`` in the query or the form (checked before any route runs).
AUTH_REALMS = (BodyKeyRealm(PATH, _refuse),)


@router.post(PATH, summary="Detect on a photo sent as multipart field 'file' (the Android app's endpoint)")
async def file_upload(request: Request, service: ServiceDep, hold: PixelHoldDep, model: str | None = None) -> Response:
    return await predict(request, service, model, hold, boxes_only=False, field=FILE_FIELD, route_fields=_ROUTE_FIELDS)


@router.get(PATH, response_class=HTMLResponse, summary="A plain HTML form that posts a photo to /file_upload")
async def file_upload_form() -> Response:
    return HTMLResponse(_FORM, headers={"Cache-Control": "no-store"})
