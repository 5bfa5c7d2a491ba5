"""Start-up, graceful shutdown, API keys and debug mode, each on a server of its own."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from tests.conftest import encode
from tests.integration.conftest import (
    ServerProcess,
    metric_sum,
    running_server,
    wait_until_ready,
    write_plugin_model,
)

GREEN = encode(np.full((24, 24, 3), (0, 220, 0), np.uint8), ".png")
RED = encode(np.full((24, 24, 3), (0, 0, 220), np.uint8), ".png")


def poll(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def status_of(server: ServerProcess, path: str) -> int:
    try:
        return httpx.get(server.url + path, timeout=5).status_code
    except httpx.TransportError:
        return 0


def test_not_ready_while_warming_up_then_drains_on_sigterm(
    tmp_path: Path, start_server: Callable[..., ServerProcess]
) -> None:
    write_plugin_model(tmp_path / "repo", "slow", delay_s=1.5, instances=1)
    server = start_server("--models", str(tmp_path / "repo"), wait_ready=False)
    # Alive at once, not ready while the slow model warms up (1.5 s).
    poll(lambda: status_of(server, "/healthz") == 200)
    readyz = httpx.get(server.url + "/readyz", timeout=5)
    assert readyz.status_code == 503 and readyz.json()["reason"] == "loading models"
    wait_until_ready(server)

    with ThreadPoolExecutor(1) as pool, httpx.Client(base_url=server.url, timeout=30) as client:
        slow = pool.submit(client.post, "/v1/models/slow/detect", content=GREEN, headers={"Content-Type": "image/png"})
        poll(lambda: metric_sum(client.get("/metrics").text, "visionserve_requests_in_progress") >= 2)
        server.terminate()
        # Draining: readiness fails and new requests are refused while the slow one finishes.
        poll(lambda: status_of(server, "/readyz") == 503)
        assert httpx.get(server.url + "/readyz").json()["reason"] == "shutting down"
        refused = httpx.post(server.url + "/v1/detect", content=GREEN, headers={"Content-Type": "image/png"})
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "shutting_down"
        assert refused.headers["Retry-After"] == "1"
        finished = slow.result(timeout=30)
    assert finished.status_code == 200
    assert finished.json()["detections"][0]["label"] == "green"
    assert server.process.wait(30) == 0
    log = server.log()
    assert "draining" in log and "unloaded" in log


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with two API keys, debug mode, and the crashing plugin."""
    repo = tmp_path_factory.mktemp("secured-repo")
    write_plugin_model(repo, "crashy", crash_on_red=True, instances=1)
    env = {"VISIONSERVE_API_KEYS": "key-one,key-two", "VISIONSERVE_DEBUG": "true"}
    with running_server(("--models", str(repo)), env, tmp_path_factory.mktemp("secured-logs")) as server:
        yield server


@pytest.mark.parametrize("path", ["/v1/models", "/metrics", "/v2/unknown"])
def test_routes_need_a_key(secured: ServerProcess, path: str) -> None:
    response = httpx.get(secured.url + path)
    assert response.status_code == 401
    error = response.json()["error"]
    if path.startswith("/v2/"):  # KServe's shape: the message alone
        assert "API key" in error
    else:
        assert error["code"] == "unauthorized" and "API key" in error["message"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_wrong_key_is_refused(secured: ServerProcess) -> None:
    for headers in ({"Authorization": "Bearer key-three"}, {"X-API-Key": "key-on"}, {"Authorization": "Basic a2V5"}):
        response = httpx.post(secured.url + "/v1/detect", content=GREEN, headers=headers)
        assert response.status_code == 401, headers


def test_either_header_carries_a_valid_key(secured: ServerProcess) -> None:
    bearer = httpx.get(secured.url + "/v1/models", headers={"Authorization": "Bearer key-one"})
    assert bearer.status_code == 200
    header = httpx.get(secured.url + "/metrics", headers={"X-API-Key": "key-two"})
    assert header.status_code == 200


def test_health_probes_need_no_key(secured: ServerProcess) -> None:
    assert httpx.get(secured.url + "/healthz").status_code == 200
    assert httpx.get(secured.url + "/readyz").status_code == 200


def test_keys_never_reach_the_log(secured: ServerProcess) -> None:
    assert "key-one" not in secured.log() and "key-two" not in secured.log()


def test_debug_mode_puts_the_traceback_in_a_500(secured: ServerProcess) -> None:
    response = httpx.post(
        secured.url + "/v1/models/crashy/detect",
        content=RED,
        headers={"Content-Type": "image/png", "X-API-Key": "key-one"},
    )
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "internal_error"
    assert "crashed on purpose" in error["traceback"]
    assert error["id"] in secured.log()
