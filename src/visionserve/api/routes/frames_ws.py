"""``WS /v1/detect/ws``: frames from a browser or a phone, detections back for each.

The client sends JPEG (or PNG) frames as binary messages; the server answers a JSON text message
per frame it processed: ``{"frame": n, "skipped": k, "width", "height", "detections": [...],
"timings": {...}}`` where ``n`` counts the client's frames from 0 and ``k`` is how many frames were
dropped so far. The same drop policy as streams: while a frame is in inference, the newest frame
received waits and older ones are dropped (never queued), so a client sending faster than the model
gets answers for the newest frames with bounded lag. A frame that is not an image gets
``{"frame": n, "error": {"code", "message"}}`` and the connection stays open. Query: ``model``,
``conf``. Frames run at the priority of stream frames (see :mod:`visionserve.streams.manager`).

With API keys on, a browser (which cannot send headers on a WebSocket) gets a short-lived token from
``POST /v1/detect/ws/token`` (with a key) and connects to ``/v1/detect/ws?token=...``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, WebSocket, WebSocketDisconnect

from visionserve.api.errors import status_of
from visionserve.api.wire.streams import StreamToken
from visionserve.batching.batcher import Priority
from visionserve.errors import InputError, InvalidParameterError, OverloadedError, VisionServeError
from visionserve.pipeline import PredictOptions, parse_conf
from visionserve.render.json import prediction_to_json
from visionserve.render.mask_encoding import MaskFormat
from visionserve.serving.service import DetectionService
from visionserve.streams import tokens
from visionserve.streams.hub import Mailbox

router = APIRouter(tags=["streams"])

WEBSOCKET_PATH = "/v1/detect/ws"


@router.post(WEBSOCKET_PATH + "/token")
async def websocket_token(request: Request) -> StreamToken:
    """A token that opens ``WS /v1/detect/ws`` (``?token=...``) for ``stream_token_ttl`` seconds; the
    route sits behind the API keys like any other."""
    expires_at = time.time() + request.app.state.settings.stream_token_ttl
    token = tokens.issue(request.app.state.stream_secret, tokens.WEBSOCKET_SUBJECT, expires_at)
    return StreamToken(token=token, expires_at=int(token.partition(".")[0]), query=f"token={token}")


@router.websocket(WEBSOCKET_PATH)
async def detect_ws(
    websocket: WebSocket,
    model: Annotated[str | None, Query(max_length=200)] = None,
    conf: Annotated[str | None, Query(max_length=20, description="A number between 0 and 1, or 'best'.")] = None,
) -> None:
    service: DetectionService | None = websocket.app.state.service
    try:
        threshold = parse_conf(conf)
    except InvalidParameterError:
        await websocket.close(1008)  # what a failed query validation answers
        return
    await websocket.accept()
    if service is None:
        await websocket.close(1001)
        return
    inbox: Mailbox[tuple[int, bytes]] = Mailbox()
    worker = asyncio.ensure_future(_answer(websocket, service, model, PredictOptions(conf=threshold), inbox))
    try:
        count = 0
        while not worker.done():
            inbox.put((count, await websocket.receive_bytes()))
            count += 1
    except (WebSocketDisconnect, RuntimeError, KeyError):
        pass  # the client went away (or sent text instead of a frame: the connection ends)
    finally:
        inbox.close()
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)


async def _answer(
    websocket: WebSocket,
    service: DetectionService,
    model: str | None,
    options: PredictOptions,
    inbox: Mailbox[tuple[int, bytes]],
) -> None:
    """Detect on the newest frame of ``inbox`` and answer, until it closes."""
    while (item := await inbox.get()) is not None:
        index, data = item
        answer: dict[str, Any] = {"frame": index, "skipped": inbox.dropped}
        try:
            result = (await service.detect(model, [data], options, priority=Priority.HIGH))[0]
        except (InputError, OverloadedError) as exc:
            answer["error"] = {"code": status_of(exc)[1], "message": str(exc)}
        except VisionServeError as exc:
            answer["error"] = {"code": status_of(exc)[1], "message": str(exc)}
            with contextlib.suppress(RuntimeError):
                await websocket.send_json(answer)
            await websocket.close(1011)
            return
        else:
            labels = service.labels(result.model)
            size = (result.width, result.height)
            answer.update(width=result.width, height=result.height, model=result.model)
            answer.update(prediction_to_json(result.prediction, labels, size, MaskFormat.NONE))
            answer["timings"] = {
                "inference": round(result.timings.inference_ms, 2),
                "total": round(result.timings.total_ms, 2),
            }
        await websocket.send_json(answer)
