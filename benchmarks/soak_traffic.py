"""The traffic of the soak test (:mod:`benchmarks.soak`): each kind is a loop that one thread runs
until a deadline, against a loopback server, recording what it saw in a shared :class:`Tally`.

* :func:`mixed_client`: valid detections (each answer compared, timings aside, with the answer to the
  same image sent alone before the load), bytes that are not an image (400), bad parameters (422), wrong
  content types (415) and oversized bodies (413);
* :func:`job_client`: jobs of several images, each result compared with the same job run alone;
* :func:`trickle_client`: a body sent one byte a second (the server must answer 408 at its body
  timeout and keep serving everyone else meanwhile);
* :func:`deaf_client`: requests whose annotated-image answers are never read.
"""

from __future__ import annotations

import http.client
import json
import random
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from benchmarks.loadgen import multipart


@dataclass
class Tally:
    """Counters and latencies shared by the client threads (guarded by ``lock``)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    outcomes: Counter[str] = field(default_factory=Counter)
    #: Seconds per valid request (other kinds are counted, not timed).
    latencies: list[float] = field(default_factory=list)
    #: Seconds from a trickling client's first byte to the server's answer (or close).
    trickle_s: list[float] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)

    def add(self, outcome: str, latency: float | None = None, mismatch: str | None = None) -> None:
        with self.lock:
            self.outcomes[outcome] += 1
            if latency is not None:
                self.latencies.append(latency)
            if mismatch is not None and len(self.mismatches) < 20:
                self.mismatches.append(mismatch)


def comparable(answer: dict[str, Any]) -> dict[str, Any]:
    """A detection answer without its timings (the only part that may differ between runs)."""
    return {k: v for k, v in answer.items() if k != "timings"}


@dataclass(frozen=True)
class Workload:
    """What the clients send: named images with their reference answers, and the body limit."""

    url: str
    images: dict[str, bytes]
    references: dict[str, dict[str, Any]]
    max_body_bytes: int
    job_images: tuple[str, ...]
    job_reference: list[Any]


def _connection(url: str, timeout: float = 60.0) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    if parts.hostname not in {"127.0.0.1", "localhost", "::1"}:
        raise ValueError("the soak test only targets loopback addresses")
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)


def _request(workload: Workload, rng: random.Random) -> tuple[str, str, bytes, dict[str, str], int, str | None]:
    """(kind, path, body, headers, expected status, image name for a valid request)."""
    roll = rng.random()
    if roll < 0.70:
        name = rng.choice(sorted(workload.images))
        body, content_type = multipart("image", workload.images[name])
        return "valid", "/v1/detect", body, {"Content-Type": content_type}, 200, name
    if roll < 0.80:
        body, content_type = multipart("image", rng.randbytes(rng.randrange(1, 4000)))
        return "not_an_image", "/v1/detect", body, {"Content-Type": content_type}, 400, None
    if roll < 0.88:
        body, content_type = multipart("image", workload.images[sorted(workload.images)[0]])
        return "bad_parameter", "/v1/detect?conf=7", body, {"Content-Type": content_type}, 422, None
    if roll < 0.94:
        return "wrong_type", "/v1/detect", b"plain text", {"Content-Type": "text/plain"}, 415, None
    body = b"\xff\xd8" + bytes(workload.max_body_bytes + 1024)
    return "oversized", "/v1/detect", body, {"Content-Type": "image/jpeg"}, 413, None


def mixed_client(workload: Workload, tally: Tally, deadline: float, seed: int) -> None:
    """Valid, invalid and oversized requests back to back on one keep-alive connection."""
    rng = random.Random(seed)
    conn = _connection(workload.url)
    while time.monotonic() < deadline:
        kind, path, body, headers, expected, name = _request(workload, rng)
        started = time.perf_counter()
        try:
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException) as exc:
            tally.add(f"{kind}: connection error {type(exc).__name__}")
            conn.close()
            conn = _connection(workload.url)
            continue
        elapsed = time.perf_counter() - started
        if response.status != expected:
            tally.add(f"{kind}: unexpected {response.status}", mismatch=f"{kind} {response.status} {payload[:200]!r}")
        elif name is not None and comparable(json.loads(payload)) != workload.references[name]:
            tally.add("valid: answer differs from the image alone", mismatch=f"{name}: {payload[:300]!r}")
        else:
            tally.add(f"{kind}: {response.status}", elapsed if kind == "valid" else None)
        if response.getheader("connection", "").lower() == "close":
            conn.close()
            conn = _connection(workload.url)
    conn.close()


def job_detections(client: httpx.Client, job_id: str, deadline: float) -> list[Any] | None:
    """The detections of each item of a finished job, in order; None if it did not succeed in time."""
    while time.monotonic() < deadline:
        state = client.get(f"/v1/jobs/{job_id}").json()["state"]
        if state in {"succeeded", "failed", "cancelled"}:
            if state != "succeeded":
                return None
            items = client.get(f"/v1/jobs/{job_id}/results", params={"format": "json"}).json()["items"]
            return [item.get("detections") for item in items]
        time.sleep(0.5)
    return None


def submit_job(client: httpx.Client, workload: Workload) -> str:
    files = [("image", (f"{name}.jpg", workload.images[name], "image/jpeg")) for name in workload.job_images]
    answer = client.post("/v1/jobs", files=files)
    answer.raise_for_status()
    return str(answer.json()["id"])


def job_client(workload: Workload, tally: Tally, deadline: float) -> None:
    """One job at a time; each one's detections must equal those of the same job run alone."""
    with httpx.Client(base_url=workload.url, timeout=60) as client:
        while time.monotonic() < deadline - 30:
            try:
                found = job_detections(client, submit_job(client, workload), deadline + 60)
            except httpx.HTTPError as exc:
                tally.add(f"job: error {type(exc).__name__}")
                continue
            if found is None:
                tally.add("job: did not succeed")
            elif found != workload.job_reference:
                tally.add("job: results differ from the job alone", mismatch=f"job: {str(found)[:300]}")
            else:
                tally.add("job: succeeded, same results", None)
            time.sleep(2)


