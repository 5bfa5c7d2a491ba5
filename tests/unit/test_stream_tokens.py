"""Signed tokens: what each one opens in the auth middleware's ``token_check``."""

from __future__ import annotations

from typing import Any

from visionserve.api.streams_wiring import token_check
from visionserve.streams import tokens

SECRET = b"s" * 32
NOW = 1_800_000_000.0


def scope(kind: str, path: str, token: str | None, method: str = "GET") -> dict[str, Any]:
    query = b"" if token is None else f"model=m&token={token}".encode()
    base: dict[str, Any] = {"type": kind, "path": path, "query_string": query}
    return base | ({"method": method} if kind == "http" else {})


def check(scope_: dict[str, Any], now: float = NOW) -> bool:
    return token_check(SECRET, clock=lambda: now)(scope_)


def test_a_websocket_token_opens_the_detect_websocket_until_it_expires() -> None:
    token = tokens.issue(SECRET, tokens.WEBSOCKET_SUBJECT, NOW + 300)
    assert check(scope("websocket", "/v1/detect/ws", token))
    assert not check(scope("websocket", "/v1/detect/ws", token), now=NOW + 301)
    assert not check(scope("websocket", "/v1/detect/ws", None))
    foreign = tokens.issue(b"other" * 8, tokens.WEBSOCKET_SUBJECT, NOW + 300)
    assert not check(scope("websocket", "/v1/detect/ws", foreign))


def test_a_websocket_token_opens_no_stream_and_a_stream_token_not_the_websocket() -> None:
    ws_token = tokens.issue(SECRET, tokens.WEBSOCKET_SUBJECT, NOW + 300)
    stream_token = tokens.issue(SECRET, "cam1", NOW + 300)
    assert check(scope("http", "/v1/streams/cam1/mjpeg", stream_token))
    assert not check(scope("websocket", "/v1/detect/ws", stream_token))
    assert not check(scope("http", "/v1/streams/cam1/mjpeg", ws_token))
    assert not check(scope("http", "/v1/detect/ws", ws_token))  # only the WebSocket itself, not plain HTTP
    assert not check(scope("http", "/v1/detect/ws/token", ws_token, method="POST"))
    assert not check(scope("websocket", "/v1/other/ws", ws_token))
