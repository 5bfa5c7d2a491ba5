"""A bounded closed-loop HTTP load generator for loopback servers.

``concurrency`` threads each keep one keep-alive connection and send the same request back to back
until ``duration`` seconds or ``max_requests`` requests have passed, whichever comes first. Threads
(not asyncio) keep the generator's own CPU use small next to the server's on a 2-core machine.
"""

from __future__ import annotations

import http.client
import threading
import time
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

from benchmarks.common import percentile_ms


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: bytes
    headers: dict[str, str]


def multipart(
    field: str, data: bytes, filename: str = "image.jpg", content_type: str = "image/jpeg"
) -> tuple[bytes, str]:
    """A multipart/form-data body with one file field, and its Content-Type header."""
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def upload(path: str, field: str, data: bytes) -> Request:
    body, content_type = multipart(field, data)
    return Request("POST", path, body, {"Content-Type": content_type})


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


def run_load(base_url: str, request: Request, concurrency: int, duration: float, max_requests: int = 5000) -> Stats:
    """Drive ``request`` at ``base_url`` (must be loopback) with ``concurrency`` clients."""
    url = urlsplit(base_url)
    if url.hostname not in {"127.0.0.1", "localhost", "::1"}:
        raise ValueError("the load generator only targets loopback addresses")
    latencies: list[float] = []
    errors = [0]
    sent = [0]
    lock = threading.Lock()
    deadline = time.perf_counter() + duration

    def client() -> None:
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
        while time.perf_counter() < deadline:
            with lock:
                if sent[0] >= max_requests:
                    break
                sent[0] += 1
            start = time.perf_counter()
            try:
                conn.request(request.method, request.path, body=request.body, headers=request.headers)
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
                conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
            elapsed = time.perf_counter() - start
            with lock:
                latencies.append(elapsed)
                errors[0] += 0 if ok else 1
        conn.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(duration + 120)
    return Stats(concurrency, len(latencies), errors[0], time.perf_counter() - started, latencies)
