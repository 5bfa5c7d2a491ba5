"""Connection timeouts and limits, with real sockets against a real server process."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from tests.integration.conftest import ServerProcess

pytestmark = pytest.mark.slow
ARGS = ("--header-timeout", "1", "--keep-alive-timeout", "1", "--body-timeout", "2", "--max-connections", "50")


@pytest.fixture
def server(start_server: Callable[..., ServerProcess]) -> Iterator[ServerProcess]:
    yield start_server(*ARGS)


def connect(server: ServerProcess) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server closes ``sock`` within ``seconds`` (reads whatever it sends first)."""
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return True


def test_idle_and_slow_header_connections_are_closed(server: ServerProcess) -> None:
    idle = [connect(server) for _ in range(20)]
    slow = connect(server)
    started, cut = time.monotonic(), False
    for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 100:
        try:
            slow.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            cut = True
            break
        time.sleep(0.1)
    assert cut and time.monotonic() - started < 4
    assert all(closed_within(sock, 3.0) for sock in idle)
    for sock in [*idle, slow]:
        sock.close()
    assert httpx.get(server.url + "/healthz", timeout=5).status_code == 200


def test_a_trickled_body_gets_408(server: ServerProcess) -> None:
    sock = connect(server)
    head = b"POST /v1/detect HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 1000\r\n\r\n"
    sock.sendall(head)
    started = time.monotonic()
    answer = b""
    sock.settimeout(0.5)
    while time.monotonic() - started < 6 and b"\r\n\r\n" not in answer:
        try:
            sock.sendall(b"\x89")
            answer += sock.recv(65536)
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            break
    sock.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert time.monotonic() - started < 5


def test_a_keep_alive_connection_is_closed_when_idle(server: ServerProcess) -> None:
    sock = connect(server)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    sock.settimeout(5)
    assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    assert closed_within(sock, 3.0)
    sock.close()
