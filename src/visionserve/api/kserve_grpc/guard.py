"""The edge of the gRPC server: API keys, draining, requests in flight, metrics and error codes.

:class:`Guard` is a server interceptor, so it decides from the call's method and metadata alone,
before the request message is deserialized:

* with API keys configured, every method but ``ServerLive`` and ``ServerReady`` (the health probes,
  public over HTTP too) needs ``authorization: Bearer <key>`` or ``x-api-key: <key>`` metadata, the
  same keys as HTTP (``UNAUTHENTICATED`` otherwise);
* methods of the protocol that visionserve does not serve (shared memory, trace and log settings)
  answer ``UNIMPLEMENTED``;
* once the server drains (SIGTERM), new calls but the probes answer ``UNAVAILABLE``.

Calls that pass run wrapped: unary calls are counted in the app's :class:`InFlight` (so a drain waits
for them) and in the request metrics (route = the full method name, method ``GRPC``, status = the gRPC
code's name; requests in progress); :class:`VisionServeError` becomes its :data:`GRPC_STATUS` code
with its message, anything else ``INTERNAL`` with an error id that the log line carries.
``ModelStreamInfer`` is long-lived: its messages are counted one by one by the servicer, the stream
itself is neither timed nor waited for.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import grpc
from pydantic import SecretStr
from starlette.datastructures import Headers

from visionserve.api.auth import key_matches, presented_key
from visionserve.api.errors import grpc_status_of, log_internal
from visionserve.api.limits import InFlight
from visionserve.api.metrics import Metrics
from visionserve.errors import OverloadedError, VisionServeError
from visionserve.serving.service import DetectionService

SERVICE = "inference.GRPCInferenceService"
#: Methods that never need a key, are answered while draining and do not hold a drain back.
PROBES = frozenset({"ServerLive", "ServerReady"})
#: Methods of the service that visionserve serves (the others answer UNIMPLEMENTED).
SERVED = PROBES | {
    "ModelReady",
    "ServerMetadata",
    "ModelMetadata",
    "ModelConfig",
    "ModelStatistics",
    "ModelInfer",
    "ModelStreamInfer",
    "RepositoryIndex",
    "RepositoryModelLoad",
    "RepositoryModelUnload",
}
#: The ``method`` label of gRPC calls in the request metrics.
METRICS_METHOD = "GRPC"

Refusal = tuple[grpc.StatusCode, str]
Trailers = tuple[tuple[str, str], ...]


def failure(exc: BaseException, method: str, debug: bool) -> tuple[grpc.StatusCode, str, Trailers]:
    """The code, message and trailing metadata that answer ``exc`` (``retry-after`` seconds for an
    overload); an internal error is logged with its traceback under an id that the message gives."""
    if isinstance(exc, VisionServeError):
        code = grpc_status_of(exc)
        if code is not grpc.StatusCode.INTERNAL:
            retry = (
                (("retry-after", str(max(1, math.ceil(exc.retry_after)))),) if isinstance(exc, OverloadedError) else ()
            )
            return code, str(exc), retry
    error_id, trace = log_internal(exc, f"GRPC {method}", debug)
    detail = str(exc) if isinstance(exc, VisionServeError) else "internal error"
    return grpc.StatusCode.INTERNAL, f"{detail} (error id {error_id})" + (f"\n{trace}" if trace else ""), ()


class Guard(grpc.aio.ServerInterceptor):
    """See the module doc. ``keys``: the API keys (none: no key needed); ``debug``: tracebacks in
    internal errors' messages, as over HTTP."""

    def __init__(
        self,
        service: DetectionService,
        metrics: Metrics,
        in_flight: InFlight,
        keys: Sequence[SecretStr] = (),
        debug: bool = False,
    ) -> None:
        self.service = service
        self.metrics = metrics
        self.in_flight = in_flight
        self.keys = tuple(keys)
        self.debug = debug

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        refusal = self.refusal(method.rsplit("/", 1)[-1], handler_call_details.invocation_metadata)
        if refusal is not None:
            return self._refusing(handler, method, refusal)
        if handler.request_streaming or handler.response_streaming:
            return self._streaming(handler, method)
        return self._unary(handler, method)

    def refusal(self, name: str, metadata: Sequence[tuple[str, str | bytes]] | None) -> Refusal | None:
        """Why a call of method ``name`` with ``metadata`` is refused (None: it is not)."""
        if name in PROBES:
            return None
        if self.keys:
            headers = Headers({key: value for key, value in metadata or () if isinstance(value, str)})
            key = presented_key(headers)
            if key is None:
                message = "missing API key: send metadata 'authorization: Bearer <key>' or 'x-api-key: <key>'"
                return grpc.StatusCode.UNAUTHENTICATED, message
            if not key_matches(key, self.keys):
                return grpc.StatusCode.UNAUTHENTICATED, "invalid API key"
        if name not in SERVED:
            return grpc.StatusCode.UNIMPLEMENTED, f"visionserve does not serve {SERVICE}/{name}"
        if self.service.draining:
            return grpc.StatusCode.UNAVAILABLE, "the server is shutting down and takes no new requests"
        return None

    def model_label(self, request: object) -> str:
        """The model a request names, for the metrics ('' when it names none that the repository has)."""
        name = getattr(request, "model_name", "") or getattr(request, "name", "")
        return name if isinstance(name, str) and name in self.service.repository.names() else ""

    def _observe(self, method: str, model: str, code: grpc.StatusCode, started: float) -> None:
        self.metrics.observe_request(method, METRICS_METHOD, model, code.name, time.perf_counter() - started)

    def _refusing(
        self, handler: grpc.RpcMethodHandler[Any, Any], method: str, refusal: Refusal
    ) -> grpc.RpcMethodHandler[Any, Any]:
        """A handler that answers ``refusal`` without deserializing the request."""
        code, message = refusal

        async def refuse(request: object, context: grpc.aio.ServicerContext[Any, Any]) -> None:
            self._observe(method, "", code, time.perf_counter())
            await context.abort(code, message)

        if handler.request_streaming or handler.response_streaming:
            return grpc.stream_stream_rpc_method_handler(refuse)
        return grpc.unary_unary_rpc_method_handler(refuse)

    def _unary(self, handler: grpc.RpcMethodHandler[Any, Any], method: str) -> grpc.RpcMethodHandler[Any, Any]:
        call: Any = handler.unary_unary
        probe = method.rsplit("/", 1)[-1] in PROBES

        async def behavior(request: object, context: grpc.aio.ServicerContext[Any, Any]) -> object:
            started, code = time.perf_counter(), grpc.StatusCode.OK
            self.metrics.in_progress.inc()
            try:
                with contextlib.nullcontext() if probe else self.in_flight.track():
                    return await call(request, context)
            except asyncio.CancelledError:
                code = grpc.StatusCode.CANCELLED  # the client went away, or the server stops
                raise
            except Exception as exc:
                code, message, trailers = failure(exc, method, self.debug)
                await context.abort(code, message, trailing_metadata=trailers)
                raise  # unreachable: abort raises
            finally:
                self.metrics.in_progress.dec()
                self._observe(method, self.model_label(request), code, started)

        return grpc.unary_unary_rpc_method_handler(
            behavior, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
        )

    def _streaming(self, handler: grpc.RpcMethodHandler[Any, Any], method: str) -> grpc.RpcMethodHandler[Any, Any]:
        call: Any = handler.stream_stream

        async def behavior(requests: AsyncIterator[object], context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            try:
                async for response in call(requests, context):
                    yield response
            except Exception as exc:  # noqa: BLE001 - every failure becomes a status code here
                code, message, trailers = failure(exc, method, self.debug)
                await context.abort(code, message, trailing_metadata=trailers)

        return grpc.stream_stream_rpc_method_handler(
            behavior, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
        )
