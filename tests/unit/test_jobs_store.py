"""The SQLite job store and both artifact stores, against the shared contract; migrations."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from tests.jobs_migration_contract import MigrationContract
from tests.jobs_store_contract import ArtifactContract, StoreContract

from visionserve.errors import ConfigError
from visionserve.jobs.config import JobsConfig
from visionserve.jobs.factory import Storage, open_storage
from visionserve.settings import ArtifactBackend
from visionserve.storage.db import Database, head_revision
from visionserve.storage.tables import metadata


@pytest.fixture(params=[ArtifactBackend.LOCAL, ArtifactBackend.DATABASE])
def storage(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Storage]:
    opened = open_storage(JobsConfig(data_dir=tmp_path, artifact_backend=request.param))
    yield opened
    opened.db.close()


class TestSqliteStore(StoreContract):
    pass


class TestArtifacts(ArtifactContract):
    pass


class TestSqliteMigration(MigrationContract):
    @pytest.fixture
    def database_url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path}/old.db"


def test_upgrade_creates_the_schema_of_the_tables_module(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path}/sub/dir/jobs.db")
    assert db.revision() is None
    db.upgrade()
    db.upgrade()  # idempotent
    assert db.revision() == head_revision()
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []
        assert set(inspect(connection).get_table_names()) >= {"jobs", "job_items", "detections", "artifacts"}
    db.close()


@pytest.mark.parametrize("url", ["mysql://u@h/db", "not a url"])
def test_unsupported_database_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError):
        Database(url)


def test_postgres_urls_use_psycopg3() -> None:
    db = Database("postgresql://user:secret@db.example:5432/vs")
    assert db.url.drivername == "postgresql+psycopg"
    assert "secret" not in db.display_url()
    db.close()
