"""The states of a stream and the one table of the changes allowed between them.

==============  =================================================================================
state           meaning
==============  =================================================================================
starting        created; the source is being opened
running         frames arrive and are processed
reconnecting    the source failed or stalled; it is reopened with backoff (``last_error`` says why)
paused          no frame is processed (a file waits where it is; a live source keeps being read)
ended           a file source reached its end (without ``loop``), or the stream was stopped
error           the stream cannot go on (its model is gone, or processing failed for a bug)
==============  =================================================================================
"""

from __future__ import annotations

from enum import StrEnum


class StreamState(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    RECONNECTING = "reconnecting"
    PAUSED = "paused"
    ENDED = "ended"
    ERROR = "error"


_LIVE = {StreamState.STARTING, StreamState.RUNNING, StreamState.RECONNECTING, StreamState.PAUSED}
_DONE = {StreamState.ENDED, StreamState.ERROR}

#: state -> the states it may change to. Ended and errored streams stay so until deleted.
TRANSITIONS: dict[StreamState, frozenset[StreamState]] = {
    StreamState.STARTING: frozenset({StreamState.RUNNING, StreamState.RECONNECTING, StreamState.PAUSED, *_DONE}),
    StreamState.RUNNING: frozenset({StreamState.RECONNECTING, StreamState.PAUSED, *_DONE}),
    StreamState.RECONNECTING: frozenset({StreamState.RUNNING, StreamState.PAUSED, *_DONE}),
    StreamState.PAUSED: frozenset({StreamState.RUNNING, *_DONE}),
    StreamState.ENDED: frozenset(),
    StreamState.ERROR: frozenset(),
}


def can_change(current: StreamState, new: StreamState) -> bool:
    """Whether the table allows ``current -> new`` (staying in the same state is always allowed)."""
    return new is current or new in TRANSITIONS[current]


def is_live(state: StreamState) -> bool:
    return state in _LIVE
