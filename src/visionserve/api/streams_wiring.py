"""Streams in the app: the manager built in the lifespan, declared streams started, the token
check the auth middleware uses, and the per-stream metrics.

=========================================  =========  ==============================================
name                                       type       labels
=========================================  =========  ==============================================
visionserve_stream_frames_read_total       counter    stream: frames read from the source
visionserve_stream_frames_processed_total  counter    stream: frames through the model and drawn
visionserve_stream_frames_skipped_total    counter    stream: frames dropped (newest frame wins)
visionserve_stream_inferences_total        counter    stream: forward passes for the stream
visionserve_stream_reconnects_total        counter    stream: reconnections of the source
visionserve_stream_viewers                 gauge      stream: MJPEG viewers and event consumers
visionserve_stream_latency_seconds         gauge      stream, quantile (0.5, 0.95): read to JPEG out
=========================================  =========  ==============================================
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qsl

from fastapi import FastAPI
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import Scope

from visionserve.api.routes.frames_ws import WEBSOCKET_PATH
from visionserve.api.routes.streams import TOKEN_PATHS
from visionserve.errors import VisionServeError
from visionserve.outbound import OutboundPolicy, Resolver, parse_networks
from visionserve.serving.service import DetectionService
from visionserve.settings import Settings
from visionserve.streams import tokens
from visionserve.streams.manager import StreamLimits, StreamManager
from visionserve.streams.reader import ReaderConfig
from visionserve.streams.sources import SourcePolicy
from visionserve.streams.stages import StageFactory

logger = logging.getLogger(__name__)


def stream_secret(settings: Settings) -> bytes:
    """The key that signs stream tokens: the configured one, or random for this process."""
    if settings.stream_token_secret is not None:
        return settings.stream_token_secret.get_secret_value().encode()
    return secrets.token_bytes(32)


def build_manager(
    settings: Settings, service: DetectionService, resolver: Resolver, stages: StageFactory
) -> StreamManager:
    urls = OutboundPolicy(
        settings.stream_url_hosts,
        parse_networks(settings.outbound_allow_networks),
        resolver,
        "stream source",
        "stream_url_hosts",
    )
    video_dir = Path(settings.video_dir) if settings.video_dir is not None else None
    policy = SourcePolicy(video_dir, settings.stream_devices, urls)
    timeout = settings.stream_stall_timeout
    reader = ReaderConfig(stall_timeout=timeout, open_timeout=timeout)
    limits = StreamLimits(settings.stream_max, settings.stream_idle_timeout)
    return StreamManager(service, policy, reader, limits, stages)


async def start_streams(
    app: FastAPI, settings: Settings, service: DetectionService, resolver: Resolver, stages: StageFactory
) -> None:
    """The manager in ``app.state.streams``, and the settings' streams started (one that cannot
    start is logged and left out: the others and the server run)."""
    manager = build_manager(settings, service, resolver, stages)
    app.state.streams = manager
    manager.start()
    for spec in settings.streams:
        try:
            await manager.create(spec, declared=True)
        except VisionServeError as exc:
            logger.error("stream %s of the settings did not start: %s", spec.name, exc)


async def stop_streams(app: FastAPI) -> None:
    manager: StreamManager | None = getattr(app.state, "streams", None)
    app.state.streams = None
    if manager is not None:
        await manager.close()


def token_check(secret: bytes, clock: Callable[[], float] = time.time) -> Callable[[Scope], bool]:
    """For the auth middleware: whether a request is a GET of a stream's images or events, or the
    ``/v1/detect/ws`` WebSocket, whose single ``token`` query parameter is valid for that stream (or for
    :data:`~visionserve.streams.tokens.WEBSOCKET_SUBJECT`); see :mod:`visionserve.streams.tokens`."""

    def check(scope: Scope) -> bool:
        subject = _token_subject(scope)
        if subject is None:
            return False
        query = scope.get("query_string", b"").decode("latin-1")
        given = [value for name, value in parse_qsl(query) if name == "token"]
        return len(given) == 1 and tokens.verify(secret, subject, given[0], clock())

    return check


def _token_subject(scope: Scope) -> str | None:
    """What a token must have been issued for to open this request; None where none can."""
    if scope["type"] == "websocket":
        return tokens.WEBSOCKET_SUBJECT if scope["path"] == WEBSOCKET_PATH else None
    if scope["type"] != "http" or scope["method"] not in {"GET", "HEAD"}:
        return None
    match = TOKEN_PATHS.match(scope["path"])
    return None if match is None else match.group(1)


class StreamCollector(Collector):
    """The per-stream metrics of the module doc, read from the manager at scrape time."""

    def __init__(self, manager: Callable[[], StreamManager | None]) -> None:
        self._manager = manager

    def collect(self) -> Iterator[Metric]:
        counters = {
            name: CounterMetricFamily(f"visionserve_stream_{name}", text, labels=["stream"])
            for name, text in (
                ("frames_read", "Frames read from the source"),
                ("frames_processed", "Frames through the model and drawn"),
                ("frames_skipped", "Frames dropped because a newer one came"),
                ("inferences", "Forward passes for the stream"),
                ("reconnects", "Reconnections of the source"),
            )
        }
        viewers = GaugeMetricFamily(
            "visionserve_stream_viewers", "MJPEG viewers and event consumers", labels=["stream"]
        )
        latency = GaugeMetricFamily(
            "visionserve_stream_latency_seconds", "Frame read to JPEG out", labels=["stream", "quantile"]
        )
        manager = self._manager()
        for session in manager.sessions() if manager is not None else []:
            values = {
                "frames_read": session.reader.frames_read,
                "frames_processed": session.counters.processed,
                "frames_skipped": session.skipped,
                "inferences": session.counters.inferences,
                "reconnects": session.reader.reconnects,
            }
            for name, value in values.items():
                counters[name].add_metric([session.id], value)
            viewers.add_metric([session.id], session.frames.count + session.events.count)
            for quantile in (0.5, 0.95):
                ms = session.latency_ms(quantile)
                if ms is not None:
                    latency.add_metric([session.id, str(quantile)], ms / 1000.0)
        yield from counters.values()
        yield viewers
        yield latency
