"""One stream: a source reader thread, a processing task on the event loop, and two hubs.

Per frame taken from the reader's one-slot buffer (the newest frame; those overwritten meanwhile
count as skipped): the motion gate (when on) decides whether the model runs, else the last
detections carry over; the model runs once (``detect``, see :mod:`visionserve.streams.manager` for
the priority); the tracker and counters update; the frame is drawn once and, when someone watches
the images, JPEG-encoded once, in a worker thread; the frame goes to the image hub and its event to
the event hub. Nothing queues: while a frame is processed the reader keeps overwriting the slot, so
the next frame processed is the newest one and lag stays bounded whatever the model's speed.

End-to-end latency is measured from the moment a frame was read to the moment its JPEG (or, with no
image viewer, its event) is handed to the viewers. ``max_fps`` spaces processed frames at least
``1 / max_fps`` apart (frames arriving meanwhile are skipped).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from visionserve.core.detections import Detections
from visionserve.errors import ModelNotFoundError, OverloadedError, ShuttingDownError, VisionServeError
from visionserve.models.labels import Labels
from visionserve.render.annotators import Annotator, BoxAnnotator, LabelAnnotator, render
from visionserve.render.json import detections_to_json
from visionserve.streams.hub import Hub
from visionserve.streams.overlay import ProcessedFpsAnnotator, RateMeter
from visionserve.streams.reader import Frame, FrameSlot, ReaderConfig, ReaderEvent, SourceReader
from visionserve.streams.sources import Opener, Source, open_capture
from visionserve.streams.spec import StreamSpec
from visionserve.streams.stages import Stages
from visionserve.streams.state import StreamState, can_change, is_live
from visionserve.types import BGRImage

logger = logging.getLogger(__name__)

#: ``detect(frame)``: the model's detections on a BGR frame, in its pixels.
Detect = Callable[[BGRImage], Awaitable[Detections]]
JPEG_QUALITY = 80
_LATENCY_WINDOW = 300


class ProcessedFrame:
    """A drawn frame and its JPEG encodings, made at most once per height (shared by all viewers)."""

    def __init__(self, index: int, image: BGRImage, read_at: float, jpeg: bytes | None = None) -> None:
        self.index = index
        self.image = image
        self.read_at = read_at
        self._jpegs: dict[int | None, bytes] = {} if jpeg is None else {None: jpeg}
        self._lock = threading.Lock()

    def jpeg(self, height: int | None = None) -> bytes:
        """The frame as JPEG, scaled to ``height`` pixels (None or a larger height: as drawn).
        Blocks while encoding: call it in a worker thread."""
        if height is not None and height >= self.image.shape[0]:
            height = None
        with self._lock:
            if height not in self._jpegs:
                self._jpegs[height] = encode_jpeg(self.image, height)
            return self._jpegs[height]


def encode_jpeg(image: BGRImage, height: int | None = None) -> bytes:
    """``image`` as a JPEG, scaled to ``height`` pixels (aspect kept) when given."""
    scaled: Any = image
    if height is not None:
        width = max(1, round(image.shape[1] * height / image.shape[0]))
        scaled = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", scaled, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return bytes(data.tobytes())


@dataclass
class Counters:
    processed: int = 0
    inferences: int = 0
    skipped: int = 0
    errors: int = 0
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=_LATENCY_WINDOW))


class StreamSession:
    """One running stream (module doc). Created and used on the event loop; ``declared``: it comes
    from the settings file (never reaped)."""

    def __init__(
        self,
        stream_id: str,
        spec: StreamSpec,
        source: Source,
        detect: Detect,
        labels: Labels,
        stages: Stages,
        reader_config: ReaderConfig,
        *,
        opener: Opener = open_capture,
        declared: bool = False,
        model: str = "",
    ) -> None:
        self.id = stream_id
        self.spec = spec
        self.source = source
        self.labels = labels
        self.declared = declared
        self.created_at = time.time()
        self.state = StreamState.STARTING
        self.last_error: str | None = None
        self.frames: Hub[ProcessedFrame] = Hub()
        self.events: Hub[bytes] = Hub()
        self.meter = RateMeter()
        self.counters = Counters()
        self.model = model
        self._detect = detect
        self._stages = stages
        self._annotators: list[Annotator] = [
            BoxAnnotator(),
            LabelAnnotator(labels),
            *stages.annotators,
            ProcessedFpsAnnotator(self.meter),
        ]
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._slot = FrameSlot(self._notify)
        self._reader_done = asyncio.Event()
        self.reader = SourceReader(
            source, self._slot, reader_config, self._reader_event, opener, on_exit=self._reader_exited
        )
        self._source_ended = False
        self._last_detections = Detections.empty()
        self._task: asyncio.Task[None] | None = None

    def _reader_exited(self) -> None:
        """Called in the reader's thread as it ends (its capture released)."""
        self._loop.call_soon_threadsafe(self._reader_done.set)

    def _notify(self) -> None:
        """Called in the reader's thread after each frame: wake the processing task."""
        self._loop.call_soon_threadsafe(self._wake.set)

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        self.reader.start()
        self._task = self._loop.create_task(self._run(), name=f"stream:{self.id}")

    async def close(self) -> None:
        """Stop the reader (waiting, at most a read and an open timeout, until its thread has released
        the capture) and the processing task; end every viewer. The wait is on the loop, not in a
        worker thread: closing many streams must not hold the pool that encodes the others' frames."""
        self._change(StreamState.ENDED)
        self.reader.request_stop()
        if self.reader.started:
            timeout = self.reader.config.stall_timeout + self.reader.config.open_timeout
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._reader_done.wait(), timeout)
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.end_viewers()

    def end_viewers(self) -> None:
        """Close both hubs: MJPEG and event responses end (``latest.jpg`` keeps the last frame)."""
        self.frames.close()
        self.events.close()

    def pause(self) -> None:
        self._change(StreamState.PAUSED)
        if self.state is StreamState.PAUSED:
            self.reader.pause(True)

    def resume(self) -> None:
        if self.state is StreamState.PAUSED:
            self.reader.pause(False)
            self._change(StreamState.RUNNING)

    @property
    def idle_since(self) -> float | None:
        """Monotonic time since which nobody watches images or events (None while someone does)."""
        stamps = [self.frames.idle_since, self.events.idle_since]
        return None if None in stamps else max(s for s in stamps if s is not None)

    def _change(self, new: StreamState, reason: str | None = None) -> None:
        if not can_change(self.state, new):
            return
        if new is not self.state:
            logger.info("stream %s: %s -> %s%s", self.id, self.state, new, f" ({reason})" if reason else "")
        self.state = new
        if reason:
            self.last_error = reason

    def _reader_event(self, event: ReaderEvent, reason: str) -> None:
        """Called in the reader's thread: hand the event to the loop."""
        self._loop.call_soon_threadsafe(self._apply_reader_event, event, reason)

    def _apply_reader_event(self, event: ReaderEvent, reason: str) -> None:
        if event is ReaderEvent.ENDED:
            self._source_ended = True
            self._wake.set()
        elif self.state is not StreamState.PAUSED:
            new = StreamState.RUNNING if event is ReaderEvent.CONNECTED else StreamState.RECONNECTING
            self._change(new, reason or None)

    # -- processing -------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._loop_frames()
        except ModelNotFoundError as exc:
            self._change(StreamState.ERROR, str(exc))
        except ShuttingDownError:
            self._change(StreamState.ENDED, "the server is shutting down")
        except Exception as exc:  # a bug must show in the state, not kill the loop silently
            logger.exception("stream %s failed", self.id)
            self._change(StreamState.ERROR, f"processing failed: {exc}")
        finally:
            if not is_live(self.state):
                self.end_viewers()
                self.reader.stop(0)

    async def _loop_frames(self) -> None:
        spacing = 1.0 / self.spec.max_fps if self.spec.max_fps else 0.0
        while True:
            await self._wake.wait()
            self._wake.clear()
            frame = self._slot.take()
            if frame is None:
                if self._source_ended:
                    self._change(StreamState.ENDED, None)
                    return
                continue
            if self.state is StreamState.PAUSED:
                continue
            started = time.monotonic()
            await self._process(frame)
            if spacing:
                await asyncio.sleep(max(0.0, started + spacing - time.monotonic()))
            self._wake.set()  # a frame that came meanwhile, or the end of the source

    async def _process(self, frame: Frame) -> None:
        detections = await self._infer(frame)
        if detections is None:
            return
        stages = self._stages
        tracked = stages.tracker.update(detections) if stages.tracker is not None else detections
        counts = stages.counter.update(tracked) if stages.counter is not None else {}
        self.meter.tick()
        encode = self.frames.count > 0
        drawn = await asyncio.to_thread(self._draw, frame, tracked, encode)
        self.frames.publish(drawn)
        self.events.publish(self._event(frame, tracked, counts))
        self.counters.processed += 1
        self.counters.latencies.append(time.monotonic() - frame.read_at)
        if self.state is StreamState.STARTING:
            self._change(StreamState.RUNNING)

    async def _infer(self, frame: Frame) -> Detections | None:
        """The frame's detections: the model's, or the last ones when the gate sees no motion;
        None when the frame is dropped (queue full, or a failed inference, noted in ``last_error``)."""
        gate = self._stages.gate
        if gate is not None and not gate.update(frame.image) and self.counters.inferences:
            return self._last_detections
        try:
            detections = await self._detect(frame.image)
        except (OverloadedError, ModelNotFoundError, ShuttingDownError) as exc:
            if isinstance(exc, OverloadedError):
                self.counters.skipped += 1
                return None
            raise
        except VisionServeError as exc:
            self.counters.errors += 1
            self.last_error = str(exc)
            return None
        self.counters.inferences += 1
        self._last_detections = detections
        return detections

    def _draw(self, frame: Frame, detections: Detections, encode: bool) -> ProcessedFrame:
        image = render(frame.image, detections, self._annotators)
        return ProcessedFrame(frame.index, image, frame.read_at, encode_jpeg(image) if encode else None)

    def _event(self, frame: Frame, detections: Detections, counts: dict[str, Any]) -> bytes:
        height, width = frame.image.shape[:2]
        event = {
            "stream": self.id,
            "frame": frame.index,
            "timestamp": round(frame.timestamp, 3),
            "width": width,
            "height": height,
            "detections": detections_to_json(detections, self.labels),
            "zones": counts.get("zones", {}),
            "lines": counts.get("lines", {}),
        }
        return json.dumps(event, separators=(",", ":")).encode()

    # -- statistics -------------------------------------------------------------------------

    @property
    def skipped(self) -> int:
        """Frames read but never processed: overwritten in the slot, or refused by a full queue."""
        return self._slot.skipped + self.counters.skipped

    def latency_ms(self, quantile: float) -> float | None:
        values = list(self.counters.latencies)
        return round(float(np.quantile(values, quantile)) * 1000.0, 2) if values else None
