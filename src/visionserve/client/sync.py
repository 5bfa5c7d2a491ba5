"""The blocking client; :mod:`visionserve.client.aio` is its async twin over the same logic."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
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


class Client:
    """A visionserve server at ``url``, e.g. ``Client("http://127.0.0.1:8000", api_key="...")``.

    Requests that get 429 or 503, or no connection, are retried as ``retry`` says; other errors
    raise the matching class of :mod:`visionserve.errors` (``ModelNotFoundError`` for 404,
    ``InputError`` for 400, ``AuthenticationError`` for 401, ``ServerError`` for 5xx, ...).
    ``transport`` replaces the network (an ``httpx.MockTransport`` in tests) and ``sleep`` the pause
    between tries.
    """

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._http = httpx.Client(base_url=url, transport=transport, headers=default_headers(api_key), timeout=timeout)
        self._retry = retry or RetryPolicy()
        self._sleep = sleep

    def _call(self, request: httpx.Request) -> httpx.Response:
        steps = exchange(request, self._retry)
        step = next(steps)
        while True:
            if isinstance(step, httpx.Request):
                try:
                    outcome: httpx.Response | None = self._http.send(step)
                except httpx.TransportError:
                    outcome = None
            else:
                self._sleep(step)
                outcome = None
            try:
                step = steps.send(outcome)
            except StopIteration as done:
                response: httpx.Response = done.value
                return response

    def detect(
        self,
        image: ImageSource,
        model: str | None = None,
        *,
        conf: Conf = None,
        iou: float | None = None,
        classes: Sequence[str] | None = None,
        max_det: int | None = None,
    ) -> DetectionResult:
        """Detect objects in one image (a path, encoded bytes, or a BGR array) with ``model``
        (the server's default when None); thresholds default to the model's."""
        (result,) = self.detect_many([image], model, conf=conf, iou=iou, classes=classes, max_det=max_det)
        return result

    def detect_many(
        self,
        images: Sequence[ImageSource],
        model: str | None = None,
        *,
        conf: Conf = None,
        iou: float | None = None,
        classes: Sequence[str] | None = None,
        max_det: int | None = None,
    ) -> list[DetectionResult]:
        """One :class:`DetectionResult` per image, in order, from a single request."""
        request = detect_request(self._http, images, model, conf, iou, classes, max_det)
        return parse_results(self._call(request), model, len(images))

    def predict(
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
        """Predict with ``model`` (the server's default when None) on one image (a path, encoded
        bytes, or a BGR array), whatever the model's task: boxes with masks and keypoints, or
        classes (:class:`PredictionResult`). ``mask_format`` says how masks travel (``polygon``,
        ``rle``, or ``none`` to skip them); ``top_k`` limits a classifier's classes; thresholds
        default to the model's."""
        args = PredictArgs(conf, iou, classes, max_det, top_k, mask_format)
        (result,) = self._predict([image], model, args)
        return result

    def predict_many(
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
        return self._predict(images, model, PredictArgs(conf, iou, classes, max_det, top_k, mask_format))

    def _predict(self, images: Sequence[ImageSource], model: str | None, args: PredictArgs) -> list[PredictionResult]:
        request = predict_request(self._http, images, model, args)
        return parse_predictions(self._call(request), model, len(images))

    def models(self) -> list[ModelInfo]:
        """The models the server offers."""
        return parse_models(response_json(self._call(self._http.build_request("GET", "/v1/models"))))

    def health(self) -> bool:
        """Whether the server process answers its liveness check (False when unreachable)."""
        return self._probe("/healthz")

    def ready(self) -> bool:
        """Whether the server's models are loaded and warm (False when unreachable)."""
        return self._probe("/readyz")

    def _probe(self, path: str) -> bool:
        try:
            return self._http.get(path).is_success
        except httpx.TransportError:
            return False

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
