"""The HTTP-free detection service, with predictors injected through its ``load`` seam."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

import cv2
import numpy as np
import pytest

from visionserve.core.detections import Detections
from visionserve.errors import (
    ImageDecodeError,
    ImageTooLargeError,
    InvalidParameterError,
    ModelLoadError,
    ModelNotFoundError,
    ModelNotReadyError,
    OverloadedError,
)
from visionserve.models.labels import Labels
from visionserve.models.repository import ModelRepository
from visionserve.models.spec import ModelSpec
from visionserve.pipeline import BatchResult, PredictOptions, Predictor, StageTimings
from visionserve.serving import DetectionService, ModelState, ServiceConfig
from visionserve.serving.pixel_budget import PixelBudget, PixelHold
from visionserve.types import BGRImage

T = TypeVar("T")


class WholeImage:
    """A predictor that finds one box covering each image it is given, and records their shapes."""

    def __init__(self, spec: ModelSpec) -> None:
        self._spec = spec
        self.shapes: list[tuple[int, ...]] = []

    @property
    def spec(self) -> ModelSpec:
        return self._spec

    @property
    def labels(self) -> Labels:
        return Labels.from_list(["thing"])

    def infer(self, images: Sequence[BGRImage], options: PredictOptions | None = None) -> BatchResult:
        self.shapes.extend(image.shape for image in images)
        found = [
            Detections(np.array([[0, 0, i.shape[1], i.shape[0]]], np.float32), np.array([0.9]), np.array([0]))
            for i in images
        ]
        return BatchResult(found, StageTimings(inference_ms=1.0))

    def predict(self, images: Sequence[BGRImage], options: PredictOptions | None = None) -> list[Detections]:
        return self.infer(images, options).predictions

    def close(self) -> None:
        pass


def network_spec(name: str, **extra: Any) -> ModelSpec:
    """A network spec (300x300 stretched input); its files are never opened (``load`` is faked)."""
    return ModelSpec.model_validate(
        {
            "name": name,
            "backend": "onnxruntime",
            "files": {"model": "absent.onnx"},
            "input": {"width": 300, "height": 300, "resize": "stretch"},
            "decoder": {"layout": "yolov8"},
            "labels": ["thing"],
            **extra,
        }
    )


def service_with(*specs: ModelSpec, fail: str | None = None) -> tuple[DetectionService, list[WholeImage]]:
    loaded: list[WholeImage] = []

    def load(spec: ModelSpec) -> Predictor:
        if spec.name == fail:
            raise ModelLoadError(f"model file of {spec.name} is missing")
        predictor = WholeImage(spec)
        loaded.append(predictor)
        return predictor

    repository = ModelRepository(None, {spec.name: spec for spec in specs}, {}, default_name=specs[0].name)
    return DetectionService(repository, ServiceConfig(cores=2), set_threads=lambda n: None, load=load), loaded


def run(scenario: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(scenario())


def jpeg(width: int, height: int) -> bytes:
    image = np.zeros((height, width, 3), np.uint8)
    cv2.circle(image, (width // 2, height // 2), min(width, height) // 3, (0, 200, 255), -1)
    ok, buf = cv2.imencode(".jpg", image)
    assert ok
    return buf.tobytes()


def test_big_jpeg_is_decoded_at_reduced_size_and_boxes_come_back_in_source_pixels() -> None:
    async def scenario() -> None:
        service, loaded = service_with(network_spec("net", instances=1))
        await service.start(wait=True)
        (result,) = await service.detect(None, [jpeg(2400, 1800)])
        assert loaded[0].shapes[-1] == (450, 600, 3)  # 1/4 scale keeps at least 300x300
        assert (result.width, result.height) == (2400, 1800)
        assert result.detections.xyxy.tolist() == [[0.0, 0.0, 2400.0, 1800.0]]
        (full,) = await service.detect(None, [jpeg(2400, 1800)], full_size=True)
        assert full.image.shape == (1800, 2400, 3)
        await service.close()

    run(scenario)


def test_arrays_and_bytes_mixed_in_one_call_keep_their_order() -> None:
    async def scenario() -> None:
        service, _ = service_with(network_spec("net", instances=1))
        await service.start(wait=True)
        array = np.zeros((50, 70, 3), np.uint8)
        results = await service.detect("net", [jpeg(320, 320), array, jpeg(310, 330)])
        assert [(r.width, r.height) for r in results] == [(320, 320), (70, 50), (310, 330)]
        assert {r.batch_size for r in results} == {3}  # queued together, one pass
        (only,) = await service.detect_arrays("net", [array])
        assert only.detections.xyxy.tolist() == [[0.0, 0.0, 70.0, 50.0]]
        with pytest.raises(InvalidParameterError, match="shape"):
            await service.detect_arrays("net", [np.zeros((5, 5), np.uint8)])
        await service.close()

    run(scenario)


def test_undecodable_bytes_fail_only_their_own_call() -> None:
    async def scenario() -> None:
        service, _ = service_with(network_spec("net", instances=1))
        await service.start(wait=True)
        with pytest.raises(ImageDecodeError):
            await service.detect(None, [b"not an image"])  # a lone image on an idle model
        with pytest.raises(ImageDecodeError, match="image 2 of 2"):
            await service.detect(None, [jpeg(300, 300), b"not an image"])
        good, bad = (service.detect(None, [jpeg(300, 300)]), service.detect(None, [b"junk"]))
        outcomes = await asyncio.gather(good, bad, return_exceptions=True)
        assert isinstance(outcomes[1], ImageDecodeError)
        assert not isinstance(outcomes[0], BaseException) and outcomes[0][0].width == 300
        await service.close()

    run(scenario)


def test_unload_load_and_readiness() -> None:
    async def scenario() -> None:
        service, _ = service_with(network_spec("net", instances=1), network_spec("other", instances=1))
        assert not service.readiness().ready
        await service.start(wait=True)
        assert service.readiness().ready
        await service.unload("net")
        assert service.model("net").state is ModelState.UNLOADED
        with pytest.raises(ModelNotReadyError, match="unloaded"):
            await service.detect("net", [jpeg(300, 300)])
        assert service.readiness().ready  # "other" still serves
        await service.load("net")
        assert (await service.detect("net", [jpeg(300, 300)]))[0].model == "net"
        service.begin_drain()
        assert service.readiness().reason == "shutting down"
        await service.close()

    run(scenario)


def test_a_model_that_fails_to_load_is_failed_and_the_others_serve() -> None:
    async def scenario() -> None:
        service, _ = service_with(network_spec("good", instances=1), network_spec("bad"), fail="bad")
        await service.start(wait=True)
        assert service.model("bad").state is ModelState.FAILED
        assert "missing" in (service.model("bad").error or "")
        assert service.readiness().ready
        with pytest.raises(ModelNotReadyError, match="failed"):
            await service.detect("bad", [jpeg(300, 300)])
        await service.close()

    run(scenario)


def test_instances_default_to_one_per_core_for_opencv_models_only() -> None:
    opencv = network_spec("cv", backend="opencv_dnn")
    onnx = network_spec("ort")
    pinned = network_spec("pinned", instances=3, backend="opencv_dnn")
    service, _ = service_with(opencv, onnx, pinned)
    assert {s.name: s.instances for s in service.models()} == {"cv": 2, "ort": 1, "pinned": 3}


def test_warm_up_passes_run_inside_a_governor_lane() -> None:
    """A warm-up is a forward pass: the governor must count it, so that no other pass changes
    OpenCV's thread count while it runs."""

    async def scenario() -> None:
        running_during: list[int] = []
        threads: list[int] = []

        class Watching(WholeImage):
            def infer(self, images: Sequence[BGRImage], options: PredictOptions | None = None) -> BatchResult:
                running_during.append(service.governor.running)
                return super().infer(images, options)

        spec = network_spec("cv", backend="opencv_dnn", instances=2)
        repository = ModelRepository(None, {"cv": spec}, {}, default_name="cv")
        service = DetectionService(repository, ServiceConfig(cores=2), set_threads=threads.append, load=Watching)
        await service.start(wait=True)
        assert running_during == [1, 1]  # one warm-up per instance, each holding a lane
        assert threads == [2]  # a lone warm-up runs in solo mode, set before it started
        await service.close()

    run(scenario)


