"""The job store contract, artifacts in the database, and concurrent migrations, on PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.jobs_migration_contract import MigrationContract
from tests.jobs_store_contract import ArtifactContract, StoreContract

from visionserve.jobs.config import JobsConfig
from visionserve.jobs.factory import Storage, open_storage
from visionserve.settings import ArtifactBackend
from visionserve.storage.db import Database, head_revision


@pytest.fixture
def storage(postgres_url: str, tmp_path: Path) -> Iterator[Storage]:
    config = JobsConfig(data_dir=tmp_path, database_url=postgres_url, artifact_backend=ArtifactBackend.DATABASE)
    opened = open_storage(config)
    yield opened
    opened.db.close()


class TestPostgresStore(StoreContract):
    pass


class TestPostgresArtifacts(ArtifactContract):
    pass


class TestPostgresMigration(MigrationContract):
    @pytest.fixture
    def database_url(self, postgres_url: str) -> str:
        return postgres_url


def test_processes_starting_together_migrate_once(postgres_url: str) -> None:
    databases = [Database(postgres_url) for _ in range(4)]
    errors: list[BaseException] = []

    def upgrade(db: Database) -> None:
        try:
            db.upgrade()
        except Exception as exc:  # noqa: BLE001  (collected, and asserted on in the test thread)
            errors.append(exc)

    threads = [threading.Thread(target=upgrade, args=(db,)) for db in databases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert {db.revision() for db in databases} == {head_revision()}
    for db in databases:
        db.close()
