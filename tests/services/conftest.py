"""Tests against the real PostgreSQL (127.0.0.1:5432), Redis (6379) and RabbitMQ (5672).

Every test here is marked ``services``. A service that cannot be reached makes its tests skip, with
the reason, except when ``VISIONSERVE_REQUIRE_SERVICES=1`` (``.ci/run`` sets it): then they fail.
Each test gets its own PostgreSQL database, Redis queue (in a Redis database picked at random) and
RabbitMQ queue, all removed afterwards, so that runs side by side do not collide. Admin URLs can be
changed with ``VISIONSERVE_TEST_POSTGRES_URL``, ``VISIONSERVE_TEST_REDIS_URL`` and
``VISIONSERVE_TEST_AMQP_URL``.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest

POSTGRES_ADMIN = os.environ.get("VISIONSERVE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_BASE = os.environ.get("VISIONSERVE_TEST_REDIS_URL", "redis://127.0.0.1:6379")
AMQP_URL = os.environ.get("VISIONSERVE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(pytest.mark.services)


def reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=1.0):
            return True
    except OSError:
        return False


def require(name: str, url: str, default_port: int) -> None:
    """Skip (or fail, with VISIONSERVE_REQUIRE_SERVICES=1) unless ``url`` accepts connections."""
    if reachable(url, default_port):
        return
    where = f"{urlsplit(url).hostname}:{urlsplit(url).port or default_port}"
    if os.environ.get("VISIONSERVE_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{name} is not reachable at {where}, and VISIONSERVE_REQUIRE_SERVICES=1 requires it")
    pytest.skip(f"{name} is not reachable at {where} (start it, or run .ci/run which does)")


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """The URL of a fresh, empty database, dropped after the test."""
    require("PostgreSQL", POSTGRES_ADMIN, 5432)
    import psycopg

    name = unique_name("visionserve_test")
    admin = POSTGRES_ADMIN.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(admin)
    yield parts._replace(path=f"/{name}").geturl()
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass(frozen=True)
class Broker:
    """A broker URL and a queue name of this test's own; ``cleanup`` deletes the queue."""

    kind: str
    url: str
    queue: str

    def cleanup(self) -> None:
        from kombu import Connection

        with Connection(self.url, connect_timeout=5) as connection:
            channel = connection.default_channel
            with contextlib.suppress(connection.channel_errors):
                channel.queue_delete(self.queue)
        if self.kind == "redis":  # kombu's bookkeeping keys of this queue and its exchange
            import redis

            with redis.Redis.from_url(self.url) as client:
                for key in client.scan_iter(match=f"*{self.queue}*"):
                    client.delete(key)
                for tag, payload in client.hgetall("unacked").items():  # messages a killed worker held
                    if json.loads(payload)[2] == self.queue:
                        client.hdel("unacked", tag)
                        client.zrem("unacked_index", tag)


def _broker(kind: str) -> Broker:
    queue = unique_name("visionserve-test")
    if kind == "redis":
        require("Redis", REDIS_BASE, 6379)
        return Broker(kind, f"{REDIS_BASE}/{random.randint(1, 15)}", queue)
    require("RabbitMQ", AMQP_URL, 5672)
    return Broker(kind, AMQP_URL, queue)


@pytest.fixture(params=["redis", "rabbitmq"])
def broker(request: pytest.FixtureRequest) -> Iterator[Broker]:
    made = _broker(request.param)
    yield made
    made.cleanup()


@pytest.fixture
def redis_broker() -> Iterator[Broker]:
    made = _broker("redis")
    yield made
    made.cleanup()
