"""The FastAPI application: :func:`create_app` wires settings, service, metrics and routes.

Nothing is global: the service (which loads the models) is built and started in the lifespan and
kept in ``app.state.service``; routes reach it through :mod:`visionserve.api.deps`. Middleware,
outermost first: cache headers, metrics, CORS (only with ``cors_origins``; it answers preflights before
any key is asked for), the KServe error shape under ``/v2``, catch-all 500, body timeout, API keys,
draining, body size limit.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from visionserve import __version__
from visionserve.api.auth import PUBLIC_PATHS, ApiKeyMiddleware
from visionserve.api.errors import CatchAllMiddleware, KServeErrorShape, install_error_handlers
from visionserve.api.jobs_wiring import JobsBodyLimit, start_jobs, stop_jobs
from visionserve.api.kserve_grpc.server import start_grpc, stop_grpc
from visionserve.api.limits import BodyTimeoutMiddleware, DrainMiddleware, InFlight
from visionserve.api.metrics import Metrics, MetricsMiddleware
from visionserve.api.openapi import install_openapi
from visionserve.api.routes import (
    deepstack,
    evaluate,
    file_upload,
    frames_ws,
    health,
    jobs,
    kserve_v2,
    models,
    native,
    roboflow,
    streams,
    tfserving,
    upload,
)
from visionserve.api.streams_wiring import StreamCollector, start_streams, stop_streams, stream_secret, token_check
from visionserve.api.uploads import UploadStore
from visionserve.api.web import STATIC_PREFIX, NoStoreMiddleware, install_web
from visionserve.jobs.service import JobService
from visionserve.models.repository import ModelRepository
from visionserve.outbound import OutboundPolicy, Resolver, parse_networks, system_resolver
from visionserve.serving.service import DetectionService, ServiceConfig
from visionserve.serving.threads import set_opencv_threads
from visionserve.settings import Settings
from visionserve.streams.analysis import build_stages
from visionserve.streams.stages import StageFactory

logger = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    repository: ModelRepository,
    *,
    set_threads: Callable[[int], None] = set_opencv_threads,
    service: DetectionService | None = None,
    jobs_service: JobService | None = None,
    resolver: Resolver = system_resolver,
    stream_stages: StageFactory = build_stages,
) -> FastAPI:
    """The HTTP app serving ``repository`` under ``settings``.

    The lifespan builds a :class:`DetectionService` (or starts the given ``service``), starts loading
    every model in the background (``/readyz`` answers 503 until they are warm) and closes it on
    shutdown. ``set_threads`` applies OpenCV's thread count (tests inject a recorder). The job service
    (``app.state.jobs``) is built from the settings, or ``jobs_service`` is started, in the lifespan too.
    ``resolver`` resolves the hosts of URLs the server fetches itself (see :mod:`visionserve.outbound`).
    Live streams (``app.state.streams``) start after the jobs and stop before them; ``stream_stages``
    builds each stream's tracker, counters and motion gate. With ``settings.grpc_port`` the KServe v2
    gRPC server (:mod:`visionserve.api.kserve_grpc`) starts last and stops first, on the same service.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        running = service or DetectionService(
            repository, ServiceConfig.from_settings(settings), observer=metrics, set_threads=set_threads
        )
        app.state.service = running
        await running.start()
        grpc_server = None
        try:
            await start_jobs(app, settings, repository, jobs_service, running, resolver)
            await start_streams(app, settings, running, resolver, stream_stages)
            grpc_server = await start_grpc(settings, running, metrics, in_flight)
            logger.info("serving %d model(s) on http://%s:%d", len(repository.names()), settings.host, settings.port)
            yield
        finally:
            try:
                await stop_grpc(grpc_server)
                await stop_streams(app)
                await stop_jobs(app)
            finally:
                await running.close()
                app.state.service = None

    app = FastAPI(
        title="visionserve",
        version=__version__,
        description="Object detection over HTTP with dynamic batching.",
        lifespan=lifespan,
    )
    metrics = Metrics(lambda: getattr(app.state, "service", None))
    in_flight = InFlight()
    app.state.settings = settings
    app.state.metrics = metrics
    uploads_dir = settings.upload_dir or settings.data_dir / "uploads"
    app.state.uploads = UploadStore(uploads_dir, settings.upload_max_tasks, settings.upload_max_bytes)
    app.state.in_flight = in_flight
    app.state.url_images = OutboundPolicy(
        settings.url_image_hosts,
        parse_networks(settings.outbound_allow_networks),
        resolver,
        "url image",
        "url_image_hosts",
    )
    app.state.service = None
    app.state.jobs = None
    app.state.streams = None
    app.state.stream_secret = stream_secret(settings)
    metrics.registry.register(StreamCollector(lambda: app.state.streams))

    def draining() -> bool:
        running: DetectionService | None = app.state.service
        return running is not None and running.draining

    install_error_handlers(app, settings.debug)
    # add_middleware puts each one outside the previous: innermost first.
    app.add_middleware(JobsBodyLimit, max_bytes=settings.max_body_bytes, jobs_max_bytes=settings.jobs_max_body_bytes)
    app.add_middleware(DrainMiddleware, in_flight=in_flight, draining=draining, long_lived=streams.is_long_lived)
    app.add_middleware(
        ApiKeyMiddleware,
        keys=settings.api_keys,
        public_paths=PUBLIC_PATHS | {"/"},  # the web page shows its sign-in form without a key
        public_prefixes=(STATIC_PREFIX,),
        realms=(*deepstack.AUTH_REALMS, *roboflow.AUTH_REALMS, *file_upload.AUTH_REALMS),
        max_body_bytes=settings.max_body_bytes,
        token_check=token_check(app.state.stream_secret),
    )
    app.add_middleware(BodyTimeoutMiddleware, timeout=settings.body_timeout)  # bounds the key scan's reads too
    app.add_middleware(CatchAllMiddleware, debug=settings.debug)
    app.add_middleware(KServeErrorShape)
    if settings.cors_origins:
        add_cors(app, settings.cors_origins)
    app.add_middleware(MetricsMiddleware, metrics=metrics, long_lived=streams.is_long_lived)
    app.add_middleware(NoStoreMiddleware)
    app.include_router(health.router)
    app.include_router(models.router)
    app.include_router(native.router)
    app.include_router(jobs.router)
    app.include_router(evaluate.router)
    app.include_router(streams.router)
    app.include_router(frames_ws.router)
    for protocol in (deepstack, kserve_v2, tfserving, roboflow, upload, file_upload):
        app.include_router(protocol.router)
    install_openapi(app)
    app.state.web_version = install_web(app)
    return app


