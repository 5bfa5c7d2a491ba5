"""The streams of one server: create, list, find, pause, resume, delete, reap.

**Priority.** Stream frames go through the served models like synchronous requests, at
``Priority.HIGH``: a viewer is waiting on the line, and each stream holds at most one frame in the
batcher at a time (the newest frame wins; nothing queues), so N streams add at most N items to a
model's queue. Requests and stream frames are then served in arrival order and share forward passes:
neither can starve the other, and frames of several streams share batches. Job items (``LOW``) still
yield to both. A frame refused by a full queue is skipped, not retried.

**Reaping.** With ``idle_timeout`` > 0, a stream created through the API that has had no image
viewer and no event consumer for that many seconds is stopped and removed (a check every few
seconds). Streams declared in the settings file are never reaped.

Scale: a server runs the streams it is given; spread cameras over machines by running several
servers, each with its own ``streams:`` list.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from visionserve.batching.batcher import Priority
from visionserve.core.detections import Detections
from visionserve.core.thresholds import floor_of
from visionserve.errors import InvalidParameterError, OverloadedError, StreamNotFoundError, WrongTaskError
from visionserve.models.spec import Task
from visionserve.pipeline import PredictOptions, class_thresholds, resolve_classes
from visionserve.serving.service import DetectionService
from visionserve.streams.analysis import TrackingStage
from visionserve.streams.reader import ReaderConfig
from visionserve.streams.session import Detect, StreamSession
from visionserve.streams.sources import Opener, Source, SourcePolicy, open_capture, probe, resolve_source
from visionserve.streams.spec import StreamSpec
from visionserve.streams.stages import StageFactory, Stages
from visionserve.types import BGRImage

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamLimits:
    """``max_streams``: streams at once; ``idle_timeout``: seconds before an unwatched API stream is
    reaped (0: never); ``reap_every``: seconds between checks."""

    max_streams: int = 16
    idle_timeout: float = 0.0
    reap_every: float = 2.0


def no_stages(spec: StreamSpec, labels: object) -> Stages:
    """Stages for a spec that asks for nothing beyond boxes (tracking, zones and motion refused)."""
    if spec.zones or spec.lines or spec.motion:
        raise InvalidParameterError("zones, lines and motion gating are not available on this server")
    return Stages()


class StreamManager:
    """The streams of an app (module doc); used on the event loop."""

    def __init__(
        self,
        service: DetectionService,
        policy: SourcePolicy,
        reader_config: ReaderConfig,
        limits: StreamLimits,
        stages: StageFactory = no_stages,
        opener: Opener = open_capture,
    ) -> None:
        self.service = service
        self.policy = policy
        self.reader_config = reader_config
        self.limits = limits
        self._stages = stages
        self._opener = opener
        self._streams: dict[str, StreamSession] = {}
        self._reaper: asyncio.Task[None] | None = None
        self._clock: Callable[[], float] = time.monotonic

    def start(self) -> None:
        if self.limits.idle_timeout > 0:
            self._reaper = asyncio.get_running_loop().create_task(self._reap_forever(), name="stream-reaper")

    async def close(self) -> None:
        """Stop every stream and the reaper."""
        if self._reaper is not None:
            self._reaper.cancel()
            await asyncio.gather(self._reaper, return_exceptions=True)
        await asyncio.gather(*(self._remove(stream_id) for stream_id in list(self._streams)))

    def end_viewers(self) -> None:
        """End every MJPEG and event response (graceful shutdown must not wait for them)."""
        for session in self._streams.values():
            session.end_viewers()

    # -- operations ---------------------------------------------------------------------------

    async def create(self, spec: StreamSpec, declared: bool = False) -> StreamSession:
        """A started stream for ``spec``; the source, model and options are checked first (4xx
        errors: :class:`SourceRefusedError`, :class:`SourceNotFoundError`, :class:`BadSourceError`,
        :class:`ModelNotFoundError`, :class:`WrongTaskError`, :class:`InvalidParameterError`,
        :class:`OverloadedError` when ``max_streams`` run already)."""
        stream_id = spec.name or secrets.token_hex(6)
        if stream_id in self._streams:
            raise InvalidParameterError(f"a stream named {stream_id!r} exists already")
        if len(self._streams) >= self.limits.max_streams:
            raise OverloadedError(f"this server runs at most {self.limits.max_streams} streams", retry_after=30)
        model = self.service.resolve_name(spec.model)
        if self.service.spec(model).task is Task.CLASSIFY:
            raise WrongTaskError(f"model {model!r} classifies images and gives no boxes: streams need a box model")
        labels = self.service.labels(model)
        classes = resolve_classes(spec.classes, labels) if spec.classes else None
        source = await asyncio.to_thread(self._checked_source, spec.source, not declared)
        threshold = class_thresholds(self.service.spec(model), labels, spec.conf)
        stages = self._stages(spec.model_copy(update={"conf": floor_of(threshold)}), labels)
        if isinstance(stages.tracker, TrackingStage):
            stages.tracker.conf = threshold  # per-class when conf=best
        detect_conf = stages.detect_conf if stages.detect_conf is not None else spec.conf
        options = PredictOptions(conf=detect_conf, classes=classes)
        detect = _detector(self.service, model, options)
        config = ReaderConfig(
            self.reader_config.stall_timeout,
            self.reader_config.open_timeout,
            self.reader_config.backoff_initial,
            self.reader_config.backoff_max,
            spec.loop,
        )
        session = StreamSession(
            stream_id, spec, source, detect, labels, stages, config, opener=self._opener, declared=declared, model=model
        )
        if stream_id in self._streams:  # created meanwhile, while the source was checked
            raise InvalidParameterError(f"a stream named {stream_id!r} exists already")
        self._streams[stream_id] = session
        session.start()
        logger.info("stream %s started: %s on %s", stream_id, model, source.shown)
        return session

    def _checked_source(self, text: str, probe_file: bool) -> Source:
        source = resolve_source(text, self.policy)
        if probe_file:
            probe(source, self._opener, self.reader_config.open_timeout)
        return source

    def sessions(self) -> list[StreamSession]:
        return sorted(self._streams.values(), key=lambda s: s.created_at)

    def get(self, stream_id: str) -> StreamSession:
        session = self._streams.get(stream_id)
        if session is None:
            raise StreamNotFoundError(f"no stream {stream_id!r}")
        return session

    async def delete(self, stream_id: str) -> None:
        self.get(stream_id)
        await self._remove(stream_id)

    async def _remove(self, stream_id: str) -> None:
        session = self._streams.pop(stream_id, None)
        if session is not None:
            await session.close()
            logger.info("stream %s stopped", stream_id)

    # -- reaping ------------------------------------------------------------------------------

    def reap(self) -> list[str]:
        """Ids of the API streams unwatched for longer than ``idle_timeout`` (see module doc)."""
        now = self._clock()
        return [
            session.id
            for session in self._streams.values()
            if not session.declared
            and session.idle_since is not None
            and now - session.idle_since > self.limits.idle_timeout
        ]

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(self.limits.reap_every)
            for stream_id in self.reap():
                logger.info("stream %s reaped: no viewer for %.0f s", stream_id, self.limits.idle_timeout)
                with contextlib.suppress(StreamNotFoundError):
                    await self.delete(stream_id)


def _detector(service: DetectionService, model: str, options: PredictOptions) -> Detect:
    async def detect(image: BGRImage) -> Detections:
        results = await service.detect(model, [image], options, priority=Priority.HIGH)
        prediction = results[0].prediction
        if not isinstance(prediction, Detections):
            raise WrongTaskError(f"model {model!r} gives no boxes")
        return prediction

    return detect
