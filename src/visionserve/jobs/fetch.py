"""Job inputs given as URLs: an allow-list of hosts (empty: URLs are refused), a size cap, no redirects.

The host check runs when the job is submitted (a refused URL is a 400 at once) and again before the
worker fetches, so a job stored under an older, wider list cannot reach a host that is no longer allowed.
"""

from __future__ import annotations

from collections.abc import Collection
from urllib.parse import urlsplit

import httpx

from visionserve.errors import InputError, InvalidParameterError


def check_http_url(url: str, what: str) -> httpx.URL:
    """``url`` parsed, if it is an http(s) URL with a host that an HTTP client accepts (a numeric port
    in range, brackets that close); else :class:`InvalidParameterError` naming ``what``."""
    try:
        parsed = httpx.URL(url)
        urlsplit(url).port  # noqa: B018  (raises ValueError for a port out of range)
    except (httpx.InvalidURL, ValueError) as exc:
        raise InvalidParameterError(f"{what} is not a valid URL: {url!r} ({exc})") from exc
    if parsed.scheme not in {"http", "https"} or not parsed.host:
        raise InvalidParameterError(f"{what} is not an http(s) URL: {url!r}")
    return parsed


class UrlFetcher:
    """Fetch image URLs whose host is in ``allowed_hosts`` (exact, case-insensitive names, optionally
    with ``:port``), at most ``max_bytes`` each. Redirects are not followed: they could leave the list."""

    def __init__(
        self,
        allowed_hosts: Collection[str],
        max_bytes: int = 20_000_000,
        timeout_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.allowed_hosts = frozenset(host.lower() for host in allowed_hosts)
        self.max_bytes = max_bytes
        self._client = httpx.Client(timeout=timeout_s, follow_redirects=False, transport=transport)

    def check(self, url: str) -> str:
        """``url`` if it is http(s) and its host is allowed; else :class:`InvalidParameterError`."""
        if not self.allowed_hosts:
            raise InvalidParameterError("image URLs are turned off on this server (VISIONSERVE_JOBS_URL_HOSTS)")
        check_http_url(url, "an image URL")
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if host not in self.allowed_hosts and parts.netloc.lower().rsplit("@", 1)[-1] not in self.allowed_hosts:
            raise InvalidParameterError(f"host {host!r} is not on this server's list of allowed image hosts")
        return url

    def fetch(self, url: str) -> bytes:
        """The body of a GET of ``url``. Raises :class:`InputError` for a refused host, a non-2xx answer,
        a network error, or a body longer than ``max_bytes``."""
        self.check(url)
        try:
            with self._client.stream("GET", url) as response:
                if not response.is_success:
                    raise InputError(f"cannot fetch {url}: HTTP {response.status_code}")
                declared = int(response.headers.get("content-length") or 0)
                if declared > self.max_bytes:
                    raise InputError(f"cannot fetch {url}: {declared} bytes exceeds the limit of {self.max_bytes}")
                chunks, size = [], 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise InputError(f"cannot fetch {url}: more than {self.max_bytes} bytes")
                    chunks.append(chunk)
        except httpx.HTTPError as exc:
            raise InputError(f"cannot fetch {url}: {type(exc).__name__}: {exc}") from exc
        return b"".join(chunks)

    def close(self) -> None:
        self._client.close()
