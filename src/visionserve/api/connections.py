"""uvicorn's HTTP protocol with a header timeout: a connection that has not sent a complete request
head within ``header_timeout`` seconds (a fresh connection left idle, or request headers trickled in
byte by byte) is closed.

uvicorn times out idle keep-alive connections (``timeout_keep_alive``) but not a connection that never
sends a request nor one that sends its headers slowly, so thousands of such sockets stay open. The
body is bounded separately by :class:`visionserve.api.limits.BodyTimeoutMiddleware`.
"""

from __future__ import annotations

import asyncio
from typing import Any


def with_header_timeout(base: type[Any], header_timeout: float) -> type[Any]:
    """A subclass of the uvicorn protocol class ``base`` (``HttpToolsProtocol`` or ``H11Protocol``:
    both keep the request being served in ``self.cycle``) that closes connections whose request head
    takes longer than ``header_timeout`` seconds."""

    class HeaderTimeoutProtocol(base):  # type: ignore[misc]
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._awaiting_head():
                if self._header_timer is None:
                    self._arm()
            else:
                self._disarm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _awaiting_head(self) -> bool:
            cycle = self.cycle
            return cycle is None or bool(cycle.response_complete)

        def _arm(self) -> None:
            self._header_timer = self.loop.call_later(header_timeout, self._expire)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _expire(self) -> None:
            self._header_timer = None
            if self._awaiting_head() and not self.transport.is_closing():
                self.transport.close()

    HeaderTimeoutProtocol.__name__ = f"HeaderTimeout{base.__name__}"
    return HeaderTimeoutProtocol


def http_protocol(header_timeout: float) -> type[Any]:
    """uvicorn's fastest available HTTP protocol (httptools, else h11) with the header timeout."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

        base: type[Any] = HttpToolsProtocol
    except ImportError:  # httptools is an optional part of uvicorn[standard]
        from uvicorn.protocols.http.h11_impl import H11Protocol

        base = H11Protocol
    return with_header_timeout(base, header_timeout)
