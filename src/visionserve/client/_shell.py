"""Request building shared by the sync and the async client (``httpx`` clients build the same way)."""

from __future__ import annotations

from collections.abc import Sequence

import httpx

from visionserve.client._protocol import ImageSource, detect_fields, detect_path, encode_image

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
    conf: float | None,
    iou: float | None,
    classes: Sequence[str] | None,
    max_det: int | None,
) -> httpx.Request:
    """A multipart ``POST`` of ``images`` (one ``image`` field each) to the native detect route."""
    files = []
    for image in images:
        name, data = encode_image(image)
        files.append(("image", (name, data, "application/octet-stream")))
    return http.build_request("POST", detect_path(model), files=files, data=detect_fields(conf, iou, classes, max_det))
