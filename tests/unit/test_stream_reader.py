"""The reader thread: newest frame wins, files end or loop, live sources reconnect with backoff,
and stopping ends the thread and releases the capture."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable

import numpy as np
from tests.streams_support import FakeCapture

from visionserve.outbound import OutboundPolicy
from visionserve.streams.reader import Frame, FrameSlot, ReaderConfig, ReaderEvent, SourceReader
from visionserve.streams.sources import Capture, Source, SourceKind, SourcePolicy

FAST = ReaderConfig(stall_timeout=1.0, open_timeout=1.0, backoff_initial=0.01, backoff_max=0.04)
POLICY = SourcePolicy(None, True, OutboundPolicy(()))


def images(count: int) -> list[np.ndarray]:
    return [np.full((4, 4, 3), i % 256, np.uint8) for i in range(count)]


def frame(index: int) -> Frame:
    return Frame(images(1)[0], index, 0.0, time.monotonic())


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[ReaderEvent, str]] = []
        self.lock = threading.Lock()

    def __call__(self, event: ReaderEvent, reason: str) -> None:
        with self.lock:
            self.seen.append((event, reason))

    def kinds(self) -> list[ReaderEvent]:
        with self.lock:
            return [kind for kind, _ in self.seen]


def test_the_slot_keeps_the_newest_frame_and_counts_the_overwritten() -> None:
    woken: list[int] = []
    slot = FrameSlot(lambda: woken.append(1))
    for i in range(3):
        slot.put(frame(i))
    taken = slot.take()
    assert taken is not None and taken.index == 2
    assert slot.take() is None
    assert slot.skipped == 2 and len(woken) == 3


def test_a_file_plays_at_its_frame_rate_and_ends() -> None:
    captures: list[FakeCapture] = []

    def opener(target: str | int, open_timeout: float, read_timeout: float) -> Capture:
        captures.append(FakeCapture(images(5), fps=50.0))
        return captures[-1]

    events, slot = Events(), FrameSlot()
    got: list[int] = []
    reader = SourceReader(Source(SourceKind.FILE, "a.mp4", "/v/a.mp4", POLICY), slot, FAST, events, opener)
    started = time.monotonic()
    reader.start()
    while reader.alive or got[-1:] != [4]:
        item = slot.take()
        if item is not None:
            got.append(item.index)
        time.sleep(0.001)
        assert time.monotonic() - started < 5
    assert time.monotonic() - started >= 4 / 50.0  # paced: 5 frames at 50 fps take at least 80 ms
    assert got == [0, 1, 2, 3, 4]
    assert events.kinds() == [ReaderEvent.CONNECTED, ReaderEvent.ENDED]
    assert captures[0].released and reader.frames_read == 5 and reader.reconnects == 0


def test_a_looping_file_starts_again_without_counting_a_reconnect() -> None:
    opened: list[int] = []

    def opener(target: str | int, open_timeout: float, read_timeout: float) -> Capture:
        opened.append(1)
        return FakeCapture(images(2), fps=500.0)

    config = ReaderConfig(1.0, 1.0, 0.01, 0.04, loop=True)
    reader = SourceReader(Source(SourceKind.FILE, "a.mp4", "/v/a.mp4", POLICY), FrameSlot(), config, Events(), opener)
    reader.start()
    wait_for(lambda: len(opened) >= 3)
    reader.stop(2.0)
    assert not reader.alive and reader.reconnects == 0 and reader.frames_read >= 4


def test_a_live_source_that_fails_reconnects_with_growing_backoff_and_recovers() -> None:
    attempts: list[float] = []

    def opener(target: str | int, open_timeout: float, read_timeout: float) -> Capture:
        attempts.append(time.monotonic())
        if len(attempts) <= 3:
            raise OSError("refused")
        return FakeCapture(images(3))

    events, slot = Events(), FrameSlot()
    source = Source(SourceKind.DEVICE, "device:0", 0, POLICY)
    reader = SourceReader(source, slot, FAST, events, opener)
    reader.start()
    wait_for(lambda: ReaderEvent.CONNECTED in events.kinds())
    wait_for(lambda: events.kinds().count(ReaderEvent.LOST) >= 4)  # the 3 failed opens and the end of frames
    reader.stop(2.0)
    gaps = [b - a for a, b in itertools.pairwise(attempts)][:3]
    assert gaps[0] >= 0.01 and gaps[1] >= 0.02 and gaps[2] >= 0.04 - 0.005
    assert reader.reconnects >= 4 and reader.frames_read >= 3
    assert "refused" in events.seen[0][1]


def test_stop_ends_the_thread_and_releases_the_capture() -> None:
    capture = FakeCapture(images(10_000))
    reader = SourceReader(
        Source(SourceKind.DEVICE, "device:0", 0, POLICY), FrameSlot(), FAST, Events(), lambda *_: capture
    )
    reader.start()
    wait_for(lambda: reader.frames_read > 10)
    reader.stop(2.0)
    assert not reader.alive and capture.released
