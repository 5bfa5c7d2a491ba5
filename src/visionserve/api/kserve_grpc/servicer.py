"""The ``GRPCInferenceService`` of KServe v2 / Triton, served from the same :class:`DetectionService` as HTTP.

Each method parses its message, calls the service (inference through :func:`kserve_infer.infer`, so
the same models, thresholds and batching as ``POST /v2/models/{name}/infer``) and renders the answer;
errors are raised as :class:`VisionServeError` and turned into status codes by :mod:`.guard`.

``ModelConfig`` and ``ModelStatistics`` convert the documents of Triton's HTTP extensions
(:mod:`~visionserve.api.wire.triton_config`, :mod:`~visionserve.api.wire.triton_stats`) into their
messages; statistics without a model name cover every valid model of the repository.
``ModelReady`` answers ``ready: false`` for an unknown model or version (as Triton does), where
``ModelMetadata`` and ``ModelInfer`` answer ``NOT_FOUND``. ``RepositoryModelLoad`` takes no config or
file overrides (``INVALID_ARGUMENT``): models come from the repository folder. ``ModelStreamInfer``
runs up to :data:`STREAM_WINDOW` requests of a stream at once (so that they share batches) and
answers each as it completes, with the request's ``id``; further requests stay unread while that many
are running or waiting to be sent back. A failed request answers ``error_message`` and the stream
goes on, as Triton's does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.protobuf import json_format

from visionserve import __version__
from visionserve.api import kserve_infer
from visionserve.api.kserve_grpc import codec
from visionserve.api.kserve_grpc.guard import METRICS_METHOD, SERVICE, failure
from visionserve.api.kserve_grpc.protos import grpc_service_pb2 as pb
from visionserve.api.kserve_grpc.protos import grpc_service_pb2_grpc as pb_grpc
from visionserve.api.kserve_grpc.protos import model_config_pb2
from visionserve.api.metrics import Metrics
from visionserve.api.wire import kserve_v2 as v2
from visionserve.api.wire import triton_config, triton_stats
from visionserve.errors import InvalidParameterError, ModelNotFoundError
from visionserve.serving.results import ModelState
from visionserve.serving.service import DetectionService

logger = logging.getLogger(__name__)

#: Requests of one stream that run or wait to be sent back at once; the stream is not read further
#: until one answer has gone out.
STREAM_WINDOW = 32
STREAM_ROUTE = f"/{SERVICE}/ModelStreamInfer"

Context = grpc.aio.ServicerContext[Any, Any]


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    """The methods of the service (see the module doc); the unserved ones are the generated base's,
    never reached: :class:`~.guard.Guard` answers them ``UNIMPLEMENTED``."""

    def __init__(self, service: DetectionService, metrics: Metrics, debug: bool = False) -> None:
        self.service = service
        self.metrics = metrics
        self.debug = debug

    async def ServerLive(self, request: pb.ServerLiveRequest, context: Context) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: pb.ServerReadyRequest, context: Context) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.service.readiness().ready)

    async def ModelReady(self, request: pb.ModelReadyRequest, context: Context) -> pb.ModelReadyResponse:
        try:
            name = kserve_infer.checked_model(self.service, request.name, request.version)
        except ModelNotFoundError:
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=self.service.model(name).state is ModelState.LOADED)

    async def ServerMetadata(self, request: pb.ServerMetadataRequest, context: Context) -> pb.ServerMetadataResponse:
        return codec.render_server_metadata(v2.render_server_metadata(__version__))

    async def ModelMetadata(self, request: pb.ModelMetadataRequest, context: Context) -> pb.ModelMetadataResponse:
        spec = self.service.spec(kserve_infer.checked_model(self.service, request.name, request.version))
        metadata = v2.render_model_metadata(spec.name, spec.version, spec.backend.value, spec.task)
        return codec.render_model_metadata(metadata)

    async def ModelConfig(self, request: pb.ModelConfigRequest, context: Context) -> pb.ModelConfigResponse:
        name = kserve_infer.checked_model(self.service, request.name, request.version)
        document = triton_config.model_config(self.service.spec(name), self.service.model(name).instances)
        return pb.ModelConfigResponse(config=json_format.ParseDict(document, model_config_pb2.ModelConfig()))

    async def ModelStatistics(self, request: pb.ModelStatisticsRequest, context: Context) -> pb.ModelStatisticsResponse:
        if request.name:
            names = [kserve_infer.checked_model(self.service, request.name, request.version)]
        else:
            names = [status.name for status in self.service.models() if status.spec is not None]
        entries = [(name, self.service.spec(name).version, self.service.stats.snapshot(name)) for name in names]
        document = triton_stats.statistics_response(entries)
        return json_format.ParseDict(document, pb.ModelStatisticsResponse())

    async def ModelInfer(self, request: pb.ModelInferRequest, context: Context) -> pb.ModelInferResponse:
        return await self._infer(request)

    async def _infer(self, request: pb.ModelInferRequest) -> pb.ModelInferResponse:
        if not request.model_name:
            raise InvalidParameterError("model_name is required")
        name = kserve_infer.checked_model(self.service, request.model_name, request.model_version)
        outcome = await kserve_infer.infer(self.service, name, codec.parse_infer(request))
        return codec.render_infer(outcome, request.id)

    async def RepositoryIndex(self, request: pb.RepositoryIndexRequest, context: Context) -> pb.RepositoryIndexResponse:
        return codec.render_repository_index(v2.repository_index(self.service.models(), request.ready))

    async def RepositoryModelLoad(
        self, request: pb.RepositoryModelLoadRequest, context: Context
    ) -> pb.RepositoryModelLoadResponse:
        if request.parameters:
            raise InvalidParameterError(
                "load takes no config or file overrides: models come from the repository folder"
            )
        await self.service.load(request.model_name)
        return pb.RepositoryModelLoadResponse()

    async def RepositoryModelUnload(
        self, request: pb.RepositoryModelUnloadRequest, context: Context
    ) -> pb.RepositoryModelUnloadResponse:
        await self.service.unload(request.model_name)
        return pb.RepositoryModelUnloadResponse()

    async def ModelStreamInfer(
        self, requests: AsyncIterator[pb.ModelInferRequest], context: Context
    ) -> AsyncIterator[pb.ModelStreamInferResponse]:
        answers: asyncio.Queue[pb.ModelStreamInferResponse | None] = asyncio.Queue()
        window = asyncio.Semaphore(STREAM_WINDOW)
        running: set[asyncio.Task[None]] = set()

        async def answer(request: pb.ModelInferRequest) -> None:
            await answers.put(await self._stream_one(request))  # it answers every failure itself

        async def read() -> None:
            try:
                async for request in requests:
                    await window.acquire()
                    task = asyncio.create_task(answer(request))
                    running.add(task)
                    task.add_done_callback(running.discard)
                await asyncio.gather(*running)
            finally:
                answers.put_nowait(None)

        reader = asyncio.create_task(read())
        try:
            while (response := await answers.get()) is not None:
                yield response
                window.release()  # only now: a client that reads no answers stops the reading
            await reader  # a failed read (the stream broke) raises here
        finally:
            for task in (reader, *running):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(reader, *running, return_exceptions=True)

    async def _stream_one(self, request: pb.ModelInferRequest) -> pb.ModelStreamInferResponse:
        """One request of a stream, answered and counted in the metrics like a ``ModelInfer`` call."""
        started, code = time.perf_counter(), grpc.StatusCode.OK
        try:
            return pb.ModelStreamInferResponse(infer_response=await self._infer(request))
        except Exception as exc:  # noqa: BLE001 - a failed request is answered in the stream, which goes on
            code, message, _ = failure(exc, STREAM_ROUTE, self.debug)
            echo = pb.ModelInferResponse(model_name=request.model_name, model_version=request.model_version)
            echo.id = request.id
            return pb.ModelStreamInferResponse(error_message=message, infer_response=echo)
        finally:
            known = request.model_name in self.service.repository.names()
            seconds = time.perf_counter() - started
            self.metrics.observe_request(
                STREAM_ROUTE, METRICS_METHOD, request.model_name if known else "", code.name, seconds
            )
