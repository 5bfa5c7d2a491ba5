"""The bench against a running server: the single-request references, then a worker per thread.

Before any load, each image is sent alone, one request at a time, and its answer becomes that
image's reference. Under load every answer is read and compared with it (see
:mod:`visionserve.bench.answers`): a server that answers fast but wrong counts errors.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Sequence
from dataclasses import dataclass

from visionserve.bench.answers import Answer, Tolerance, difference
from visionserve.bench.http import Connection, Reply, Request
from visionserve.bench.inprocess import WRONG_ANSWER
from visionserve.bench.wire import CODECS, BenchImage, WireProtocol, native_request
from visionserve.errors import AuthenticationError, ConnectionFailedError, ServerError

UNREADABLE = "unreadable answer"
#: What a parser raises on an answer it cannot read.
_PARSE_ERRORS = (ValueError, KeyError, TypeError, IndexError)


@dataclass(frozen=True)
class Target:
    """What to load: the server, the protocol, the model (None: the server's default), the key."""

    url: str
    protocol: WireProtocol
    model: str | None
    api_key: str | None
    timeout: float = 60.0


def _send_alone(connection: Connection, request: Request, what: str) -> Reply:
    """``request`` once, outside the load; raises the error a failed answer means."""
    try:
        reply = connection.send(request)
    except (OSError, http.client.HTTPException) as exc:
        raise ConnectionFailedError(f"cannot reach the server for {what}: {exc}") from exc
    if reply.status in {401, 403}:
        raise AuthenticationError(f"the server refused the key ({reply.status}): pass --api-key")
    if reply.status != 200:
        raise ServerError(f"{what}: the server answered {reply.status}: {reply.body[:300]!r}")
    return reply


def default_model(target: Target, image: BenchImage) -> str:
    """The name of the server's default model, from a native predict answer."""
    connection = Connection(target.url, target.timeout)
    try:
        reply = _send_alone(connection, native_request(image, None, target.api_key), "the default model's name")
    finally:
        connection.close()
    try:
        return str(json.loads(reply.body)["model"])
    except (*_PARSE_ERRORS, json.JSONDecodeError) as exc:
        raise ServerError("the native predict answer names no model") from exc


def prepare(target: Target, images: Sequence[BenchImage]) -> tuple[list[Request], list[Answer]]:
    """Each image's request, and its answer when sent alone (the references)."""
    codec = CODECS[target.protocol]
    requests = [codec.request(image, target.model, target.api_key) for image in images]
    references = []
    connection = Connection(target.url, target.timeout)
    try:
        for image, request in zip(images, requests, strict=True):
            reply = _send_alone(connection, request, f"the reference answer of {image.name}")
            try:
                references.append(codec.answer(reply.body, image))
            except _PARSE_ERRORS as exc:
                raise ServerError(f"unreadable {target.protocol} answer for {image.name}: {exc!r}") from exc
    finally:
        connection.close()
    return requests, references


class HttpWorker:
    """A :class:`~visionserve.bench.loop.Worker`: one connection, the images in turn from ``offset``."""

    def __init__(
        self,
        target: Target,
        images: Sequence[BenchImage],
        requests: Sequence[Request],
        references: Sequence[Answer],
        offset: int,
        tolerance: Tolerance,
    ) -> None:
        self._codec = CODECS[target.protocol]
        self._connection = Connection(target.url, target.timeout)
        self._images, self._requests, self._references = images, requests, references
        self._next, self._tolerance = offset % len(images), tolerance

    def __call__(self) -> str | None:
        index = self._next
        self._next = (index + 1) % len(self._images)
        try:
            reply = self._connection.send(self._requests[index])
        except (OSError, http.client.HTTPException) as exc:
            return f"connection: {type(exc).__name__}"
        if reply.status != 200:
            return f"HTTP {reply.status}"
        try:
            answer = self._codec.answer(reply.body, self._images[index])
        except _PARSE_ERRORS:
            return UNREADABLE
        if difference(self._references[index], answer, self._tolerance) is not None:
            return WRONG_ANSWER
        return None

    def close(self) -> None:
        self._connection.close()
