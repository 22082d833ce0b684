"""Data lifecycle: per-license retention overrides, archives of dropped partitions, storage-used views.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


STORAGE_BY_PARTITION = r"""
CREATE VIEW storage_by_partition WITH (security_invoker = true) AS
SELECT CASE parent.relname
           WHEN 'telemetry_events' THEN 'events'
           WHEN 'system_metrics' THEN 'metrics'
           WHEN 'traces' THEN 'traces'
       END AS data_kind,
       parent.relname::text AS table_name,
       child.relname::text AS partition_name,
       (regexp_match(pg_get_expr(child.relpartbound, child.oid), 'FROM \(''([^'']+)''\)'))[1]::timestamptz AS range_start,
       greatest(child.reltuples, 0)::bigint AS rows_estimate,
       pg_total_relation_size(child.oid) AS total_bytes
  FROM pg_inherits i
  JOIN pg_class parent ON parent.oid = i.inhparent
  JOIN pg_class child ON child.oid = i.inhrelid
 WHERE parent.relnamespace = 'public'::regnamespace
   AND parent.relname IN ('telemetry_events', 'system_metrics', 'traces')
"""

STORAGE_BY_KIND = r"""
CREATE VIEW storage_by_kind WITH (security_invoker = true) AS
SELECT data_kind, count(*)::integer AS partitions, sum(rows_estimate)::bigint AS rows_estimate, sum(total_bytes)::bigint AS total_bytes
  FROM storage_by_partition GROUP BY data_kind
UNION ALL
SELECT kind, NULL::integer, greatest(c.reltuples, 0)::bigint, pg_total_relation_size(c.oid)
  FROM (VALUES ('business_metrics', 'business_metrics')) AS k (kind, tbl)
  JOIN pg_class c ON c.oid = to_regclass(k.tbl)
UNION ALL
SELECT 'rollups', NULL::integer, sum(greatest(c.reltuples, 0))::bigint, sum(pg_total_relation_size(c.oid))::bigint
  FROM pg_class c
 WHERE c.oid IN (to_regclass('telemetry_events_hourly'), to_regclass('telemetry_events_daily'),
                 to_regclass('system_metrics_hourly'), to_regclass('system_metrics_daily'),
                 to_regclass('traces_hourly'), to_regclass('traces_daily'))
UNION ALL
SELECT 'alerting', NULL::integer, sum(greatest(c.reltuples, 0))::bigint, sum(pg_total_relation_size(c.oid))::bigint
  FROM pg_class c
 WHERE c.oid IN (to_regclass('alerts'), to_regclass('alert_events'), to_regclass('alert_deliveries'),
                 to_regclass('alert_notifications'), to_regclass('alert_rules'), to_regclass('alert_rule_states'))
"""

# Rows per license come from the hourly rollups of the hours still held raw; bytes are those rows times the
# table's average bytes per row. An estimate: the raw tail not yet rolled up is not counted.
STORAGE_BY_LICENSE = r"""
CREATE VIEW storage_by_license WITH (security_invoker = true) AS
WITH per_table AS (
    SELECT table_name, data_kind, sum(total_bytes)::numeric AS bytes, sum(rows_estimate)::numeric AS rows
      FROM storage_by_partition GROUP BY table_name, data_kind
), horizon AS (
    SELECT source_table, coalesce(raw_horizon, '-infinity'::timestamptz) AS raw_horizon FROM rollup_state
), license_rows AS (
    SELECT 'telemetry_events'::text AS table_name, h.license_id, sum(h.events)::bigint AS rows
      FROM telemetry_events_hourly h
     WHERE h.bucket_start >= coalesce((SELECT raw_horizon FROM horizon WHERE source_table = 'telemetry_events'), '-infinity')
     GROUP BY h.license_id
    UNION ALL
    SELECT 'system_metrics', h.license_id, sum(h.samples)::bigint
      FROM system_metrics_hourly h
     WHERE h.bucket_start >= coalesce((SELECT raw_horizon FROM horizon WHERE source_table = 'system_metrics'), '-infinity')
     GROUP BY h.license_id
    UNION ALL
    SELECT 'traces', h.license_id, sum(h.spans)::bigint
      FROM traces_hourly h
     WHERE h.bucket_start >= coalesce((SELECT raw_horizon FROM horizon WHERE source_table = 'traces'), '-infinity')
     GROUP BY h.license_id
)
SELECT p.data_kind, l.license_id, l.rows AS rows_estimate,
       (CASE WHEN p.rows > 0 THEN round(l.rows * p.bytes / p.rows) ELSE 0 END)::bigint AS bytes_estimate
  FROM license_rows l JOIN per_table p USING (table_name)
"""

VIEWS = ("storage_by_license", "storage_by_kind", "storage_by_partition")


def upgrade() -> None:
    op.create_table(
        "partition_archives",
        sa.Column("archive_id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("table_name", sa.String(length=64), nullable=False),
        sa.Column("partition_name", sa.String(length=128), nullable=False),
        sa.Column("range_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("range_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("row_count", sa.BigInteger(), nullable=False),
        sa.Column("file_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("restored_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("archive_id", name=op.f("pk_partition_archives")),
        sa.UniqueConstraint("table_name", "partition_name", name="uq_partition_archives_table_name_partition_name"),
    )
    op.create_table(
        "retention_overrides",
        sa.Column("license_id", sa.BigInteger(), nullable=False),
        sa.Column("data_kind", sa.String(length=16), nullable=False),
        sa.Column("retention_days", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("data_kind IN ('events', 'metrics', 'traces')", name=op.f("ck_retention_overrides_data_kind")),
        sa.CheckConstraint("retention_days >= 1", name=op.f("ck_retention_overrides_retention_days_positive")),
        sa.ForeignKeyConstraint(
            ["license_id"], ["licenses.license_id"], name=op.f("fk_retention_overrides_license_id_licenses"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("license_id", "data_kind", name=op.f("pk_retention_overrides")),
    )
    for view in (STORAGE_BY_PARTITION, STORAGE_BY_KIND, STORAGE_BY_LICENSE):
        op.execute(view)


def downgrade() -> None:
    for view in VIEWS:
        op.execute(f"DROP VIEW IF EXISTS {view}")
    op.drop_table("retention_overrides")
    op.drop_table("partition_archives")
