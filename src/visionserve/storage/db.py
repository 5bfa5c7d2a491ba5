"""The jobs database: an engine for a URL, transactions, and schema upgrades with Alembic.

SQLite (the default, one file in the data folder) runs in WAL mode and starts every transaction
with ``BEGIN IMMEDIATE``, so that concurrent writers in one process wait for each other instead of
failing on a lock upgrade. PostgreSQL (``postgresql://`` URLs use psycopg 3) is the shared database
of a scale-out set-up; its schema upgrades hold an advisory lock so that a server and several
workers starting together migrate once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, InterfaceError, OperationalError
from sqlalchemy.pool import ConnectionPoolEntry

from visionserve.errors import ConfigError, StorageError

log = logging.getLogger(__name__)

#: The SQLite file of the default set-up, inside the data folder.
SQLITE_FILENAME = "visionserve.db"
#: Key of the PostgreSQL advisory lock held while migrating ("visi" in ASCII).
_MIGRATION_LOCK = 0x76697369


def sqlite_url(data_dir: Path) -> str:
    """The URL of the default database in ``data_dir``."""
    return f"sqlite:///{(data_dir / SQLITE_FILENAME).resolve()}"


def _normalize(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"invalid database URL: {exc}") from exc
    if parsed.drivername in {"postgresql", "postgres"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in {"sqlite", "postgresql"}:
        raise ConfigError(f"unsupported database {parsed.get_backend_name()!r}: use sqlite:/// or postgresql://")
    return parsed


def _sqlite_connect(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    dbapi_connection.isolation_level = None  # the driver must not BEGIN on its own; see _sqlite_begin
    cursor = dbapi_connection.cursor()
    for pragma in ("journal_mode=WAL", "busy_timeout=30000", "foreign_keys=ON", "synchronous=NORMAL"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    """An engine with transactions that translate lost connections into :class:`StorageError`.

    Raises :class:`ConfigError` for a URL of another kind of database.
    """

    def __init__(self, url: str) -> None:
        self.url = _normalize(url)
        if self.is_sqlite:
            database = self.url.database or ""
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = create_engine(self.url, connect_args={"check_same_thread": False, "timeout": 30})
            event.listen(self.engine, "connect", _sqlite_connect)
            event.listen(self.engine, "begin", _sqlite_begin)
        else:
            self.engine = create_engine(self.url, pool_pre_ping=True, pool_size=5, max_overflow=10)

    @property
    def is_sqlite(self) -> bool:
        return self.url.get_backend_name() == "sqlite"

    def display_url(self) -> str:
        """The URL with its password masked."""
        return self.url.render_as_string(hide_password=True)

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A connection in a transaction, committed on success and rolled back on error."""
        try:
            with self.engine.begin() as connection:
                yield connection
        except (OperationalError, InterfaceError) as exc:
            raise StorageError(f"jobs database {self.display_url()}: {exc.orig or exc}") from exc

    def ping(self) -> None:
        """Return when the database answers ``SELECT 1``; :class:`StorageError` otherwise. A SQLite
        file has no server to lose, and a probe must not take its write lock, so it is not queried."""
        if self.is_sqlite:
            return
        with self.begin() as connection:
            connection.execute(text("SELECT 1"))

    def upgrade(self, revision: str = "head") -> None:
        """Bring the schema to ``revision``, the newest by default (idempotent; old databases are
        migrated)."""
        with self.begin() as connection:
            if not self.is_sqlite:
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
            config = _alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
        log.info("jobs database %s is at revision %s", self.display_url(), self.revision())

    def revision(self) -> str | None:
        """The schema revision the database is at (None before the first upgrade)."""
        with self.begin() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def close(self) -> None:
        self.engine.dispose()


def head_revision() -> str | None:
    """The newest revision that this version of visionserve knows."""
    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(resources.files("visionserve.storage") / "migrations"))
    return config
