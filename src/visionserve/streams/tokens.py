"""Short-lived signed tokens that let a browser watch one stream without sending a header.

``<img src>`` and ``EventSource`` cannot send ``Authorization``; with API keys on, an authenticated
client asks ``POST /v1/streams/{id}/token`` and puts the answer in the query
(``/v1/streams/{id}/mjpeg?token=...``). A token is ``<expiry>.<signature>``: the expiry in Unix
seconds, and the URL-safe base64 HMAC-SHA256 of ``"<stream id>.<expiry>"`` under the server's secret.
It grants the GET routes of that one stream (images and events) until it expires, and nothing else.

Browsers cannot send headers on a WebSocket either: ``POST /v1/detect/ws/token`` issues the same kind of
token for :data:`WEBSOCKET_SUBJECT` in place of a stream id, which opens ``WS /v1/detect/ws?token=...``.
The subject holds a ``:``, which no stream id can (they are ``[A-Za-z0-9_.-]``), so a stream's token
never opens the WebSocket and the WebSocket's never opens a stream.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

#: What a WebSocket token signs in place of a stream id.
WEBSOCKET_SUBJECT = "ws:/v1/detect/ws"


def _signature(secret: bytes, stream_id: str, expiry: int) -> str:
    digest = hmac.new(secret, f"{stream_id}.{expiry}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def issue(secret: bytes, stream_id: str, expires_at: float) -> str:
    """A token for ``stream_id`` valid until ``expires_at`` (Unix seconds, rounded up)."""
    expiry = int(-(-expires_at // 1))
    return f"{expiry}.{_signature(secret, stream_id, expiry)}"


def verify(secret: bytes, stream_id: str, token: str, now: float) -> bool:
    """Whether ``token`` was issued for ``stream_id`` under ``secret`` and has not expired at ``now``."""
    expiry_text, _, signature = token.partition(".")
    if not expiry_text.isdigit() or len(expiry_text) > 12 or not signature:
        return False
    expiry = int(expiry_text)
    if expiry < now:
        return False
    return hmac.compare_digest(signature.encode(), _signature(secret, stream_id, expiry).encode())
