"""Job inputs given as URLs, fetched under the :class:`~visionserve.outbound.OutboundPolicy` of the
``jobs_url_hosts`` setting (empty: URLs are refused), with a size cap and no redirects.

The URL is checked when the job is submitted (a refused URL is a 422 at once; no DNS then) and again,
with its DNS answer, before the worker fetches; the fetch connects to the address that was checked.
A job stored under an older, wider list cannot reach a host that is no longer allowed.
"""

from __future__ import annotations

import httpx

from visionserve.errors import InputError
from visionserve.outbound import OutboundPolicy


class UrlFetcher:
    """Fetch image URLs that ``policy`` allows, at most ``max_bytes`` each."""

    def __init__(
        self,
        policy: OutboundPolicy,
        max_bytes: int = 20_000_000,
        timeout_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.policy = policy
        self.max_bytes = max_bytes
        self._client = httpx.Client(timeout=timeout_s, follow_redirects=False, transport=transport)

    def check(self, url: str) -> str:
        """``url`` if the policy's checks without DNS pass; else :class:`InvalidParameterError`."""
        self.policy.check(url)
        return url

    def fetch(self, url: str) -> bytes:
        """The body of a GET of ``url``. Raises :class:`InputError` for a refused URL or address, a
        non-2xx answer, a network error, or a body longer than ``max_bytes``."""
        target = self.policy.resolve(url)
        try:
            response = self._client.send(target.request(self._client, "GET"), stream=True)
            try:
                return self._read(url, response)
            finally:
                response.close()
        except httpx.HTTPError as exc:
            raise InputError(f"cannot fetch {url}: {type(exc).__name__}: {exc}") from exc

    def _read(self, url: str, response: httpx.Response) -> bytes:
        if not response.is_success:
            raise InputError(f"cannot fetch {url}: HTTP {response.status_code}")
        declared = response.headers.get("content-length", "").strip()
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise InputError(f"cannot fetch {url}: {declared} bytes exceeds the limit of {self.max_bytes}")
        chunks, size = [], 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > self.max_bytes:
                raise InputError(f"cannot fetch {url}: more than {self.max_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        self._client.close()