def trickle_client(workload: Workload, tally: Tally, deadline: float) -> None:
    """A 1000-byte body sent one byte a second; expects a 408 (or the connection closed) at the
    server's body timeout, long before the body would be complete."""
    parts = urlsplit(workload.url)
    while time.monotonic() < deadline - 5:
        started = time.monotonic()
        with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
            sock.sendall(b"POST /v1/detect HTTP/1.1\r\nHost: soak\r\nContent-Type: image/jpeg\r\n")
            sock.sendall(b"Content-Length: 1000\r\n\r\n")
            answer = b""
            while time.monotonic() < deadline and not answer:
                try:
                    sock.sendall(b"\xff")
                    sock.settimeout(1.0)
                    answer = sock.recv(4096) or b"closed"
                except TimeoutError:
                    continue
                except OSError:
                    answer = b"closed"
        if not answer:
            break
        outcome = "408" if answer.startswith(b"HTTP/1.1 408") else answer[:12].decode(errors="replace")
        tally.add(f"trickle: {outcome}")
        with tally.lock:
            tally.trickle_s.append(time.monotonic() - started)


def deaf_client(workload: Workload, tally: Tally, deadline: float, hold_s: float = 30.0) -> None:
    """Asks for annotated images of the largest image and never reads them, holding each connection
    ``hold_s`` seconds before closing it."""
    parts = urlsplit(workload.url)
    name = max(workload.images, key=lambda n: len(workload.images[n]))
    body, content_type = multipart("image", workload.images[name])
    head = (
        f"POST /v1/detect?format=image HTTP/1.1\r\nHost: soak\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    while time.monotonic() < deadline - hold_s:
        with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            for _ in range(4):  # pipelined: answers pile up unread
                sock.sendall(head + body)
            time.sleep(hold_s)
        tally.add("deaf: held and dropped")
