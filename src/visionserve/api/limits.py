"""Request limits enforced before the routes run: body size, and draining on shutdown.

* :class:`BodyLimitMiddleware` refuses a body over ``max_bytes`` with 413: at once when the
  ``Content-Length`` says so, otherwise as soon as the streamed chunks pass the limit (the rest is
  never read or buffered).
* :class:`BodyTimeoutMiddleware` answers 408 (and closes the connection) when a request body is
  not complete ``timeout`` seconds after the route first asks for it (a body trickled byte by byte).
* :class:`DrainMiddleware` counts requests in flight (:class:`InFlight`) and, once the service is
  draining, answers new requests with 503 while those in flight finish. Health probes and
  ``/metrics`` are neither counted nor refused; long-lived responses (stream viewers, websockets)
  are refused but not counted: draining ends them instead of waiting for them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from visionserve.api.errors import error_response, visionserve_error_response
from visionserve.errors import ImageTooLargeError, RequestTimeoutError, ShuttingDownError

#: Paths that stay open while draining and do not hold the shutdown back.
PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def too_large(max_bytes: int) -> ImageTooLargeError:
    return ImageTooLargeError(f"request body too large: the limit is {max_bytes} bytes")


class BodyLimitMiddleware:
    """413 for bodies over ``max_bytes``, checked from the header and while streaming."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                response = error_response(400, "bad_request", f"invalid Content-Length header {declared!r}")
                await response(scope, receive, send)
                return
            if int(declared) > self.max_bytes:
                line = f"{scope['method']} {scope['path']}"
                await visionserve_error_response(too_large(self.max_bytes), line, False)(scope, receive, send)
                return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise too_large(self.max_bytes)
            return message

        await self.app(scope, limited_receive, send)


class BodyTimeoutMiddleware:
    """Bounds the time a request body may take: from the first read, the whole body must arrive
    within ``timeout`` seconds, else the read raises :class:`RequestTimeoutError` (408, answered here
    when the route lets it through). Reads after the body (disconnect watches) are not bounded."""

    def __init__(self, app: ASGIApp, timeout: float) -> None:
        self.app = app
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        done = False
        started = False

        async def timed_receive() -> Message:
            nonlocal deadline, done
            if done:
                return await receive()
            deadline = deadline or loop.time() + self.timeout
            try:
                async with asyncio.timeout_at(deadline):  # a timer, where wait_for would make a task
                    message = await receive()
            except TimeoutError:
                raise RequestTimeoutError(f"the request body did not arrive within {self.timeout:g} seconds") from None
            done = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, timed_receive, tracking_send)
        except RequestTimeoutError as exc:
            if started:
                raise
            await visionserve_error_response(exc, f"{scope['method']} {scope['path']}", False)(scope, receive, send)


class InFlight:
    """Requests being served now (probes excluded), and a way to wait until there are none."""

    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @contextlib.contextmanager
    def track(self) -> Iterator[None]:
        """Count one request for the duration of the block."""
        self.count += 1
        self._idle.clear()
        try:
            yield
        finally:
            self.count -= 1
            if self.count == 0:
                self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        """True once no request is in flight; False when ``timeout`` seconds pass first."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True


class DrainMiddleware:
    """Counts requests in ``in_flight``; refuses new ones with 503 once ``draining()`` is true."""

    def __init__(
        self,
        app: ASGIApp,
        in_flight: InFlight,
        draining: Callable[[], bool],
        long_lived: Callable[[str], bool] = lambda path: False,
    ) -> None:
        self.app = app
        self.in_flight = in_flight
        self.draining = draining
        self.long_lived = long_lived

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in {"http", "websocket"} or scope["path"] in PROBE_PATHS:
            await self.app(scope, receive, send)
            return
        if self.draining():
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1001})
                return
            error = ShuttingDownError("the server is shutting down and takes no new requests")
            await visionserve_error_response(error, f"{scope['method']} {scope['path']}", False)(scope, receive, send)
            return
        if self.long_lived(scope["path"]):
            await self.app(scope, receive, send)
            return
        with self.in_flight.track():
            await self.app(scope, receive, send)
