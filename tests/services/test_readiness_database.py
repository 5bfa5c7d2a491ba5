"""/readyz follows the jobs database: 503 while it cannot be reached, 200 again by itself once it can.

The outage is of this test's own PostgreSQL database only (connections refused and the server's
terminated), so other runs on the same PostgreSQL are not disturbed.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import psycopg
import pytest
from tests.integration.conftest import ServerProcess, launch_server
from tests.services.conftest import POSTGRES_ADMIN

pytestmark = pytest.mark.slow


def cut(database: str, allow: bool) -> None:
    """Allow or refuse connections to ``database``; refusing also ends those that are open."""
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {str(allow).lower()}')
        if not allow:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (database,))


def until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.2)


def test_readiness_follows_the_jobs_database(postgres_url: str) -> None:
    database = postgres_url.rsplit("/", 1)[1]
    server: ServerProcess = launch_server(env={"VISIONSERVE_DATABASE_URL": postgres_url})
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            assert client.get("/readyz").json()["jobs_database"] == "ok"
            cut(database, allow=False)
            try:
                until(lambda: client.get("/readyz").status_code == 503)
                ready = client.get("/readyz").json()
                assert ready["jobs_database"] == "unavailable" and ready["reason"].startswith("jobs database")
                assert client.get("/healthz").status_code == 200  # alive: a restart would not help
                refused = client.post("/v1/jobs", json={"urls": ["http://127.0.0.1/a.jpg"]})
                assert refused.status_code in {422, 503} and refused.status_code != 500
                assert client.get("/v1/jobs").status_code == 503
            finally:
                cut(database, allow=True)
            until(lambda: client.get("/readyz").status_code == 200)
            assert client.get("/v1/jobs").status_code == 200
    finally:
        server.stop()
