"""The JSON of a stream (``GET /v1/streams/{id}``) and of its parts (SSE lines, MJPEG parts).

``stats``: ``frames_read`` (from the source), ``frames_processed`` (through the model and drawn),
``frames_skipped`` (read but overwritten by a newer frame, or refused by a full queue),
``inferences`` (forward passes: fewer than processed frames with motion gating), ``reconnects``,
``source_fps`` (frames read per second, measured), ``processed_fps`` (processed frames per second
over the last 5 s, what the overlay shows), ``viewers`` (MJPEG responses), ``event_consumers`` (SSE
responses), ``latency_ms`` (p50/p95 from frame read to JPEG out, over the last 300 frames).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from visionserve.streams.session import StreamSession

MJPEG_BOUNDARY = "frame"


def stream_json(session: StreamSession) -> dict[str, Any]:
    """The document of one stream (see the module doc and the README)."""
    spec = session.spec
    reader = session.reader
    counters = session.counters
    return {
        "id": session.id,
        "state": session.state.value,
        "source": session.source.shown,
        "model": session.model,
        "declared": session.declared,
        "created_at": round(session.created_at, 3),
        "options": spec.model_dump(mode="json", exclude={"source", "name", "model"}),
        "last_error": session.last_error,
        "stats": {
            "frames_read": reader.frames_read,
            "frames_processed": counters.processed,
            "frames_skipped": session.skipped,
            "inferences": counters.inferences,
            "inference_errors": counters.errors,
            "reconnects": reader.reconnects,
            "source_fps": round(reader.source_fps, 2),
            "processed_fps": round(session.meter.rate, 2),
            "viewers": session.frames.count,
            "event_consumers": session.events.count,
            "latency_ms": {"p50": session.latency_ms(0.5), "p95": session.latency_ms(0.95)},
        },
        "urls": {
            "mjpeg": f"/v1/streams/{session.id}/mjpeg",
            "latest": f"/v1/streams/{session.id}/latest.jpg",
            "events": f"/v1/streams/{session.id}/events",
        },
    }


def mjpeg_part(jpeg: bytes) -> bytes:
    """One part of a ``multipart/x-mixed-replace`` body."""
    head = f"--{MJPEG_BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
    return head + jpeg + b"\r\n"


def sse_event(data: bytes, event_id: int) -> bytes:
    """One Server-Sent Event carrying the JSON ``data`` (one line)."""
    return b"id: " + str(event_id).encode() + b"\ndata: " + data + b"\n\n"


class StreamToken(BaseModel):
    """A signed token for a browser's query string (see :mod:`visionserve.streams.tokens`)."""

    token: str
    expires_at: int
    query: str
