"""The relational schema of jobs (SQLAlchemy Core). Alembic revisions in ``migrations/`` create and
upgrade it; a test checks that the migrated schema matches these tables.

- ``jobs``: one status row per job.
- ``job_items``: one row per image; ``(job_id, idx)`` is the primary key, ``attempt`` the claim
  counter that makes commits compare-and-set.
- ``detections``: results of box tasks, apart from the status rows; ``(job_id, idx, k)`` is the
  primary key, so an item's detections cannot be stored twice. ``mask`` is the instance mask of a
  segment model as COCO RLE JSON (``{"size": [H, W], "counts": "..."}``), ``keypoints`` those of a
  pose model as JSON ``[[x, y, score], ...]`` in the model's keypoint order (revision 0002).
- ``classifications``: the top-k classes of each item of a classify job; ``k`` is the rank (0 =
  highest score) (revision 0002).
- ``artifacts``: bytes, used only when artifacts are kept in the database instead of files.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)
from sqlalchemy import Column as C
from sqlalchemy.engine import Dialect

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the zone; it is put back on read)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: store timezone-aware UTC times")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if not isinstance(value, datetime):
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


jobs = Table(
    "jobs",
    metadata,
    C("id", String(32), primary_key=True),
    C("state", String(16), nullable=False),
    C("model", String(255), nullable=False),
    C("options", Text, nullable=False),
    C("total", Integer, nullable=False),
    C("error", Text),
    C("webhook_url", Text),
    C("webhook_state", String(16)),
    C("webhook_attempts", Integer, nullable=False, default=0),
    C("created_at", UTCDateTime, nullable=False),
    C("task", String(16)),  # the model's task at submission; NULL for jobs stored before 0002 (boxes)
    C("dispatched_at", UTCDateTime),
    C("started_at", UTCDateTime),
    C("finished_at", UTCDateTime),
    Index("ix_jobs_state_created", "state", "created_at"),
    Index("ix_jobs_created", "created_at"),
)

job_items = Table(
    "job_items",
    metadata,
    C("job_id", String(32), primary_key=True),
    C("idx", Integer, primary_key=True),
    C("state", String(16), nullable=False),
    C("source", Text, nullable=False),
    C("url", Text),
    C("attempt", Integer, nullable=False, default=0),
    C("worker", String(255)),
    C("error", Text),
    C("width", Integer),
    C("height", Integer),
    C("fetch_ms", Float),
    C("decode_ms", Float),
    C("inference_ms", Float),
    C("total_ms", Float),
    C("detection_count", Integer, nullable=False, default=0),
    C("crop_count", Integer, nullable=False, default=0),
    C("annotated", Boolean, nullable=False, default=False),
    C("claimed_at", UTCDateTime),
    C("finished_at", UTCDateTime),
    ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
    Index("ix_job_items_job_state", "job_id", "state"),
    Index("ix_job_items_finished", "finished_at"),
)

detections = Table(
    "detections",
    metadata,
    C("job_id", String(32), primary_key=True),
    C("idx", Integer, primary_key=True),
    C("k", Integer, primary_key=True),
    C("class_id", Integer, nullable=False),
    C("label", String(255), nullable=False),
    C("score", Float, nullable=False),
    C("x1", Float, nullable=False),
    C("y1", Float, nullable=False),
    C("x2", Float, nullable=False),
    C("y2", Float, nullable=False),
    C("mask", Text),
    C("keypoints", Text),
    ForeignKeyConstraint(["job_id", "idx"], ["job_items.job_id", "job_items.idx"], ondelete="CASCADE"),
)

classifications = Table(
    "classifications",
    metadata,
    C("job_id", String(32), primary_key=True),
    C("idx", Integer, primary_key=True),
    C("k", Integer, primary_key=True),
    C("class_id", Integer, nullable=False),
    C("label", String(255), nullable=False),
    C("score", Float, nullable=False),
    ForeignKeyConstraint(["job_id", "idx"], ["job_items.job_id", "job_items.idx"], ondelete="CASCADE"),
)

artifacts = Table(
    "artifacts",
    metadata,
    C("key", String(255), primary_key=True),
    C("data", LargeBinary, nullable=False),
    C("size", Integer, nullable=False),
    C("created_at", UTCDateTime, nullable=False),
)
