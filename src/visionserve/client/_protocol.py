"""The client's logic without I/O: requests to build, answers to read, errors to raise, when to retry.

:func:`exchange` is a generator that yields what to do next (an ``httpx.Request`` to send or a
number of seconds to sleep) and receives the outcome (an ``httpx.Response``, or None when the
connection failed), so that the sync and the async client drive the same retry logic with their
own ``send`` and ``sleep``.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeAlias
from urllib.parse import quote

import cv2
import httpx
import numpy as np

from visionserve.core.detections import Detections
from visionserve.errors import (
    AuthenticationError,
    BadSourceError,
    BadVideoError,
    ConnectionFailedError,
    ImageDecodeError,
    ImageTooLargeError,
    InputError,
    InvalidParameterError,
    JobNotFoundError,
    JobStateError,
    ModelNotFoundError,
    ModelNotReadyError,
    NoFrameYetError,
    OverloadedError,
    RequestTimeoutError,
    ServerError,
    ShuttingDownError,
    SourceNotFoundError,
    SourceRefusedError,
    StorageError,
    StreamNotFoundError,
    UnsupportedMediaTypeError,
    VisionServeError,
    WrongTaskError,
)
from visionserve.types import BGRImage

#: What :meth:`Client.detect` accepts as an image: a file path, encoded bytes, or a BGR array.
ImageSource = str | Path | bytes | BGRImage
#: Statuses worth another try after a pause: the server's queue is full, or it is not ready yet.
RETRY_STATUSES = frozenset({429, 503})


@dataclass(frozen=True)
class RetryPolicy:
    """Up to ``attempts`` tries; before try ``n + 1`` wait ``Retry-After`` when the server sent it,
    else ``backoff * 2**n`` seconds, never more than ``max_delay``. Only 429, 503 and failed
    connections are retried."""

    attempts: int = 4
    backoff: float = 0.2
    max_delay: float = 5.0

    def delay(self, attempt: int, response: httpx.Response | None) -> float:
        """Seconds to wait after failed try number ``attempt`` (0-based)."""
        retry_after = response.headers.get("retry-after") if response is not None else None
        if retry_after is not None:
            try:
                seconds = float(retry_after)
            except ValueError:
                seconds = math.nan
            if math.isfinite(seconds) and seconds >= 0:
                return min(seconds, self.max_delay)
        return min(self.backoff * 2.0**attempt, self.max_delay)


@dataclass(frozen=True)
class DetectionResult:
    """What a server found in one image.

    ``detections`` holds boxes in source-image pixels (``x1, y1, x2, y2``), highest score first;
    ``labels[i]`` names detection ``i``; ``timings`` are the server's milliseconds per stage.
    """

    model: str
    version: str | None
    width: int
    height: int
    detections: Detections
    labels: tuple[str, ...]
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelInfo:
    """One model a server offers, as ``GET /v1/models`` describes it (``raw`` keeps every field)."""

    name: str
    version: str | None
    state: str | None
    raw: dict[str, Any]


def encode_image(image: ImageSource, array_format: str = ".png") -> tuple[str, bytes]:
    """``(file name, encoded bytes)`` for a path, bytes, or a ``(H, W, 3) uint8`` BGR array
    (encoded losslessly as PNG unless ``array_format`` says otherwise)."""
    if isinstance(image, bytes):
        return "image", image
    if isinstance(image, str | Path):
        path = Path(image)
        try:
            return path.name, path.read_bytes()
        except OSError as exc:
            raise ImageDecodeError(f"cannot read image file {path}: {exc.strerror}") from exc
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise InvalidParameterError("image must be a path, bytes, or a (height, width, 3) uint8 BGR array")
    ok, buffer = cv2.imencode(array_format, image)
    if not ok:
        raise InvalidParameterError(f"cannot encode the array as {array_format}")
    return f"image{array_format}", buffer.tobytes()


#: A request's confidence threshold: a number, ``"best"`` (the model's saved per-class thresholds), or
#: None (the model's default).
Conf: TypeAlias = float | Literal["best"] | None


def detect_path(model: str | None) -> str:
    """The native detect route for ``model`` (the default model when None)."""
    return "/v1/detect" if model is None else f"/v1/models/{quote(model, safe='')}/detect"


def detect_fields(conf: Conf, iou: float | None, classes: Sequence[str] | None, max_det: int | None) -> dict[str, str]:
    """Form fields for the detection options that are set."""
    fields = {"conf": conf, "iou": iou, "max_det": max_det}
    data = {name: str(value) for name, value in fields.items() if value is not None}
    if classes:
        data["classes"] = ",".join(str(c) for c in classes)
    return data


def _detections(items: list[dict[str, Any]]) -> tuple[Detections, tuple[str, ...]]:
    if not items:
        return Detections.empty(), ()
    boxes = np.array([[d["box"][k] for k in ("x1", "y1", "x2", "y2")] for d in items], np.float32)
    scores = np.array([d["score"] for d in items], np.float32)
    class_ids = np.array([d["class_id"] for d in items], np.int32)
    return Detections(boxes, scores, class_ids), tuple(str(d["label"]) for d in items)


def parse_detection(document: dict[str, Any], model: str | None = None) -> DetectionResult:
    """A :class:`DetectionResult` from one native result document; raises :class:`ServerError`
    when fields are missing or of the wrong type."""
    try:
        detections, labels = _detections(document["detections"])
        return DetectionResult(
            model=str(document.get("model", model or "")),
            version=None if document.get("version") is None else str(document["version"]),
            width=int(document["width"]),
            height=int(document["height"]),
            detections=detections,
            labels=labels,
            timings={str(k): float(v) for k, v in (document.get("timings") or {}).items()},
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ServerError(f"unreadable detection result from the server: {exc!r}") from exc


def parse_models(document: Any) -> list[ModelInfo]:
    """The models of a ``GET /v1/models`` answer (a list, or ``{"models": [...]}``)."""
    items = document.get("models") if isinstance(document, dict) else document
    if not isinstance(items, list):
        raise ServerError("unreadable model list from the server")
    result = []
    for item in items:
        if not isinstance(item, dict) or "name" not in item:
            raise ServerError("unreadable model entry from the server")
        version, state = item.get("version"), item.get("state")
        result.append(
            ModelInfo(
                str(item["name"]),
                None if version is None else str(version),
                None if state is None else str(state),
                item,
            )
        )
    return result


#: The server's error codes (``{"error": {"code"}}``, see ``api/errors.py``) -> the class it raised.
CODE_ERRORS: dict[str, type[VisionServeError]] = {
    "undecodable_image": ImageDecodeError,
    "too_large": ImageTooLargeError,
    "unsupported_media_type": UnsupportedMediaTypeError,
    "wrong_task": WrongTaskError,
    "invalid_parameter": InvalidParameterError,
    "request_timeout": RequestTimeoutError,
    "bad_input": InputError,
    "unauthorized": AuthenticationError,
    "model_not_found": ModelNotFoundError,
    "not_found": JobNotFoundError,
    "conflict": JobStateError,
    "overloaded": OverloadedError,
    "model_not_ready": ModelNotReadyError,
    "shutting_down": ShuttingDownError,
    "storage_unavailable": StorageError,
    "bad_source": BadSourceError,
    "bad_video": BadVideoError,
    "no_frame_yet": NoFrameYetError,
    "source_not_found": SourceNotFoundError,
    "source_refused": SourceRefusedError,
    "stream_not_found": StreamNotFoundError,
}
#: When an answer has no known code (a proxy's, or another protocol's), its status decides.
_STATUS_ERRORS: dict[int, type[VisionServeError]] = {
    400: InputError,
    401: AuthenticationError,
    403: AuthenticationError,
    404: ModelNotFoundError,
    413: ImageTooLargeError,
    408: RequestTimeoutError,
    415: UnsupportedMediaTypeError,
    422: InvalidParameterError,
    429: OverloadedError,
    503: ModelNotReadyError,
}


def _error_fields(response: httpx.Response) -> tuple[str | None, str]:
    """``(code, message)`` of an error answer: ``{"error": {"code", "message"}}``, a string
    ``error``, ``detail``, or the raw text."""
    try:
        body = response.json()
    except ValueError:
        return None, response.text.strip()[:500] or response.reason_phrase
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and "message" in error:
        return (str(error["code"]) if "code" in error else None), str(error["message"])
    if isinstance(error, str):
        return None, error
    if isinstance(body, dict) and "detail" in body:
        return None, str(body["detail"])
    return None, response.text.strip()[:500]


def error_for(response: httpx.Response) -> VisionServeError:
    """The exception for an error answer: the class of its error code (:data:`CODE_ERRORS`), else
    of its status; :class:`ServerError` for anything else (5xx)."""
    code, text = _error_fields(response)
    message = f"{response.status_code} from {response.request.url.path}: {text}"
    cls = CODE_ERRORS.get(code or "") or _STATUS_ERRORS.get(response.status_code) or ServerError
    if cls is OverloadedError:
        return OverloadedError(message, RetryPolicy(backoff=1.0, max_delay=math.inf).delay(0, response))
    return cls(message)


def exchange(request: httpx.Request, policy: RetryPolicy) -> Generator[httpx.Request | float, Any, httpx.Response]:
    """Send ``request`` until it gets a final answer: yields the request (receiving the response,
    or None when the connection failed) and pauses in seconds; returns a 2xx response or raises
    the error that the last answer means (:func:`error_for`, :class:`ConnectionFailedError`)."""
    for attempt in range(policy.attempts):
        response: httpx.Response | None = yield request
        last = attempt == policy.attempts - 1
        if response is not None and response.is_success:
            return response
        if response is not None and (response.status_code not in RETRY_STATUSES or last):
            raise error_for(response)
        if response is None and last:
            break
        yield policy.delay(attempt, response)
    raise ConnectionFailedError(
        f"cannot reach {request.url.scheme}://{request.url.netloc.decode()} after {policy.attempts} attempts"
    )


def response_json(response: httpx.Response) -> object:
    """The JSON of ``response``; :class:`ServerError` when it is not JSON."""
    try:
        return response.json()
    except ValueError as exc:
        raise ServerError(f"the server answered {response.request.url.path} with something that is not JSON") from exc


def parse_results(response: httpx.Response, model: str | None, count: int) -> list[DetectionResult]:
    """Results of a detect answer: one document for one image; for several,
    ``{"model", "version", "results": [...]}`` whose items inherit the model and version."""
    document = response_json(response)
    if not isinstance(document, dict):
        raise ServerError("unreadable detection answer from the server")
    items = document.get("results", [document])
    if not isinstance(items, list) or len(items) != count:
        raise ServerError(
            f"the server returned {len(items) if isinstance(items, list) else 'no'} results for {count} images"
        )
    head = {key: document[key] for key in ("model", "version") if key in document}
    return [parse_detection({**head, **item} if isinstance(item, dict) else item, model) for item in items]