#: Response headers that a cross-origin page may read (besides the CORS-safelisted ones).
CORS_EXPOSED_HEADERS = ("Retry-After", "WWW-Authenticate", "Inference-Header-Content-Length", "Content-Disposition")


def add_cors(app: FastAPI, origins: tuple[str, ...]) -> None:
    """Starlette's ``CORSMiddleware`` for ``origins``, outside the API-key middleware (a preflight
    carries no key; it is answered before any key is asked for, while the real request still needs
    one): any method and request header (keys travel in ``Authorization`` or ``X-API-Key``);
    credentials only for listed origins, never with ``*`` (a page of any origin must not ride on a
    browser's cookies)."""
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(origins),
        allow_methods=["*"],
        allow_headers=["*"],
        allow_credentials=origins != ("*",),
        expose_headers=list(CORS_EXPOSED_HEADERS),
        max_age=600,
    )


async def drain(app: FastAPI, timeout: float) -> bool:
    """Start refusing new requests (503), end the stream viewers' responses (they would never finish
    on their own), and wait up to ``timeout`` seconds for the requests in flight. True when they all
    finished in time."""
    running: DetectionService | None = app.state.service
    if running is not None:
        running.begin_drain()
    live = app.state.streams
    if live is not None:
        live.end_viewers()
    in_flight: InFlight = app.state.in_flight
    if in_flight.count:
        logger.info("draining: waiting for %d request(s) in flight", in_flight.count)
    return await in_flight.wait_idle(timeout)
