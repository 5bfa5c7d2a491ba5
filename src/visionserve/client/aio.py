"""The async client: :class:`~visionserve.client.sync.Client`'s twin, over the same request logic."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType

import httpx

from visionserve.client._predictions import MaskFormat, PredictionResult, parse_predictions
from visionserve.client._protocol import (
    Conf,
    DetectionResult,
    ImageSource,
    ModelInfo,
    RetryPolicy,
    exchange,
    parse_models,
    parse_results,
    response_json,
)
from visionserve.client._shell import PredictArgs, default_headers, detect_request, predict_request


class AsyncClient:
    """Like :class:`~visionserve.client.sync.Client`, with ``await`` on every call; ``transport``
    takes an ``httpx.AsyncBaseTransport`` and ``sleep`` a coroutine function."""

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=url, transport=transport, headers=default_headers(api_key), timeout=timeout
        )
        self._retry = retry or RetryPolicy()
        self._sleep = sleep

    async def _call(self, request: httpx.Request) -> httpx.Response:
        steps = exchange(request, self._retry)
        step = next(steps)
        while True:
            if isinstance(step, httpx.Request):
                try:
                    outcome: httpx.Response | None = await self._http.send(step)
                except httpx.TransportError:
                    outcome = None
            else:
                await self._sleep(step)
                outcome = None
            try:
                step = steps.send(outcome)
            except StopIteration as done:
                response: httpx.Response = done.value
                return response

    async def detect(
        self,
        image: ImageSource,
        model: str | None = None,
        *,
        conf: Conf = None,
        iou: float | None = None,
        classes: Sequence[str] | None = None,
        max_det: int | None = None,
    ) -> DetectionResult:
        """See :meth:`Client.detect <visionserve.client.sync.Client.detect>`."""
        (result,) = await self.detect_many([image], model, conf=conf, iou=iou, classes=classes, max_det=max_det)
        return result

    async def detect_many(
        self,
        images: Sequence[ImageSource],
        model: str | None = None,
        *,
        conf: Conf = None,
        iou: float | None = None,
        classes: Sequence[str] | None = None,
        max_det: int | None = None,
    ) -> list[DetectionResult]:
        """One result per image, in order, from a single request."""
        request = detect_request(self._http, images, model, conf, iou, classes, max_det)
        return parse_results(await self._call(request), model, len(images))

    async def predict(
        self,
        image: ImageSource,
        model: str | None = None,
        *,
        conf: Conf = None,
        iou: float | None = None,
        classes: Sequence[str] | None = None,
        max_det: int | None = None,
        top_k: int | None = None,
        mask_format: MaskFormat | str = MaskFormat.POLYGON,
    ) -> PredictionResult:
        """See :meth:`Client.predict <visionserve.client.sync.Client.predict>`."""
        args = PredictArgs(conf, iou, classes, max_det, top_k, mask_format)
        (result,) = await self._predict([image], model, args)
        return result

    async def predict_many(
        self,
        images: Sequence[ImageSource],
        model: str | None = None,
        *,
        conf: Conf = None,
        iou: float | None = None,
        classes: Sequence[str] | None = None,
        max_det: int | None = None,
        top_k: int | None = None,
        mask_format: MaskFormat | str = MaskFormat.POLYGON,
    ) -> list[PredictionResult]:
        """One :class:`PredictionResult` per image, in order, from a single request."""
        return await self._predict(images, model, PredictArgs(conf, iou, classes, max_det, top_k, mask_format))

    async def _predict(
        self, images: Sequence[ImageSource], model: str | None, args: PredictArgs
    ) -> list[PredictionResult]:
        request = predict_request(self._http, images, model, args)
        return parse_predictions(await self._call(request), model, len(images))

    async def models(self) -> list[ModelInfo]:
        """The models the server offers."""
        return parse_models(response_json(await self._call(self._http.build_request("GET", "/v1/models"))))

    async def health(self) -> bool:
        """Whether the server process answers its liveness check (False when unreachable)."""
        return await self._probe("/healthz")

    async def ready(self) -> bool:
        """Whether the server's models are loaded and warm (False when unreachable)."""
        return await self._probe("/readyz")

    async def _probe(self, path: str) -> bool:
        try:
            return (await self._http.get(path)).is_success
        except httpx.TransportError:
            return False

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
