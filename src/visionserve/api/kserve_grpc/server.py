"""Start and stop the gRPC server (``grpc.aio``) in the app's lifespan, on the event loop of the HTTP server.

It listens on ``settings.host:settings.grpc_port`` without TLS (put a TLS-terminating proxy in front,
as for HTTP), takes messages of at most ``max_body_bytes`` (larger ones get ``RESOURCE_EXHAUSTED``
from gRPC itself, before anything is parsed) and at most ``max_connections`` calls at once.
"""

from __future__ import annotations

import logging

import grpc

from visionserve.api.kserve_grpc.guard import Guard
from visionserve.api.kserve_grpc.protos import grpc_service_pb2_grpc as pb_grpc
from visionserve.api.kserve_grpc.servicer import InferenceServicer
from visionserve.api.limits import InFlight
from visionserve.api.metrics import Metrics
from visionserve.errors import ConfigError
from visionserve.serving.service import DetectionService
from visionserve.settings import Settings

logger = logging.getLogger(__name__)
#: Seconds that calls still running get when the server stops (the drain has already waited for them).
STOP_GRACE_S = 1.0


def address(host: str, port: int) -> str:
    """``host:port``, an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def start_grpc(
    settings: Settings, service: DetectionService, metrics: Metrics, in_flight: InFlight
) -> grpc.aio.Server | None:
    """The started server, or None when ``settings.grpc_port`` is unset.

    Raises :class:`ConfigError` when the port cannot be bound (in use, or a bad host)."""
    if settings.grpc_port is None:
        return None
    guard = Guard(service, metrics, in_flight, settings.api_keys, settings.debug)
    server = grpc.aio.server(
        interceptors=[guard],
        options=[
            ("grpc.max_receive_message_length", settings.max_body_bytes),
            ("grpc.max_send_message_length", -1),
            ("grpc.so_reuseport", 0),  # a port in use is an error, not a second listener
        ],
        maximum_concurrent_rpcs=settings.max_connections,
    )
    servicer = InferenceServicer(service, metrics, settings.debug)
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    where = address(settings.host, settings.grpc_port)
    try:
        server.add_insecure_port(where)
    except RuntimeError as exc:
        raise ConfigError(f"cannot listen for gRPC on {where}: {exc}") from None
    await server.start()
    logger.info("serving KServe v2 over gRPC on %s", where)
    return server


async def stop_grpc(server: grpc.aio.Server | None, grace: float = STOP_GRACE_S) -> None:
    """Stop ``server`` (if any): refuse new calls, give running ones ``grace`` seconds, then cancel them."""
    if server is not None:
        await server.stop(grace)
