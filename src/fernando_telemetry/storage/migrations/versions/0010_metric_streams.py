"""Cumulative metric streams: the state that turns running totals into increments, and counters stored as increments.

``metric_streams`` keeps the last point of each cumulative stream (a counter's running total, a histogram's
running bucket counts, a summary's count and sum), read and updated by the writer in the transaction that
stores the increments. ``system_metrics.cumulative_value`` keeps a cumulative counter's running total as sent.
Counter rows stored before this revision held running totals: they become increments per series (ordered by
time: the difference from the previous sample, the whole value after a drop, 0 for the first sample with its
total kept in ``cumulative_value``), with ``start_time`` the previous sample's time; the hours holding counter
rows are marked for the rollup refresh to recompute.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COUNTERS_TO_INCREMENTS = """
WITH ordered AS (
    SELECT metric_id, "timestamp", value,
           lag(value) OVER series AS previous_value,
           lag("timestamp") OVER series AS previous_time
    FROM system_metrics
    WHERE metric_type = 'counter'
    WINDOW series AS (
        PARTITION BY license_id, metric_name, service_name, host_name, instance_id, labels
        ORDER BY "timestamp", metric_id
    )
)
UPDATE system_metrics AS m
SET cumulative_value = o.value,
    value = CASE
        WHEN o.previous_value IS NULL THEN 0
        WHEN o.value >= o.previous_value THEN o.value - o.previous_value
        ELSE o.value
    END,
    start_time = o.previous_time
FROM ordered AS o
WHERE m.metric_id = o.metric_id AND m."timestamp" = o."timestamp" AND m.metric_type = 'counter'
"""

_COUNTER_HOURS_DIRTY = """
INSERT INTO rollup_dirty_buckets (source_table, grain, bucket_start)
SELECT DISTINCT 'system_metrics', 'hour', date_trunc('hour', m."timestamp", 'UTC')
FROM system_metrics AS m
WHERE m.metric_type = 'counter' AND EXISTS (SELECT 1 FROM rollup_state WHERE source_table = 'system_metrics')
ON CONFLICT DO NOTHING
"""

_INCREMENTS_TO_COUNTERS = """
UPDATE system_metrics SET value = cumulative_value, start_time = NULL
WHERE metric_type = 'counter' AND cumulative_value IS NOT NULL
"""


def upgrade() -> None:
    op.create_table(
        "metric_streams",
        sa.Column("stream_key", sa.String(length=64), nullable=False),
        sa.Column("license_id", sa.BigInteger(), nullable=True),
        sa.Column("metric_name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("service_name", sa.String(length=100), nullable=True),
        sa.Column("host_name", sa.String(length=255), nullable=True),
        sa.Column("instance_id", sa.String(length=255), nullable=True),
        sa.Column("labels", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("stream_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_value", sa.Double(), nullable=True),
        sa.Column("last_count", sa.BigInteger(), nullable=True),
        sa.Column("last_sum", sa.Double(), nullable=True),
        sa.Column("last_bounds", postgresql.ARRAY(sa.Double()), nullable=True),
        sa.Column("last_counts", postgresql.ARRAY(sa.BigInteger()), nullable=True),
        sa.Column("last_scale", sa.Integer(), nullable=True),
        sa.Column("last_offset", sa.Integer(), nullable=True),
        sa.Column("last_zero_count", sa.BigInteger(), nullable=True),
        sa.Column("last_negative_offset", sa.Integer(), nullable=True),
        sa.Column("last_negative_counts", postgresql.ARRAY(sa.BigInteger()), nullable=True),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["license_id"], ["licenses.license_id"], name=op.f("fk_metric_streams_license_id_licenses"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("stream_key", name=op.f("pk_metric_streams")),
    )
    op.add_column("system_metrics", sa.Column("cumulative_value", sa.Double(), nullable=True))
    op.execute(_COUNTERS_TO_INCREMENTS)
    op.execute(_COUNTER_HOURS_DIRTY)  # their rollups summed running totals: the refresh recomputes those hours


def downgrade() -> None:
    op.execute(_INCREMENTS_TO_COUNTERS)
    op.execute(_COUNTER_HOURS_DIRTY)
    op.drop_column("system_metrics", "cumulative_value")
    op.drop_table("metric_streams")
