"""HTTP errors: the one table from the error tree to status codes, and the shape of every error.
Beside it, the table from the error tree to gRPC status codes (KServe v2 over gRPC).

Every error answer is ``{"error": {"code": "...", "message": "..."}}``; 5xx answers add an ``id``
that the log line of the failure also carries (and a ``traceback`` in debug mode only). FastAPI's
own 404, 405 and 422 answers are replaced by this shape. Under ``/v2`` (KServe v2 / Triton), every
error answer is KServe's ``{"error": "message"}`` instead, with the same status
(:class:`KServeErrorShape`): unknown routes, wrong methods, missing keys and refused bodies included.
"""

from __future__ import annotations

import json
import logging
import math
import traceback
import uuid
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import grpc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from visionserve.errors import (
    AuthenticationError,
    BadSourceError,
    BadVideoError,
    ConfigError,
    ImageDecodeError,
    ImageTooLargeError,
    InferenceError,
    InputError,
    InvalidParameterError,
    JobNotFoundError,
    JobStateError,
    ModelLoadError,
    ModelNotFoundError,
    ModelNotReadyError,
    NoFrameYetError,
    OverloadedError,
    RemoteError,
    RequestTimeoutError,
    ShuttingDownError,
    SourceNotFoundError,
    SourceRefusedError,
    StorageError,
    StreamNotFoundError,
    UnsupportedMediaTypeError,
    VisionServeError,
    WrongTaskError,
)

logger = logging.getLogger(__name__)

#: The one table: error class -> (status, code). An exception takes the entry of its nearest class.
ERROR_STATUS: dict[type[VisionServeError], tuple[HTTPStatus, str]] = {
    ImageDecodeError: (HTTPStatus.BAD_REQUEST, "undecodable_image"),
    ImageTooLargeError: (HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "too_large"),
    UnsupportedMediaTypeError: (HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
    RequestTimeoutError: (HTTPStatus.REQUEST_TIMEOUT, "request_timeout"),
    WrongTaskError: (HTTPStatus.UNPROCESSABLE_ENTITY, "wrong_task"),
    SourceNotFoundError: (HTTPStatus.UNPROCESSABLE_ENTITY, "source_not_found"),
    SourceRefusedError: (HTTPStatus.UNPROCESSABLE_ENTITY, "source_refused"),
    BadSourceError: (HTTPStatus.UNPROCESSABLE_ENTITY, "bad_source"),
    BadVideoError: (HTTPStatus.UNPROCESSABLE_ENTITY, "bad_video"),
    InvalidParameterError: (HTTPStatus.UNPROCESSABLE_ENTITY, "invalid_parameter"),
    InputError: (HTTPStatus.BAD_REQUEST, "bad_input"),
    AuthenticationError: (HTTPStatus.UNAUTHORIZED, "unauthorized"),
    ModelNotFoundError: (HTTPStatus.NOT_FOUND, "model_not_found"),
    JobNotFoundError: (HTTPStatus.NOT_FOUND, "not_found"),
    StreamNotFoundError: (HTTPStatus.NOT_FOUND, "stream_not_found"),
    NoFrameYetError: (HTTPStatus.SERVICE_UNAVAILABLE, "no_frame_yet"),
    JobStateError: (HTTPStatus.CONFLICT, "conflict"),
    OverloadedError: (HTTPStatus.TOO_MANY_REQUESTS, "overloaded"),
    ModelNotReadyError: (HTTPStatus.SERVICE_UNAVAILABLE, "model_not_ready"),
    ShuttingDownError: (HTTPStatus.SERVICE_UNAVAILABLE, "shutting_down"),
    StorageError: (HTTPStatus.SERVICE_UNAVAILABLE, "storage_unavailable"),
    RemoteError: (HTTPStatus.BAD_GATEWAY, "remote_error"),
    ConfigError: (HTTPStatus.INTERNAL_SERVER_ERROR, "config_error"),
    ModelLoadError: (HTTPStatus.INTERNAL_SERVER_ERROR, "model_load_error"),
    InferenceError: (HTTPStatus.INTERNAL_SERVER_ERROR, "inference_error"),
    VisionServeError: (HTTPStatus.INTERNAL_SERVER_ERROR, "error"),
}

#: The same tree for gRPC (``--grpc-port``): an exception takes the entry of its nearest class.
GRPC_STATUS: dict[type[VisionServeError], grpc.StatusCode] = {
    ImageTooLargeError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    RequestTimeoutError: grpc.StatusCode.DEADLINE_EXCEEDED,
    InputError: grpc.StatusCode.INVALID_ARGUMENT,
    AuthenticationError: grpc.StatusCode.UNAUTHENTICATED,
    ModelNotFoundError: grpc.StatusCode.NOT_FOUND,
    JobNotFoundError: grpc.StatusCode.NOT_FOUND,
    StreamNotFoundError: grpc.StatusCode.NOT_FOUND,
    NoFrameYetError: grpc.StatusCode.UNAVAILABLE,
    JobStateError: grpc.StatusCode.FAILED_PRECONDITION,
    OverloadedError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ModelNotReadyError: grpc.StatusCode.UNAVAILABLE,
    ShuttingDownError: grpc.StatusCode.UNAVAILABLE,
    StorageError: grpc.StatusCode.UNAVAILABLE,
    VisionServeError: grpc.StatusCode.INTERNAL,
}

#: The status of a request whose client went away before its body was read (nobody reads the answer;
#: access logs and metrics see a client error, not a server one).
CLIENT_DISCONNECTED = (HTTPStatus.BAD_REQUEST, "client_disconnected")

#: Codes of HTTP-level errors that Starlette raises (unknown route, wrong method, bad multipart).
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 400: "bad_request", 413: "too_large"}