def test_a_full_queue_and_too_many_images_are_refused_before_anything_is_decoded() -> None:
    """Junk bytes would fail to decode: the refusal must come first."""

    async def scenario() -> None:
        armed, entered, gate = threading.Event(), threading.Event(), threading.Event()

        class Held(WholeImage):
            def infer(self, images: Sequence[BGRImage], options: PredictOptions | None = None) -> BatchResult:
                if armed.is_set():
                    entered.set()
                    gate.wait(30)
                return super().infer(images, options)

        batching = {"max_batch_size": 1, "queue_size": 2}
        spec = network_spec("net", instances=1, batching=batching)
        repository = ModelRepository(None, {"net": spec}, {}, default_name="net")
        service = DetectionService(repository, ServiceConfig(cores=2), set_threads=lambda n: None, load=Held)
        await service.start(wait=True)
        armed.set()
        try:
            pending = [asyncio.ensure_future(service.detect(None, [jpeg(300, 300)]))]
            assert await asyncio.to_thread(entered.wait, 30)  # the only instance is busy
            pending += [asyncio.ensure_future(service.detect(None, [jpeg(300, 300)])) for _ in range(2)]
            for _ in range(3000):
                if service.model().queue_depth == 2:
                    break
                await asyncio.sleep(0.01)
            assert service.model().queue_depth == 2
            with pytest.raises(OverloadedError, match="queue of 2 is full"):
                await service.detect(None, [b"junk"])
            with pytest.raises(InvalidParameterError, match="3 images in one request exceed the queue size"):
                await service.detect(None, [b"junk"] * 3)
        finally:
            gate.set()
        assert [len(r) for r in await asyncio.gather(*pending)] == [1, 1, 1]
        await service.close()

    run(scenario)


