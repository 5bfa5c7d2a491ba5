"""Alembic environment: migrations run on the connection that ``Database.upgrade`` hands over.

Run them with ``visionserve db upgrade`` or let the server and workers do it on start; there is no
``alembic.ini``. ``alembic revision --autogenerate`` works from a config whose ``sqlalchemy.url``
points at a database that is at head.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from visionserve.errors import ConfigError
from visionserve.storage.tables import metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise ConfigError("no connection handed over and no sqlalchemy.url configured")
    engine = create_engine(url)
    with engine.begin() as own:
        _run(own)
    engine.dispose()


run_migrations()
