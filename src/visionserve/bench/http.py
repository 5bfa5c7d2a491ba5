"""Requests built once, sent over one keep-alive connection per thread.

The standard library's ``http.client`` does the sending: a closed-loop load generator on the same
machine as the server competes with it for the CPU, and a bare connection costs less per request
than a full-featured client (no per-request URL, header and cookie machinery). Bodies are built
before the clock starts, so the loop only writes bytes and reads the answer.
"""

from __future__ import annotations

import http.client
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

from visionserve.errors import InvalidParameterError


@dataclass(frozen=True)
class Request:
    """An HTTP request ready to send: ``path`` is relative to the server's base URL."""

    method: str
    path: str
    body: bytes
    headers: dict[str, str]


def multipart(
    field: str,
    data: bytes,
    filename: str = "image.jpg",
    content_type: str = "image/jpeg",
    fields: dict[str, str] | None = None,
) -> tuple[bytes, str]:
    """A multipart/form-data body with one file part ``field`` and the text ``fields``, and its
    Content-Type header."""
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in (fields or {}).items()
    ]
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()
    body = b"".join(parts) + head + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def upload(path: str, field: str, data: bytes, fields: dict[str, str] | None = None) -> Request:
    """A multipart ``POST`` of ``data`` as the file part ``field``."""
    body, content_type = multipart(field, data, fields=fields)
    return Request("POST", path, body, {"Content-Type": content_type})


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes


class Connection:
    """One keep-alive connection to ``base_url`` (``http`` or ``https``; a path prefix is kept),
    reopened after a failure or when the server closes it."""

    def __init__(self, base_url: str, timeout: float = 60.0) -> None:
        url = urlsplit(base_url)
        if url.scheme not in {"http", "https"} or not url.hostname:
            raise InvalidParameterError(f"the server URL must be http:// or https://host[:port], got {base_url!r}")
        self._factory = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        self._host, self._port, self._timeout = url.hostname, url.port, timeout
        self._prefix = url.path.rstrip("/")
        self._conn = self._open()

    def _open(self) -> http.client.HTTPConnection:
        return self._factory(self._host, self._port, timeout=self._timeout)

    def send(self, request: Request) -> Reply:
        """Send ``request`` and read the whole answer; raises ``OSError`` or ``http.client.HTTPException``
        when the connection fails (the connection is reopened for the next request)."""
        try:
            self._conn.request(request.method, self._prefix + request.path, request.body, request.headers)
            response = self._conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException):
            self._reopen()
            raise
        if response.getheader("connection", "").lower() == "close":
            self._reopen()
        return Reply(response.status, body)

    def _reopen(self) -> None:
        self._conn.close()
        self._conn = self._open()

    def close(self) -> None:
        self._conn.close()
