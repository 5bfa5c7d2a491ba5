"""Artifact stores: bytes of inputs, crops and annotated images under keys made of ids.

:class:`LocalArtifactStore` keeps files under a folder (the default: ``<data dir>/artifacts``);
:class:`DatabaseArtifactStore` keeps them in the jobs database, so that workers on other machines
need nothing shared but PostgreSQL and the broker. An S3-compatible store would be a third class
with the same three methods.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite

from visionserve.errors import JobNotFoundError, StorageError
from visionserve.storage.db import Database
from visionserve.storage.tables import artifacts

_KEY = re.compile(r"[a-z0-9]+(/[a-z0-9][a-z0-9._-]*)*/?")


def check_artifact_key(key: str) -> str:
    """``key`` if it is lowercase ``segment/segment/...`` without ``..``; else :class:`StorageError`
    (keys come from :mod:`visionserve.jobs.model`, never from users, so a bad one is a bug)."""
    if not _KEY.fullmatch(key) or ".." in key:
        raise StorageError(f"invalid artifact key {key!r}")
    return key


class LocalArtifactStore:
    """Files under ``root``; ``put`` writes a temporary file and renames it into place."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / check_artifact_key(key)

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(data)
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise StorageError(f"cannot write artifact {key}: {exc.strerror}") from exc

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise JobNotFoundError(f"no artifact {key}") from exc
        except OSError as exc:
            raise StorageError(f"cannot read artifact {key}: {exc.strerror}") from exc

    def delete_prefix(self, prefix: str) -> None:
        if not prefix.endswith("/"):
            raise StorageError(f"artifact prefix {prefix!r} must end with '/'")
        try:
            shutil.rmtree(self._path(prefix))
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StorageError(f"cannot remove artifacts {prefix}: {exc.strerror}") from exc


class DatabaseArtifactStore:
    """Rows of the ``artifacts`` table; ``put`` is an upsert."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._insert = sqlite.insert if db.is_sqlite else postgresql.insert

    def put(self, key: str, data: bytes) -> None:
        row = {"key": check_artifact_key(key), "data": data, "size": len(data), "created_at": datetime.now(UTC)}
        statement = self._insert(artifacts).values(row)
        statement = statement.on_conflict_do_update(
            index_elements=[artifacts.c.key],
            set_={"data": statement.excluded.data, "size": statement.excluded.size},
        )
        with self._db.begin() as c:
            c.execute(statement)

    def get(self, key: str) -> bytes:
        with self._db.begin() as c:
            data = c.execute(select(artifacts.c.data).where(artifacts.c.key == check_artifact_key(key))).scalar()
        if data is None:
            raise JobNotFoundError(f"no artifact {key}")
        return bytes(data)

    def delete_prefix(self, prefix: str) -> None:
        if not prefix.endswith("/"):
            raise StorageError(f"artifact prefix {prefix!r} must end with '/'")
        with self._db.begin() as c:
            c.execute(delete(artifacts).where(artifacts.c.key.startswith(check_artifact_key(prefix), autoescape=True)))