def test_resolving_a_name_takes_no_status_snapshot(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every request resolves its model name: that must not build a ModelStatus (which walks the queue)."""

    async def scenario() -> None:
        service, _ = service_with(network_spec("net", instances=1), network_spec("other", instances=1))
        await service.start(wait=True)

        def no_snapshot(name: str) -> None:
            raise AssertionError(f"status({name!r}) was called")

        monkeypatch.setattr(service.manager, "status", no_snapshot)
        assert (service.resolve_name(None), service.resolve_name("other")) == ("net", "other")
        assert service.spec("other").name == "other" and service.labels().name(0) == "thing"
        (result,) = await service.detect("other", [jpeg(300, 300)])
        assert result.model == "other"
        with pytest.raises(ModelNotFoundError, match="unknown model 'nope'; available: net, other"):
            service.resolve_name("nope")
        monkeypatch.undo()
        await service.close()

    run(scenario)


class SlowWholeImage(WholeImage):
    def infer(self, images: Sequence[BGRImage], options: PredictOptions | None = None) -> BatchResult:
        time.sleep(0.1)
        return super().infer(images, options)


class _DyingClock:
    """The batchers' clock; ``now`` raises in a dispatcher task once ``broken`` (a dispatcher bug)."""

    broken = False

    def now(self) -> float:
        task = asyncio.current_task()
        if self.broken and task is not None and task.get_name().startswith("batcher-"):
            raise RuntimeError("a bug in the dispatcher")
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def test_a_dead_dispatcher_marks_the_model_failed_with_503s_until_it_is_loaded_again() -> None:
    async def scenario() -> None:
        clock = _DyingClock()
        spec = network_spec("m", batching={"max_batch_size": 4, "max_queue_delay_ms": 50}, instances=1)
        repository = ModelRepository(None, {"m": spec}, {}, default_name="m")
        service = DetectionService(
            repository, ServiceConfig(cores=1), set_threads=lambda n: None, load=SlowWholeImage, clock=clock
        )
        await service.start(wait=True)
        image = np.zeros((30, 30, 3), np.uint8)
        first = asyncio.ensure_future(service.detect("m", [image]))
        await asyncio.sleep(0.01)  # the first runs; the second queues behind it and is not immediate
        second = asyncio.ensure_future(service.detect("m", [image]))
        await asyncio.sleep(0)
        clock.broken = True  # when the first ends, the dispatcher reads the clock for the second, and dies
        assert len(await asyncio.wait_for(first, 2.0)) == 1
        with pytest.raises(ModelNotReadyError, match="dispatcher died"):
            await asyncio.wait_for(second, 2.0)
        status = service.model("m")
        assert status.state is ModelState.FAILED and "dispatcher died" in (status.error or "")
        assert not service.readiness().ready
        with pytest.raises(ModelNotReadyError, match="failed"):
            await service.detect("m", [image])
        clock.broken = False
        await service.load("m")
        assert len(await service.detect("m", [image])) == 1


def test_detect_reserves_decoded_pixels_and_gives_them_back() -> None:
    """Reservations come from the image headers before decoding (a reduced-size JPEG counts its
    reduced pixels; ``full_size`` adds the full-size image the caller keeps beside the model's);
    without a hold they end with the call, with one when the caller releases it; images needing more
    than the whole budget are refused before decoding."""

    async def scenario() -> None:
        service, loaded = service_with(network_spec("net", instances=1))
        both = 2400 * 1800 + 600 * 450  # the full-size image and the model's 1/4-scale decode
        budget = service.budget = PixelBudget(2 * both)
        await service.start(wait=True)
        hold = PixelHold()
        await service.detect(None, [jpeg(2400, 1800), jpeg(2400, 1800)], full_size=True, hold=hold)
        assert budget.held == 2 * both
        hold.release()
        hold = PixelHold()
        await service.detect(None, [jpeg(2400, 1800)], hold=hold)
        assert budget.held == 600 * 450  # decoded at 1/4 scale
        hold.release()
        await service.detect(None, [jpeg(2400, 1800)])
        assert budget.held == 0
        with pytest.raises(ImageTooLargeError, match=f"these 3 images decode to {3 * both} pixels"):
            await service.detect(None, [jpeg(2400, 1800)] * 3, full_size=True)
        assert budget.held == 0 and len(loaded[0].shapes) == 5  # warm-up and 4 images: not the refused 3
        await service.close()

    run(scenario)
