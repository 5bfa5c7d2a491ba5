"""One reader thread per source: frames into a one-slot buffer where the newest frame wins.

The reader opens the capture, reads frames as they come (a file at its own frame rate, so that it
plays like a camera) and puts each into a :class:`FrameSlot`. A frame that nobody took before the
next one arrived is overwritten and counted as skipped: the consumer always gets the newest frame
and nothing queues, so lag stays bounded when the model is slower than the source.

A failed open, a failed read or a read that stalls past ``stall_timeout`` (FFmpeg's read timeout)
closes the capture and reconnects after an exponential backoff (``backoff_initial`` doubling up to
``backoff_max``, back to the start after a good frame). A file ends at its last frame, or starts
again with ``loop``. The reader reports through ``on_event`` (called in its thread):
``connected``, ``lost`` (with the reason), ``ended``; ``on_exit`` once the thread has released its
capture and is about to end. :meth:`SourceReader.stop` ends the thread within one read timeout and
releases the capture: no thread or descriptor outlives a stream. :meth:`SourceReader.request_stop`
asks the same without waiting, for callers on an event loop that await ``on_exit`` instead of
blocking a worker thread for up to a read timeout.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import cv2

from visionserve.streams.sources import Capture, Opener, Source, open_capture
from visionserve.types import BGRImage

logger = logging.getLogger(__name__)
#: Frame rate assumed for a file that does not declare a usable one.
_FALLBACK_FPS = 25.0
_FPS_WINDOW = 30


@dataclass(frozen=True)
class Frame:
    """A decoded frame. ``index``: frames read from this source so far (from 0, across reconnects);
    ``timestamp``: the source's position in seconds for files, wall-clock seconds (epoch) for live
    sources; ``read_at``: :func:`time.monotonic` when it was read (end-to-end latency starts here)."""

    image: BGRImage
    index: int
    timestamp: float
    read_at: float


class FrameSlot:
    """A one-frame buffer shared by the reader thread and the consumer: the newest frame wins.

    ``notify`` is called (in the reader's thread) after each put; the consumer then :meth:`take`s.
    """

    def __init__(self, notify: Callable[[], None] = lambda: None) -> None:
        self._lock = threading.Lock()
        self._frame: Frame | None = None
        self._notify = notify
        self.skipped = 0

    def put(self, frame: Frame) -> None:
        with self._lock:
            if self._frame is not None:
                self.skipped += 1
            self._frame = frame
        self._notify()

    def take(self) -> Frame | None:
        """The newest frame not taken yet, or None."""
        with self._lock:
            frame, self._frame = self._frame, None
            return frame


class ReaderEvent(StrEnum):
    CONNECTED = "connected"
    LOST = "lost"
    ENDED = "ended"


class _Outcome(StrEnum):
    """How one connection ended."""

    FAILED = "failed"  # before any frame: the backoff keeps growing
    DROPPED = "dropped"  # after frames: the backoff starts afresh
    RESTART = "restart"  # a looping file reached its end: reopen at once
    ENDED = "ended"  # a file ended, or the reader was stopped


@dataclass(frozen=True)
class ReaderConfig:
    """Timeouts and backoff in seconds; ``loop``: files start again at their end."""

    stall_timeout: float = 10.0
    open_timeout: float = 10.0
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    loop: bool = False


class SourceReader:
    """The reader thread of one source (module doc). Counters are read by other threads without a
    lock: they are single ints written by this thread only."""

    def __init__(
        self,
        source: Source,
        slot: FrameSlot,
        config: ReaderConfig,
        on_event: Callable[[ReaderEvent, str], None],
        opener: Opener = open_capture,
        on_exit: Callable[[], None] = lambda: None,
    ) -> None:
        self.source = source
        self.slot = slot
        self.config = config
        self._on_event = on_event
        self._on_exit = on_exit
        self._opener = opener
        self._stop = threading.Event()
        self._resume = threading.Event()
        self._resume.set()
        self._stamps: deque[float] = deque(maxlen=_FPS_WINDOW)
        self._thread = threading.Thread(target=self._run, name=f"stream-reader:{source.shown[:40]}", daemon=True)
        self.frames_read = 0
        self.reconnects = 0
        self.declared_fps = 0.0

    def start(self) -> None:
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the thread to end, without waiting (``on_exit`` is called when it has)."""
        self._stop.set()
        self._resume.set()

    def stop(self, timeout: float | None = None) -> None:
        """Ask the thread to end and wait for it (at most ``timeout`` seconds)."""
        self.request_stop()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def pause(self, paused: bool) -> None:
        """A paused file waits where it is; a paused live source keeps reading (so that it does not
        fall behind) but its frames are dropped."""
        if paused:
            self._resume.clear()
        else:
            self._resume.set()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def started(self) -> bool:
        """Whether :meth:`start` was called (a thread that never started never calls ``on_exit``)."""
        return self._thread.ident is not None

    @property
    def source_fps(self) -> float:
        """Frames read per second over the last frames (the source's real rate, not its claim)."""
        stamps = list(self._stamps)
        if len(stamps) < 2 or stamps[-1] <= stamps[0]:
            return 0.0
        return (len(stamps) - 1) / (stamps[-1] - stamps[0])

    def _run(self) -> None:
        try:
            self._connect_until_stopped()
        finally:
            self._on_exit()

    def _connect_until_stopped(self) -> None:
        backoff = self.config.backoff_initial
        while not self._stop.is_set():
            outcome = self._session()
            if self._stop.is_set():
                return
            if outcome is _Outcome.ENDED:
                self._on_event(ReaderEvent.ENDED, "the video ended")
                return
            if outcome is _Outcome.RESTART:
                continue
            if outcome is _Outcome.DROPPED:
                backoff = self.config.backoff_initial
            self.reconnects += 1
            self._stop.wait(backoff)
            backoff = min(self.config.backoff_max, backoff * 2)

    def _session(self) -> _Outcome:
        """One connection, from opening the capture to its last frame."""
        try:
            capture = self._opener(self.source.target(), self.config.open_timeout, self.config.stall_timeout)
        except Exception as exc:  # noqa: BLE001 - OSError, a refused address after re-resolution, a cv2 error
            self._on_event(ReaderEvent.LOST, f"cannot open the source: {exc}")
            return _Outcome.FAILED
        try:
            return self._read_all(capture)
        finally:
            capture.release()

    def _read_all(self, capture: Capture) -> _Outcome:
        fps = capture.get(cv2.CAP_PROP_FPS)
        self.declared_fps = fps if 0 < fps < 1000 else 0.0
        period = 1.0 / (self.declared_fps or _FALLBACK_FPS)
        delivered = 0
        started = time.monotonic()
        while not self._stop.is_set():
            if not self.source.live and not self._resume.is_set():
                self._resume.wait()
                started = time.monotonic() - delivered * period
                continue
            ok, image = capture.read()
            if not ok or image is None:
                return self._after_last(delivered)
            if delivered == 0:
                self._on_event(ReaderEvent.CONNECTED, "")
            if not self.source.live:
                self._stop.wait(max(0.0, started + delivered * period - time.monotonic()))
            delivered += 1
            self._deliver(capture, image)
        return _Outcome.ENDED

    def _after_last(self, delivered: int) -> _Outcome:
        if not self.source.live:
            if self.config.loop and delivered:
                return _Outcome.RESTART
            return _Outcome.ENDED
        self._on_event(ReaderEvent.LOST, "the source stopped sending frames (closed or stalled)")
        return _Outcome.DROPPED if delivered else _Outcome.FAILED

    def _deliver(self, capture: Capture, image: BGRImage) -> None:
        now = time.monotonic()
        self._stamps.append(now)
        index = self.frames_read
        self.frames_read += 1
        if self.source.live and not self._resume.is_set():
            return
        position = capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0 if not self.source.live else time.time()
        self.slot.put(Frame(image, index, position, now))
