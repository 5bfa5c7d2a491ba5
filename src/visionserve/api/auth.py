"""Optional API keys, checked before any route code runs: when the settings hold keys, every route
but the public probes (:data:`PUBLIC_PATHS`) needs one.

A key is sent as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>`` and compared with each
configured key by :func:`hmac.compare_digest` (constant time; every key is compared, so the time
does not tell which one nearly matched). A missing or wrong key gets 401.

Some protocols' clients send the key elsewhere: DeepStack as the multipart form field ``api_key``,
Roboflow's SDK as ``api_key`` in the JSON body or the query string. Under their path prefixes
(:class:`BodyKeyRealm`) the middleware also takes the ``api_key`` query parameter and, failing a
header or query key, *scans* the raw body for ``api_key`` values without parsing it: the bytes are
read (at most ``max_body_bytes``, 413 beyond) and held until a valid key appears in them, then handed
to the route unchanged. No image, base64 text, multipart part or JSON document is decoded for a
caller who has not shown a key. A scan only yields candidates that are compared with the configured
keys, so a value that merely looks like a key field (inside an image, say) grants nothing that the
caller did not already know. 401 answers under a realm are rendered in that protocol's shape.

Browsers cannot send a header from ``<img src>`` or ``EventSource``: a request without a key that
``token_check`` accepts (a stream's GET image and event routes with a valid signed ``token`` in the
query, see :mod:`visionserve.streams.tokens`) passes too; the token opens nothing else.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl

from pydantic import SecretStr
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from visionserve.api.errors import visionserve_error_response
from visionserve.api.limits import too_large
from visionserve.errors import AuthenticationError

#: Paths that never need a key (load balancers and orchestrators probe them).
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/v2/health/live", "/v2/health/ready"})
KEY_FIELD = "api_key"
#: ``name="api_key"`` part of a multipart body, its headers, then its value up to the next boundary.
_MULTIPART_KEY = re.compile(rb'name="api_key"[^\r\n]*\r\n(?:[^\r\n]+\r\n)*\r\n([^\r\n]{1,1024})\r\n')
#: ``"api_key": "<JSON string>"`` anywhere in a JSON body.
_JSON_KEY = re.compile(rb'"api_key"\s*:\s*("(?:[^"\\\r\n]|\\.){1,1024}")')
#: ``api_key=<value>`` in an urlencoded form.
_FORM_KEY = re.compile(rb"(?:^|&)api_key=([^&]{1,3072})")
#: Bytes kept from the previous scan, so that a key field split between two chunks is found.
_OVERLAP = 4096

ErrorRenderer = Callable[[AuthenticationError], Response]


@dataclass(frozen=True)
class BodyKeyRealm:
    """A path prefix whose clients may send the key as an ``api_key`` query parameter or body field,
    and how that protocol renders a 401."""

    prefix: str
    render: ErrorRenderer


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


def body_key_candidates(data: bytes) -> Iterator[str]:
    """Every value that ``data`` holds for the field ``api_key``, as a multipart field, a JSON string
    member or an urlencoded pair (whichever matches; the content type is not trusted)."""
    for match in _MULTIPART_KEY.finditer(data):
        yield match.group(1).decode("utf-8", "replace").strip()
    for match in _JSON_KEY.finditer(data):
        try:
            value = json.loads(match.group(1))
        except ValueError:
            continue
        if isinstance(value, str):
            yield value
    for match in _FORM_KEY.finditer(data):
        for _, value in parse_qsl(KEY_FIELD + "=" + match.group(1).decode("latin-1")):
            yield value


def _query_key(scope: Scope) -> str | None:
    query = scope.get("query_string", b"").decode("latin-1")
    values = [value for name, value in parse_qsl(query) if name == KEY_FIELD and value]
    return values[0] if values else None


def _replay(body: bytes, more_body: bool, receive: Receive) -> Receive:
    """A ``receive`` that first gives back ``body`` (already read), then reads on."""
    pending = [{"type": "http.request", "body": body, "more_body": more_body}]

    async def replaying() -> Message:
        return pending.pop() if pending else await receive()

    return replaying


class ApiKeyMiddleware:
    """401 for HTTP requests (and a 1008 close for websockets) without a valid key, except on
    ``public_paths`` and the paths starting with one of ``public_prefixes`` (the web page's
    assets); under the prefixes of ``realms`` the key may also be in the query or the body (see the
    module doc). With no keys configured it lets everything through."""

    def __init__(
        self,
        app: ASGIApp,
        keys: Sequence[SecretStr],
        public_paths: frozenset[str] = PUBLIC_PATHS,
        public_prefixes: tuple[str, ...] = (),
        realms: Sequence[BodyKeyRealm] = (),
        max_body_bytes: int = 20 * 1024 * 1024,
        token_check: Callable[[Scope], bool] = lambda scope: False,
    ) -> None:
        self.app = app
        self.token_check = token_check
        self.keys = tuple(keys)
        self.public_paths = public_paths
        self.public_prefixes = public_prefixes
        self.realms = tuple(realms)
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.keys or scope["type"] not in {"http", "websocket"} or self._public(scope["path"]):
            await self.app(scope, receive, send)
            return
        key = presented_key(Headers(scope=scope))
        realm = next((r for r in self.realms if scope["path"].startswith(r.prefix)), None)
        if key is None and realm is not None:
            key = _query_key(scope)
        if (key is not None and key_matches(key, self.keys)) or (key is None and self.token_check(scope)):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        if key is None and realm is not None:
            await self._scan_body(scope, receive, send, realm)
            return
        await self._refuse(scope, receive, send, realm, offered=key is not None)

    def _public(self, path: str) -> bool:
        return path in self.public_paths or path.startswith(self.public_prefixes)

    async def _scan_body(self, scope: Scope, receive: Receive, send: Send, realm: BodyKeyRealm) -> None:
        """Read the body until a valid key shows in it (then run the app on the same bytes), or
        refuse when it ends (401) or passes ``max_body_bytes`` (413) without one."""
        data, scanned, offered = bytearray(), 0, False
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            data += message.get("body", b"")
            more = bool(message.get("more_body", False))
            if len(data) > self.max_body_bytes:
                line = f"{scope['method']} {scope['path']}"
                await visionserve_error_response(too_large(self.max_body_bytes), line, False)(scope, receive, send)
                return
            start = max(0, scanned - _OVERLAP)
            for candidate in body_key_candidates(bytes(data[start:])):
                offered = True
                if key_matches(candidate, self.keys):
                    await self.app(scope, _replay(bytes(data), more, receive), send)
                    return
            scanned = len(data)
            if not more:
                await self._refuse(scope, receive, send, realm, offered)
                return

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, realm: BodyKeyRealm | None, offered: bool
    ) -> None:
        if realm is not None:
            error = AuthenticationError("Incorrect api key" if offered else "missing API key")
            await realm.render(error)(scope, receive, send)
            return
        message = (
            "invalid API key"
            if offered
            else "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
        )
        line = f"{scope['method']} {scope['path']}"
        await visionserve_error_response(AuthenticationError(message), line, False)(scope, receive, send)
