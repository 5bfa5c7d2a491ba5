"""What the protocol routers (DeepStack, KServe v2, TF Serving, Roboflow, upload) share.

Each protocol answers errors in its own body shape. :func:`protocol_route` builds an ``APIRoute``
class that catches every error of a route and lets the protocol render it, with the status of the
one table in :mod:`visionserve.api.errors`; 5xx answers get an error id that the log line carries.
API keys are checked before any route runs, by :class:`~visionserve.api.auth.ApiKeyMiddleware`;
:func:`auth_renderer` lets it answer a 401 in the protocol's shape.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from visionserve.api.errors import CLIENT_DISCONNECTED, error_headers, log_expected, log_internal, status_of
from visionserve.errors import AuthenticationError, VisionServeError
from visionserve.settings import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProtocolError:
    """An error as a protocol renders it: status, message, headers, and a traceback in debug mode."""

    status: int
    message: str
    headers: dict[str, str]
    traceback: str | None = None


ErrorRenderer = Callable[[ProtocolError], Response]


def describe_error(exc: Exception, request: Request, debug: bool) -> ProtocolError:
    """The status and message of ``exc`` (the table's status for our errors, 422 for invalid path or
    query parameters, the HTTP status for Starlette's, 500 otherwise). A 500 is logged with its
    traceback under an error id that the message names; other 5xx (deliberate: a model not loaded,
    shutting down) and a client that disconnected are logged on one line by :func:`log_expected`."""
    if isinstance(exc, RequestValidationError):
        problems = "; ".join(f"{error['loc'][-1]}: {error['msg']}" for error in exc.errors())
        return ProtocolError(422, f"invalid request: {problems}", {})
    if isinstance(exc, StarletteHTTPException):
        message = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        return ProtocolError(exc.status_code, message, dict(exc.headers or {}))
    line = f"{request.method} {request.url.path}"
    if isinstance(exc, ClientDisconnect):
        log_expected(CLIENT_DISCONNECTED[0], line, exc)
        return ProtocolError(CLIENT_DISCONNECTED[0], "the client disconnected", {})
    status = int(status_of(exc)[0]) if isinstance(exc, VisionServeError) else 500
    headers = error_headers(exc) if isinstance(exc, VisionServeError) else {}
    if status != 500:
        log_expected(status, line, exc)
        return ProtocolError(status, str(exc), headers)
    error_id, trace = log_internal(exc, line, debug)
    detail = str(exc) if isinstance(exc, VisionServeError) else "internal error"
    return ProtocolError(status, f"{detail} (error id {error_id})", headers, trace)


def protocol_route(render: ErrorRenderer) -> type[APIRoute]:
    """An ``APIRoute`` class whose routes answer every error with ``render``."""

    class ProtocolRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def run(request: Request) -> Response:
                try:
                    return await handler(request)
                except Exception as exc:  # noqa: BLE001 - every failure answers in the protocol's shape
                    settings: Settings = request.app.state.settings
                    return render(describe_error(exc, request, settings.debug))

            return run

    return ProtocolRoute


def auth_renderer(render: ErrorRenderer) -> Callable[[AuthenticationError], Response]:
    """The 401 answer of a protocol, for the API-key middleware (which runs before any route)."""

    def rendered(error: AuthenticationError) -> Response:
        return render(ProtocolError(401, str(error), error_headers(error)))

    return rendered
