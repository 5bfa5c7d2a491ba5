"""A bounded closed-loop HTTP load generator for loopback servers.

``concurrency`` threads each keep one keep-alive connection and send the same request back to back
until ``duration`` seconds or ``max_requests`` requests have passed, whichever comes first. The loop
and the connections are those of ``visionserve bench`` (:mod:`visionserve.bench.loop`,
:mod:`visionserve.bench.http`); this module keeps the scripts' loopback-only guard and their
:class:`Stats`.
"""

from __future__ import annotations

import http.client
from dataclasses import dataclass
from urllib.parse import urlsplit

from benchmarks.common import percentile_ms
from visionserve.bench.http import Connection, Request, multipart, upload
from visionserve.bench.loop import run_step

__all__ = ["Request", "Stats", "multipart", "run_load", "upload"]


@dataclass(frozen=True)
class Stats:
    concurrency: int
    requests: int
    errors: int
    seconds: float
    latencies: list[float]

    @property
    def throughput(self) -> float:
        return (self.requests - self.errors) / self.seconds if self.seconds else 0.0

    def p(self, q: float) -> float:
        return percentile_ms(self.latencies, q)


class _Sender:
    """Sends ``request`` on its own connection; an answer other than 200 is an error."""

    def __init__(self, base_url: str, request: Request) -> None:
        self._connection = Connection(base_url, timeout=60)
        self._request = request

    def __call__(self) -> str | None:
        try:
            reply = self._connection.send(self._request)
        except (OSError, http.client.HTTPException) as exc:
            return type(exc).__name__
        return None if reply.status == 200 else f"HTTP {reply.status}"

    def close(self) -> None:
        self._connection.close()


def run_load(base_url: str, request: Request, concurrency: int, duration: float, max_requests: int = 5000) -> Stats:
    """Drive ``request`` at ``base_url`` (must be loopback) with ``concurrency`` clients."""
    if urlsplit(base_url).hostname not in {"127.0.0.1", "localhost", "::1"}:
        raise ValueError("the load generator only targets loopback addresses")
    step = run_step(lambda _: _Sender(base_url, request), concurrency, duration, max_calls=max_requests)
    return Stats(concurrency, step.calls, step.error_count, step.seconds, step.latencies)
