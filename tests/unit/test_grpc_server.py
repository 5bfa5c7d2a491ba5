"""Starting the gRPC server in process: off without a port, a clear error for a port in use, a refusal
for a caller without a key before any message is parsed."""

from __future__ import annotations

import socket
from pathlib import Path

import grpc
import pytest
from pydantic import SecretStr
from tests.jobs_support import write_plugin_model

from visionserve.api.kserve_grpc.guard import Guard
from visionserve.api.kserve_grpc.server import address, start_grpc, stop_grpc
from visionserve.api.limits import InFlight
from visionserve.api.metrics import Metrics
from visionserve.errors import ConfigError
from visionserve.models.repository import ModelRepository
from visionserve.serving import DetectionService
from visionserve.settings import Settings

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def service_for(tmp_path: Path) -> DetectionService:
    models = tmp_path / "models"
    write_plugin_model(models, tmp_path / "seen.log")
    return DetectionService(ModelRepository.scan(models))  # never started: nothing is loaded


async def test_no_port_no_server(tmp_path: Path) -> None:
    assert await start_grpc(Settings(), service_for(tmp_path), Metrics(), InFlight()) is None


async def test_a_port_in_use_is_a_config_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = Settings(grpc_port=port)
        with pytest.raises(ConfigError, match=f"cannot listen for gRPC on 127.0.0.1:{port}"):
            await start_grpc(settings, service_for(tmp_path), Metrics(), InFlight())


async def test_a_server_starts_and_stops(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = await start_grpc(Settings(grpc_port=port), service_for(tmp_path), Metrics(), InFlight())
    assert server is not None
    await stop_grpc(server)


def test_ipv6_hosts_are_bracketed() -> None:
    assert (address("::1", 8001), address("0.0.0.0", 8001)) == ("[::1]:8001", "0.0.0.0:8001")


@pytest.mark.parametrize(
    ("method", "metadata", "refusal"),
    [
        ("ServerLive", (), None),
        ("ServerReady", (), None),
        ("ModelInfer", (), grpc.StatusCode.UNAUTHENTICATED),
        ("ModelInfer", (("x-api-key", "wrong"),), grpc.StatusCode.UNAUTHENTICATED),
        ("ModelInfer", (("x-api-key", "k1"),), None),
        ("ModelInfer", (("authorization", "Bearer k1"),), None),
        ("SystemSharedMemoryStatus", (("x-api-key", "k1"),), grpc.StatusCode.UNIMPLEMENTED),
        ("SystemSharedMemoryStatus", (), grpc.StatusCode.UNAUTHENTICATED),
    ],
)
def test_the_guard_decides_from_method_and_metadata(
    tmp_path: Path, method: str, metadata: tuple[tuple[str, str], ...], refusal: grpc.StatusCode | None
) -> None:
    guard = Guard(service_for(tmp_path), Metrics(), InFlight(), keys=(SecretStr("k1"),))
    found = guard.refusal(method, metadata)
    assert (found[0] if found else None) is refusal


def test_draining_refuses_all_but_the_probes(tmp_path: Path) -> None:
    service = service_for(tmp_path)
    service.begin_drain()
    guard = Guard(service, Metrics(), InFlight())
    assert guard.refusal("ServerReady", ()) is None
    assert guard.refusal("ModelMetadata", ()) == (
        grpc.StatusCode.UNAVAILABLE,
        "the server is shutting down and takes no new requests",
    )
