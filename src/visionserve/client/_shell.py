"""Request building shared by the sync and the async client (``httpx`` clients build the same way)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from visionserve.client._predictions import MaskFormat, predict_fields, predict_path
from visionserve.client._protocol import Conf, ImageSource, detect_fields, detect_path, encode_image

_USER_AGENT = "visionserve-client"


def default_headers(api_key: str | None) -> dict[str, str]:
    """Headers of every request: the user agent and, with a key, ``Authorization: Bearer <key>``."""
    headers = {"User-Agent": _USER_AGENT}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


def detect_request(
    http: httpx.Client | httpx.AsyncClient,
    images: Sequence[ImageSource],
    model: str | None,
    conf: Conf,
    iou: float | None,
    classes: Sequence[str] | None,
    max_det: int | None,
) -> httpx.Request:
    """A multipart ``POST`` of ``images`` (one ``image`` field each) to the native detect route."""
    fields = detect_fields(conf, iou, classes, max_det)
    return http.build_request("POST", detect_path(model), files=_files(images), data=fields)


@dataclass(frozen=True)
class PredictArgs:
    """The options of a predict call (None keeps the model's default)."""

    conf: Conf = None
    iou: float | None = None
    classes: Sequence[str] | None = None
    max_det: int | None = None
    top_k: int | None = None
    mask_format: MaskFormat | str = MaskFormat.POLYGON


def predict_request(
    http: httpx.Client | httpx.AsyncClient, images: Sequence[ImageSource], model: str | None, args: PredictArgs
) -> httpx.Request:
    """A multipart ``POST`` of ``images`` (one ``image`` field each) to the native predict route."""
    fields = {
        **detect_fields(args.conf, args.iou, args.classes, args.max_det),
        **predict_fields(args.top_k, args.mask_format),
    }
    return http.build_request("POST", predict_path(model), files=_files(images), data=fields)


def _files(images: Sequence[ImageSource]) -> list[tuple[str, tuple[str, bytes, str]]]:
    """One multipart ``image`` part per image (raises before any request for a bad local image)."""
    files = []
    for image in images:
        name, data = encode_image(image)
        files.append(("image", (name, data, "application/octet-stream")))
    return files
