"""Results of every task: masks and keypoints of detections, classifications, the job's task.

Only nullable columns and a new table, so existing rows stay valid: jobs stored before this revision
read as box jobs (``task`` NULL) whose detections have no mask and no keypoints.

Revision ID: 0002
Revises: 0001
Create Date: 2025-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # ADD COLUMN of a nullable column without a default: no table rewrite on SQLite or PostgreSQL.
    op.add_column("jobs", sa.Column("task", sa.String(16)))
    op.add_column("detections", sa.Column("mask", sa.Text()))
    op.add_column("detections", sa.Column("keypoints", sa.Text()))
    op.create_table(
        "classifications",
        sa.Column("job_id", sa.String(32), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("k", sa.Integer(), nullable=False),
        sa.Column("class_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(255), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id", "idx"],
            ["job_items.job_id", "job_items.idx"],
            name="fk_classifications_job_id_job_items",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("job_id", "idx", "k", name="pk_classifications"),
    )


def downgrade() -> None:
    op.drop_table("classifications")
    with op.batch_alter_table("detections") as batch:  # SQLite before 3.35 cannot DROP COLUMN in place
        batch.drop_column("keypoints")
        batch.drop_column("mask")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("task")
