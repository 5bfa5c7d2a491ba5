"""Jobs, items, detections and artifacts.

Revision ID: 0001
Revises:
Create Date: 2025-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _when() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("options", sa.Text(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text()),
        sa.Column("webhook_url", sa.Text()),
        sa.Column("webhook_state", sa.String(16)),
        sa.Column("webhook_attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", _when(), nullable=False),
        sa.Column("dispatched_at", _when()),
        sa.Column("started_at", _when()),
        sa.Column("finished_at", _when()),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
    )
    op.create_index("ix_jobs_state_created", "jobs", ["state", "created_at"])
    op.create_index("ix_jobs_created", "jobs", ["created_at"])
    op.create_table(
        "job_items",
        sa.Column("job_id", sa.String(32), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("url", sa.Text()),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(255)),
        sa.Column("error", sa.Text()),
        sa.Column("width", sa.Integer()),
        sa.Column("height", sa.Integer()),
        sa.Column("fetch_ms", sa.Float()),
        sa.Column("decode_ms", sa.Float()),
        sa.Column("inference_ms", sa.Float()),
        sa.Column("total_ms", sa.Float()),
        sa.Column("detection_count", sa.Integer(), nullable=False),
        sa.Column("crop_count", sa.Integer(), nullable=False),
        sa.Column("annotated", sa.Boolean(), nullable=False),
        sa.Column("claimed_at", _when()),
        sa.Column("finished_at", _when()),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name="fk_job_items_job_id_jobs", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("job_id", "idx", name="pk_job_items"),
    )
    op.create_index("ix_job_items_job_state", "job_items", ["job_id", "state"])
    op.create_index("ix_job_items_finished", "job_items", ["finished_at"])
    op.create_table(
        "detections",
        sa.Column("job_id", sa.String(32), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("k", sa.Integer(), nullable=False),
        sa.Column("class_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(255), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("x1", sa.Float(), nullable=False),
        sa.Column("y1", sa.Float(), nullable=False),
        sa.Column("x2", sa.Float(), nullable=False),
        sa.Column("y2", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id", "idx"],
            ["job_items.job_id", "job_items.idx"],
            name="fk_detections_job_id_job_items",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("job_id", "idx", "k", name="pk_detections"),
    )
    op.create_table(
        "artifacts",
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("created_at", _when(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_artifacts"),
    )


def downgrade() -> None:
    op.drop_table("artifacts")
    op.drop_table("detections")
    op.drop_index("ix_job_items_finished", table_name="job_items")
    op.drop_index("ix_job_items_job_state", table_name="job_items")
    op.drop_table("job_items")
    op.drop_index("ix_jobs_created", table_name="jobs")
    op.drop_index("ix_jobs_state_created", table_name="jobs")
    op.drop_table("jobs")
