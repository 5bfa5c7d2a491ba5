"""One stream end to end without HTTP: fake capture, fake model, real reader, hubs and drawing."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
from tests.streams_support import FakeCapture, moving_frames

from visionserve.core.detections import Detections
from visionserve.errors import InferenceError, ModelNotFoundError
from visionserve.models.labels import Labels
from visionserve.outbound import OutboundPolicy
from visionserve.streams.reader import ReaderConfig
from visionserve.streams.session import StreamSession
from visionserve.streams.sources import Capture, Source, SourceKind, SourcePolicy
from visionserve.streams.spec import StreamSpec
from visionserve.streams.stages import Stages
from visionserve.streams.state import StreamState
from visionserve.types import BGRImage

CONFIG = ReaderConfig(stall_timeout=1.0, open_timeout=1.0, backoff_initial=0.01, backoff_max=0.02)
POLICY = SourcePolicy(None, False, OutboundPolicy(()))
LABELS = Labels({0: "person"})


class Model:
    """Finds the bright photo on the grey background: the box of pixels far from the background."""

    def __init__(self, delay: float = 0.0, fail_on: Sequence[int] = ()) -> None:
        self.calls = 0
        self.delay = delay
        self.fail_on = set(fail_on)

    async def __call__(self, image: BGRImage) -> Detections:
        self.calls += 1
        await asyncio.sleep(self.delay)
        if self.calls in self.fail_on:
            raise InferenceError("boom")
        ys, xs = np.nonzero(np.abs(image.astype(int) - 60).sum(axis=2) > 30)
        box = [[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]]
        return Detections(np.array(box, np.float32), np.array([0.9]), np.array([0]))


def session(
    model: Model, frames: int = 12, fps: float = 100.0, stages: Stages | None = None, **spec: object
) -> StreamSession:
    images = moving_frames(frames)

    def opener(target: str | int, open_timeout: float, read_timeout: float) -> Capture:
        return FakeCapture(images, fps)

    source = Source(SourceKind.FILE, "v.mp4", "/v.mp4", POLICY)
    return StreamSession(
        "s1", StreamSpec(source="v.mp4", **spec), source, model, LABELS, stages or Stages(), CONFIG, opener=opener
    )  # type: ignore[arg-type]


async def drain(stream: StreamSession) -> tuple[list[int], list[int], list[dict[str, object]]]:
    """Frames seen by two image viewers and events seen by one consumer until the stream ends."""
    seen_a: list[int] = []
    seen_b: list[int] = []
    events: list[dict[str, object]] = []
    with stream.frames.subscribe() as a, stream.frames.subscribe() as b, stream.events.subscribe() as e:
        stream.start()

        async def collect(box, into, parse=False):  # type: ignore[no-untyped-def]
            while (item := await box.get()) is not None:
                into.append(json.loads(item) if parse else item.index)

        await asyncio.wait_for(asyncio.gather(collect(a, seen_a), collect(b, seen_b), collect(e, events, True)), 10)
    await stream.close()
    return seen_a, seen_b, events


def test_every_viewer_gets_frames_while_the_model_runs_once_per_processed_frame() -> None:
    async def run() -> None:
        model = Model()
        stream = session(model)
        seen_a, seen_b, events = await drain(stream)
        assert stream.state is StreamState.ENDED
        assert model.calls == stream.counters.processed == stream.counters.inferences
        assert stream.counters.processed + stream.skipped == stream.reader.frames_read == 12
        assert seen_a and seen_b and seen_a == sorted(seen_a)
        assert len(events) >= len(seen_a) - 1
        first = events[0]
        assert first["stream"] == "s1" and first["width"] == 320 and first["height"] == 240
        assert first["detections"][0]["label"] == "person"  # type: ignore[index]
        jpeg = stream.frames.latest.jpeg() if stream.frames.latest else b""
        assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape == (240, 320, 3)
        small = stream.frames.latest.jpeg(120) if stream.frames.latest else b""
        assert cv2.imdecode(np.frombuffer(small, np.uint8), cv2.IMREAD_COLOR).shape == (120, 160, 3)
        assert not stream.reader.alive

    asyncio.run(run())


def test_a_slow_model_skips_frames_instead_of_queueing_them() -> None:
    async def run() -> None:
        model = Model(delay=0.05)
        stream = session(model, frames=30, fps=200.0)
        await drain(stream)
        assert stream.skipped > 10
        assert model.calls == stream.counters.processed < 30
        assert max(stream.counters.latencies) < 0.5  # never more than about one inference behind

    asyncio.run(run())


def test_the_motion_gate_carries_the_last_detections_over_static_frames() -> None:
    class EveryThird:
        def __init__(self) -> None:
            self.n = 0

        def update(self, frame: BGRImage) -> bool:
            self.n += 1
            return self.n % 3 == 1

    async def run() -> None:
        model = Model()
        stream = session(model, frames=9, fps=50.0, stages=Stages(gate=EveryThird()))
        _, _, events = await drain(stream)
        assert stream.counters.processed == 9 and model.calls == 3
        assert all(event["detections"] for event in events)

    asyncio.run(run())


def test_a_failed_inference_drops_the_frame_and_a_vanished_model_is_an_error() -> None:
    async def run() -> None:
        stream = session(Model(fail_on=[2]), frames=6, fps=50.0)
        await drain(stream)
        assert stream.counters.errors == 1 and stream.last_error == "boom" and stream.state is StreamState.ENDED

        class Gone(Model):
            async def __call__(self, image: BGRImage) -> Detections:
                raise ModelNotFoundError("no model 'x'")

        broken = session(Gone(), frames=6, fps=50.0)
        await drain(broken)
        assert broken.state is StreamState.ERROR and broken.last_error == "no model 'x'"

    asyncio.run(run())


def test_max_fps_spaces_processed_frames() -> None:
    async def run() -> None:
        stream = session(Model(), frames=20, fps=100.0, max_fps=20.0)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await drain(stream)
        elapsed = loop.time() - started
        assert stream.counters.processed <= elapsed * 20 + 1
        assert stream.skipped > 0

    asyncio.run(run())


class BlockingCapture:
    """A capture whose reads block until ``release_reads`` is set (a camera slow to answer)."""

    def __init__(self) -> None:
        self.release_reads = threading.Event()
        self.released = False

    def read(self) -> tuple[bool, BGRImage | None]:
        self.release_reads.wait(5)
        return True, moving_frames(1)[0]

    def get(self, prop: int) -> float:
        return 0.0

    def release(self) -> None:
        self.released = True


def test_closing_waits_for_the_reader_on_the_loop_without_holding_a_worker_thread() -> None:
    capture = BlockingCapture()

    async def run() -> None:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(max_workers=1))
        source = Source(SourceKind.FILE, "v.mp4", "/v.mp4", POLICY)
        stream = StreamSession(
            "s1", StreamSpec(source="v.mp4"), source, Model(), LABELS, Stages(), CONFIG,
            opener=lambda target, open_timeout, read_timeout: capture,
        )  # fmt: skip
        stream.start()
        await asyncio.sleep(0.05)
        closing = asyncio.create_task(stream.close())
        # the only worker thread stays free for other streams' frames while this one closes
        assert await asyncio.wait_for(asyncio.to_thread(lambda: "encoded"), 0.5) == "encoded"
        assert not closing.done() and stream.reader.alive
        capture.release_reads.set()
        await asyncio.wait_for(closing, 2)
        assert not stream.reader.alive and capture.released

    asyncio.run(run())