def status_of(exc: VisionServeError) -> tuple[HTTPStatus, str]:
    """The (status, code) of ``exc``: the table entry of the nearest class in its MRO."""
    for cls in type(exc).__mro__:
        if cls in ERROR_STATUS:
            return ERROR_STATUS[cls]
    return HTTPStatus.INTERNAL_SERVER_ERROR, "error"


def grpc_status_of(exc: VisionServeError) -> grpc.StatusCode:
    """The gRPC status of ``exc``: the :data:`GRPC_STATUS` entry of the nearest class in its MRO."""
    return next(GRPC_STATUS[cls] for cls in type(exc).__mro__ if cls in GRPC_STATUS)


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse(error_body(code, message, **extra), status_code=status, headers=dict(headers or {}))


def log_expected(status: int, request_line: str, exc: BaseException) -> None:
    """Log a deliberate 5xx other than 500 (a model not loaded, shutting down, storage down) at
    WARNING and a client that went away at INFO, both on one line without a traceback: they are
    conditions of the service, not bugs, and must not bury the real internal errors logged by
    :func:`log_internal`."""
    if isinstance(exc, ClientDisconnect):
        logger.info("client disconnected on %s", request_line)
    elif status >= 500:
        logger.warning("%d on %s: %s", status, request_line, exc)


def log_internal(exc: BaseException, request_line: str, debug: bool) -> tuple[str, str | None]:
    """Log ``exc`` with its traceback under a fresh error id; the id, and the traceback text when
    ``debug`` (answers show it only then)."""
    error_id = uuid.uuid4().hex[:16]
    logger.error("internal error %s on %s: %s", error_id, request_line, exc, exc_info=exc)
    return error_id, "".join(traceback.format_exception(exc)) if debug else None


def error_headers(exc: VisionServeError) -> dict[str, str]:
    """The headers a deliberate error implies: ``Retry-After`` for overload and shutdown (with
    ``Connection: close`` for shutdown and a body timeout), ``WWW-Authenticate`` for a missing or wrong key."""
    if isinstance(exc, OverloadedError):
        return {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
    if isinstance(exc, NoFrameYetError):
        return {"Retry-After": "1"}
    if isinstance(exc, ShuttingDownError):
        return {"Retry-After": "1", "Connection": "close"}
    if isinstance(exc, RequestTimeoutError):
        return {"Connection": "close"}
    if isinstance(exc, AuthenticationError):
        return {"WWW-Authenticate": 'Bearer realm="visionserve"'}
    return {}


def internal_error_response(
    exc: BaseException, request_line: str, debug: bool, code: str = "internal_error", message: str = "internal error"
) -> JSONResponse:
    """A 500 with a fresh error id, logged with the traceback (which the answer shows only when
    ``debug``)."""
    error_id, trace = log_internal(exc, request_line, debug)
    extra: dict[str, Any] = {"id": error_id}
    if trace is not None:
        extra["traceback"] = trace
    return error_response(500, code, f"{message} (error id {error_id})", **extra)


def visionserve_error_response(exc: VisionServeError, request_line: str, debug: bool) -> JSONResponse:
    """The answer for a deliberate error: its table status, its message, and :func:`error_headers`."""
    status, code = status_of(exc)
    if status == HTTPStatus.INTERNAL_SERVER_ERROR:
        return internal_error_response(exc, request_line, debug, code, str(exc))
    log_expected(status, request_line, exc)
    return error_response(status, code, str(exc), error_headers(exc))


def disconnect_response(exc: ClientDisconnect, request_line: str) -> JSONResponse:
    """The answer (which nobody reads) for a client that went away; logged by :func:`log_expected`."""
    log_expected(CLIENT_DISCONNECTED[0], request_line, exc)
    return error_response(CLIENT_DISCONNECTED[0], CLIENT_DISCONNECTED[1], "the client disconnected")


def _request_line(request: Request) -> str:
    return f"{request.method} {request.url.path}"


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()) if p not in {"query", "body", "path", "header"})
        parts.append(f"{where}: {error.get('msg', 'invalid')}" if where else str(error.get("msg", "invalid")))
    return "invalid request: " + "; ".join(parts)


