"""Rollup buckets whose recomputation failed: one row per bucket with the error and when, so one bad
bucket is recorded and skipped (retried later) while every other bucket and the watermark move on. The
tenant role may read it (series take a failed hour from raw rows), as it reads ``rollup_dirty_buckets``.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT_ROLE = "fernando_telemetry_tenant"
"""Reads it as it reads ``rollup_dirty_buckets``: a failed hour is read from raw rows."""


def upgrade() -> None:
    op.create_table(
        "rollup_failures",
        sa.Column("source_table", sa.String(64), nullable=False),
        sa.Column("grain", sa.String(8), nullable=False),
        sa.Column("bucket_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("failures", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.CheckConstraint("grain IN ('hour', 'day')", name=op.f("ck_rollup_failures_grain")),
        sa.ForeignKeyConstraint(
            ["source_table"], ["rollup_state.source_table"],
            name=op.f("fk_rollup_failures_source_table_rollup_state"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("source_table", "grain", "bucket_start", name=op.f("pk_rollup_failures")),
    )  # fmt: skip
    op.execute(f"GRANT SELECT ON rollup_failures TO {TENANT_ROLE}")


def downgrade() -> None:
    op.drop_table("rollup_failures")
