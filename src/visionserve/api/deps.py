"""FastAPI dependencies: the service, settings and metrics of the app, and uploaded images.

Routes take ``service: ServiceDep`` instead of reaching for ``request.app.state``; the app builds
these objects in its lifespan (see :func:`visionserve.api.app.create_app`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from visionserve.api.metrics import Metrics
from visionserve.api.multipart import is_multipart, read_parts
from visionserve.core.images import check_content_type
from visionserve.errors import InvalidParameterError, ShuttingDownError
from visionserve.serving.service import DetectionService
from visionserve.settings import Settings

#: At most this many parts in one multipart body.
MAX_PARTS = 256


async def get_service(request: Request) -> DetectionService:
    """The app's :class:`DetectionService`; :class:`ShuttingDownError` outside the lifespan.
    (Dependencies are ``async`` so that FastAPI does not send them to its thread pool.)"""
    service: DetectionService | None = getattr(request.app.state, "service", None)
    if service is None:
        raise ShuttingDownError("the server is not running: its models are not loaded")
    return service


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


ServiceDep = Annotated[DetectionService, Depends(get_service)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]


@dataclass(frozen=True)
class ImageUpload:
    """The encoded images of a request, in order, and its other form fields (name -> values)."""

    images: list[bytes]
    fields: dict[str, list[str]] = field(default_factory=dict)


async def read_images(request: Request, field_name: str = "image") -> ImageUpload:
    """The images of ``request``: every multipart file part named ``field_name`` (in order), or the
    raw body when the content type is an image type or ``application/octet-stream`` (or absent).

    Raises :class:`UnsupportedMediaTypeError` (415) for other content types or non-image parts,
    :class:`InvalidParameterError` (422) when there is no image. The body size limit applies while
    reading (413).
    """
    if not is_multipart(request):
        check_content_type(request.headers.get("content-type"))
        body = await request.body()
        if not body:
            raise InvalidParameterError(f"no image: send it as the request body or as multipart field {field_name!r}")
        return ImageUpload([body])
    images: list[bytes] = []
    fields: dict[str, list[str]] = {}
    for part in await read_parts(request, max_files=MAX_PARTS, max_fields=MAX_PARTS):
        if part.is_file:
            if part.name != field_name:
                raise InvalidParameterError(f"unexpected file field {part.name!r}: send images as {field_name!r}")
            check_content_type(part.content_type)
            images.append(part.data)
        elif part.name == field_name:
            raise InvalidParameterError(f"field {field_name!r} must be a file, not a text value")
        else:
            fields.setdefault(part.name, []).append(part.value)
    if not images:
        raise InvalidParameterError(f"no image: send it as multipart file field {field_name!r}")
    return ImageUpload(images, fields)


async def image_upload(request: Request) -> ImageUpload:
    """:func:`read_images` with the field ``image``, as a dependency."""
    return await read_images(request)


ImageUploadDep = Annotated[ImageUpload, Depends(image_upload)]