def _http_error_response(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
    message = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    if exc.status_code == 404 and message == "Not Found":
        message = f"no route {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"method {request.method} is not allowed on {request.url.path}"
    return error_response(exc.status_code, code, message, exc.headers)


def install_error_handlers(app: FastAPI, debug: bool) -> None:
    """Make deliberate errors, validation errors and Starlette's HTTP errors answer in our shape."""

    async def handle(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, VisionServeError):
            return visionserve_error_response(exc, _request_line(request), debug)
        if isinstance(exc, RequestValidationError):
            return error_response(422, "invalid_parameter", _validation_message(exc))
        if isinstance(exc, StarletteHTTPException):
            return _http_error_response(request, exc)
        if isinstance(exc, ClientDisconnect):
            return disconnect_response(exc, _request_line(request))
        return internal_error_response(exc, _request_line(request), debug)

    for cls in (VisionServeError, RequestValidationError, StarletteHTTPException, ClientDisconnect):
        app.add_exception_handler(cls, handle)


class CatchAllMiddleware:
    """Turns any exception that escapes the app into a 500 with an error id (when the answer has
    not started; otherwise the connection is dropped after logging)."""

    def __init__(self, app: ASGIApp, debug: bool = False) -> None:
        self.app = app
        self.debug = debug

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:  # noqa: BLE001 - the last line of defence: answer 500, log with an id
            line = f"{scope.get('method', '')} {scope.get('path', '')}"
            if isinstance(exc, VisionServeError):
                response = visionserve_error_response(exc, line, self.debug)
            elif isinstance(exc, ClientDisconnect):
                response = disconnect_response(exc, line)
            else:
                response = internal_error_response(exc, line, self.debug)
            if started:
                return
            await response(scope, receive, send)


#: The path prefix of the KServe v2 protocol, whose errors are ``{"error": "message"}``.
KSERVE_PREFIX = "/v2"
#: Error bodies longer than this pass unchanged (ours are a few hundred bytes).
_MAX_ERROR_BODY = 64 * 1024


def kserve_error_body(body: bytes) -> bytes:
    """``{"error": {"code": ..., "message": m, ...}}`` as KServe's ``{"error": m}``; any other body
    (already in KServe's shape, or not ours) unchanged."""
    try:
        document = json.loads(body)
    except ValueError:
        return body
    error = document.get("error") if isinstance(document, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("message"), str):
        return body
    return json.dumps({"error": error["message"]}, ensure_ascii=False, separators=(",", ":")).encode()


class KServeErrorShape:
    """Answers every JSON error under ``/v2`` in KServe's shape, whichever layer raised it (an
    unknown route or method, the API-key middleware, body limits, draining, the catch-all 500).
    Status and headers are kept; only error bodies (status >= 400, JSON) are buffered."""

    def __init__(self, app: ASGIApp, prefix: str = KSERVE_PREFIX) -> None:
        self.app = app
        self.prefix = prefix

    def _applies(self, scope: Scope) -> bool:
        path: str = scope.get("path", "")
        return scope["type"] == "http" and (path == self.prefix or path.startswith(self.prefix + "/"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._applies(scope):
            await self.app(scope, receive, send)
            return
        held: Message | None = None
        chunks: list[bytes] = []

        async def reshaping_send(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start" and _is_json_error(message):
                held = message
                return
            if held is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False) and sum(map(len, chunks)) <= _MAX_ERROR_BODY:
                return
            body = b"".join(chunks)
            if not message.get("more_body", False):
                body = kserve_error_body(body)
            headers = [(k, v) for k, v in held["headers"] if k.lower() != b"content-length"]
            if not message.get("more_body", False):
                headers.append((b"content-length", str(len(body)).encode()))
            await send({**held, "headers": headers})
            await send({"type": "http.response.body", "body": body, "more_body": message.get("more_body", False)})
            held = None

        await self.app(scope, receive, reshaping_send)


def _is_json_error(message: Message) -> bool:
    if int(message["status"]) < 400:
        return False
    content_type = next((v for k, v in message.get("headers", []) if k.lower() == b"content-type"), b"")
    return bytes(content_type).startswith(b"application/json")
