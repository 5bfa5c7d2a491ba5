"""Optional API keys: when the settings hold any, every route but the health probes needs one.

A key is sent as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>`` and compared with each
configured key by :func:`hmac.compare_digest` (constant time; every key is compared, so the time
does not tell which one nearly matched). A missing or wrong key gets 401.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from pydantic import SecretStr
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from visionserve.api.errors import visionserve_error_response
from visionserve.errors import AuthenticationError

#: Paths that never need a key (load balancers and orchestrators probe them).
PUBLIC_PATHS = frozenset({"/healthz", "/readyz"})


def presented_key(headers: Headers) -> str | None:
    """The key of ``Authorization: Bearer <key>``, else of ``X-API-Key``; None when neither."""
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    key = headers.get("x-api-key", "").strip()
    return key or None


def key_matches(candidate: str, keys: Sequence[SecretStr]) -> bool:
    """Whether ``candidate`` equals one of ``keys``, in time independent of which one."""
    given = candidate.encode()
    found = False
    for key in keys:
        found |= hmac.compare_digest(given, key.get_secret_value().encode())
    return found


class ApiKeyMiddleware:
    """401 for HTTP requests (and a 1008 close for websockets) without a valid key, except on
    ``public_paths`` and under ``delegated_prefixes``, whose routes check keys themselves (protocols
    whose clients send the key in a form or a JSON body). With no keys configured it lets everything
    through."""

    def __init__(
        self,
        app: ASGIApp,
        keys: Sequence[SecretStr],
        public_paths: frozenset[str] = PUBLIC_PATHS,
        delegated_prefixes: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self.keys = tuple(keys)
        self.public_paths = public_paths
        self.delegated_prefixes = delegated_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.keys or scope["type"] not in {"http", "websocket"} or scope["path"] in self.public_paths:
            await self.app(scope, receive, send)
            return
        if scope["type"] == "http" and scope["path"].startswith(self.delegated_prefixes):
            await self.app(scope, receive, send)
            return
        key = presented_key(Headers(scope=scope))
        if key is not None and key_matches(key, self.keys):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        message = (
            "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
            if key is None
            else "invalid API key"
        )
        line = f"{scope['method']} {scope['path']}"
        await visionserve_error_response(AuthenticationError(message), line, False)(scope, receive, send)
