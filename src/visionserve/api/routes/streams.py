"""``/v1/streams``: live streams, their images (MJPEG, a snapshot), their events (SSE) and tokens.

The routes parse and render; the :class:`~visionserve.streams.manager.StreamManager` in
``app.state.streams`` runs the streams. The long-lived responses (MJPEG, SSE; see
:func:`is_long_lived`) are neither counted by graceful-shutdown draining nor timed by the request
latency histogram, and end when their stream ends or the server drains.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from visionserve.api.wire.streams import MJPEG_BOUNDARY, StreamToken, mjpeg_part, sse_event, stream_json
from visionserve.errors import NoFrameYetError, ShuttingDownError
from visionserve.streams import tokens
from visionserve.streams.manager import StreamManager
from visionserve.streams.session import StreamSession
from visionserve.streams.spec import StreamSpec

router = APIRouter(tags=["streams"])

#: GET routes a stream token opens (group 1: the stream id).
TOKEN_PATHS = re.compile(r"^/v1/streams/([A-Za-z0-9_.-]+)/(?:mjpeg|events|latest\.jpg)$")
_LONG_LIVED = re.compile(r"^/v1/streams/[^/]+/(?:mjpeg|events)$|^/v1/detect/ws$")


def is_long_lived(path: str) -> bool:
    """Whether ``path`` answers with a response that lasts as long as its client watches."""
    return _LONG_LIVED.match(path) is not None


def get_streams(request: Request) -> StreamManager:
    streams: StreamManager | None = getattr(request.app.state, "streams", None)
    if streams is None:
        raise ShuttingDownError("streams are not running")
    return streams


StreamsDep = Annotated[StreamManager, Depends(get_streams)]
Height = Annotated[int | None, Query(ge=16, le=4320, description="Scale the images to this height (pixels).")]


@router.post("/v1/streams", status_code=201)
async def create_stream(spec: StreamSpec, streams: StreamsDep) -> JSONResponse:
    """Start a stream; 201 with its document (``id``, ``state``, ``urls``, ...)."""
    session = await streams.create(spec)
    return JSONResponse(stream_json(session), status_code=201, headers={"Location": f"/v1/streams/{session.id}"})


@router.get("/v1/streams")
async def list_streams(streams: StreamsDep) -> JSONResponse:
    return JSONResponse({"streams": [stream_json(session) for session in streams.sessions()]})


@router.get("/v1/streams/{stream_id}")
async def get_stream(stream_id: str, streams: StreamsDep) -> JSONResponse:
    return JSONResponse(stream_json(streams.get(stream_id)))


@router.delete("/v1/streams/{stream_id}", status_code=204)
async def delete_stream(stream_id: str, streams: StreamsDep) -> Response:
    """Stop the stream (its reader thread ends and its viewers' responses end) and forget it."""
    await streams.delete(stream_id)
    return Response(status_code=204)


@router.post("/v1/streams/{stream_id}/pause")
async def pause_stream(stream_id: str, streams: StreamsDep) -> JSONResponse:
    session = streams.get(stream_id)
    session.pause()
    return JSONResponse(stream_json(session))


@router.post("/v1/streams/{stream_id}/resume")
async def resume_stream(stream_id: str, streams: StreamsDep) -> JSONResponse:
    session = streams.get(stream_id)
    session.resume()
    return JSONResponse(stream_json(session))


@router.post("/v1/streams/{stream_id}/token")
async def stream_token(stream_id: str, request: Request, streams: StreamsDep) -> StreamToken:
    """A token that opens this stream's ``mjpeg``, ``latest.jpg`` and ``events`` to a browser
    (``?token=...``) for ``stream_token_ttl`` seconds."""
    streams.get(stream_id)
    expires_at = time.time() + request.app.state.settings.stream_token_ttl
    token = tokens.issue(request.app.state.stream_secret, stream_id, expires_at)
    return StreamToken(token=token, expires_at=int(token.partition(".")[0]), query=f"token={token}")


@router.get("/v1/streams/{stream_id}/latest.jpg", response_class=Response)
async def latest_jpeg(stream_id: str, streams: StreamsDep, height: Height = None) -> Response:
    """The newest processed frame, drawn, as a JPEG (503 until there is one)."""
    frame = streams.get(stream_id).frames.latest
    if frame is None:
        raise NoFrameYetError(f"stream {stream_id!r} has no frame yet")
    data = await asyncio.to_thread(frame.jpeg, height)
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


@router.get("/v1/streams/{stream_id}/mjpeg", response_class=StreamingResponse)
async def mjpeg(
    stream_id: str,
    streams: StreamsDep,
    fps: Annotated[float | None, Query(gt=0, le=120, description="Most frames per second sent.")] = None,
    height: Height = None,
) -> StreamingResponse:
    """The drawn frames as ``multipart/x-mixed-replace`` JPEG parts (newest frame wins)."""
    session = streams.get(stream_id)
    media = f"multipart/x-mixed-replace; boundary={MJPEG_BOUNDARY}"
    return StreamingResponse(_mjpeg_parts(session, fps, height), media_type=media, headers=_NO_CACHE)


async def _mjpeg_parts(session: StreamSession, fps: float | None, height: int | None) -> AsyncIterator[bytes]:
    spacing = 1.0 / fps if fps else 0.0
    with session.frames.subscribe() as box:
        while (frame := await box.get()) is not None:
            sent = time.monotonic()
            yield mjpeg_part(await asyncio.to_thread(frame.jpeg, height))
            if spacing:
                await asyncio.sleep(max(0.0, sent + spacing - time.monotonic()))


@router.get("/v1/streams/{stream_id}/events", response_class=StreamingResponse)
async def events(stream_id: str, streams: StreamsDep) -> StreamingResponse:
    """Server-Sent Events: one JSON per processed frame (``frame``, ``timestamp``, ``detections``
    with ``tracker_id``, ``zones``, ``lines``); a slow consumer gets the newest only."""
    session = streams.get(stream_id)
    return StreamingResponse(_sse(session), media_type="text/event-stream", headers=_NO_CACHE)


async def _sse(session: StreamSession) -> AsyncIterator[bytes]:
    with session.events.subscribe() as box:
        sent = 0
        while (data := await box.get()) is not None:
            yield sse_event(data, sent)
            sent += 1


_NO_CACHE = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
