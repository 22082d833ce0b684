"""The seed's examples run as written: database defaults for ids and times, and a retention function that
keeps what a license is promised and what is not archived yet.

- ``telemetry_events.event_id`` defaults to ``gen_random_uuid()`` and ``event_timestamp`` to ``now()``;
  ``system_metrics.timestamp`` to ``now()``; ``traces.trace_id`` / ``span_id`` to random hex ids of the
  W3C lengths (32 and 16) and ``start_time`` to ``now()``. A plain ``INSERT`` without them works.
- ``retention_settings``: one row; ``archive_before_drop`` is written by every retention run (true when it
  archives to Parquet).
- ``cleanup_old_telemetry_data`` (same arguments; one more result column, ``partitions_kept``): drops
  partitions at the longest retention of the argument and every license's override, and, while
  ``archive_before_drop`` is set, keeps each expired partition that has no archive (and its rows).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TRACE_ID_DEFAULT = "replace(gen_random_uuid()::text, '-', '')"
SPAN_ID_DEFAULT = "substr(replace(gen_random_uuid()::text, '-', ''), 1, 16)"

_DEFAULTS = (
    ("telemetry_events", "event_id", "gen_random_uuid()"),
    ("telemetry_events", "event_timestamp", "now()"),
    ("system_metrics", "timestamp", "now()"),
    ("traces", "trace_id", TRACE_ID_DEFAULT),
    ("traces", "span_id", SPAN_ID_DEFAULT),
    ("traces", "start_time", "now()"),
)

# 0003's function plus: the cutoff of partitions is the longest of the argument and the license overrides of
# that kind (rows of licenses with a shorter override are the retention job's to delete), and while
# retention_settings.archive_before_drop is set an expired partition with no partition_archives row is kept
# whole (counted in partitions_kept) and the boundary delete does not reach into it.
CLEANUP_OLD_TELEMETRY_DATA = """
CREATE FUNCTION cleanup_old_telemetry_data(
    events_retention_days integer DEFAULT 90,
    metrics_retention_days integer DEFAULT 180,
    traces_retention_days integer DEFAULT 30,
    as_of timestamptz DEFAULT now()
)
RETURNS TABLE (table_name text, cutoff timestamptz, partitions_dropped integer, rows_dropped bigint, rows_deleted bigint,
               partitions_kept integer)
LANGUAGE plpgsql AS $$
DECLARE
    spec record;
    part record;
    counted bigint;
    not_rolled_up timestamptz;
    longest integer;
    must_archive boolean;
    delete_from timestamptz;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('fernando_telemetry.rollups', 0));
    SELECT coalesce(bool_or(r.archive_before_drop), false) INTO must_archive FROM retention_settings r;
    FOR spec IN
        SELECT * FROM (VALUES
            ('telemetry_events', 'event_timestamp', 'events', events_retention_days),
            ('system_metrics', 'timestamp', 'metrics', metrics_retention_days),
            ('traces', 'start_time', 'traces', traces_retention_days)
        ) AS s (tbl, time_column, kind, days)
    LOOP
        IF spec.days IS NULL OR spec.days < 1 THEN
            RAISE EXCEPTION 'cleanup_old_telemetry_data: retention of % must be at least 1 day, got %', spec.tbl, spec.days;
        END IF;
        PERFORM pg_advisory_xact_lock(hashtextextended('fernando_telemetry.partitions:' || spec.tbl, 0));
        SELECT greatest(spec.days, max(o.retention_days)) INTO longest
          FROM retention_overrides o WHERE o.data_kind = spec.kind;
        table_name := spec.tbl;
        cutoff := date_trunc('hour', as_of - make_interval(days => longest), 'UTC');
        EXECUTE format(
            'SELECT min(date_trunc(''hour'', %I, ''UTC'')) FROM %I WHERE created_at > '
            'coalesce((SELECT watermark FROM rollup_state WHERE source_table = %L), ''-infinity'')',
            spec.time_column, spec.tbl, spec.tbl) INTO not_rolled_up;
        SELECT least(not_rolled_up, min(d.bucket_start)) INTO not_rolled_up
          FROM rollup_dirty_buckets d WHERE d.source_table = spec.tbl;
        cutoff := least(cutoff, not_rolled_up);
        partitions_dropped := 0;
        partitions_kept := 0;
        rows_dropped := 0;
        delete_from := '-infinity';
        FOR part IN
            SELECT c.oid::regclass AS rel, c.relname::text AS partition_name,
                   (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \\(''([^'']+)''\\)'))[1]::timestamptz AS upper_bound
              FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = to_regclass(spec.tbl)
        LOOP
            CONTINUE WHEN part.upper_bound IS NULL OR part.upper_bound > cutoff;
            EXECUTE format('SELECT count(*) FROM %s', part.rel) INTO counted;
            IF must_archive AND counted > 0 AND NOT EXISTS (
                SELECT 1 FROM partition_archives a
                 WHERE a.table_name = spec.tbl AND a.partition_name = part.partition_name
            ) THEN
                partitions_kept := partitions_kept + 1;
                delete_from := greatest(delete_from, part.upper_bound);
                CONTINUE;
            END IF;
            EXECUTE format('DROP TABLE %s', part.rel);
            partitions_dropped := partitions_dropped + 1;
            rows_dropped := rows_dropped + counted;
        END LOOP;
        EXECUTE format('DELETE FROM %I WHERE %I < $1 AND %I >= $2', spec.tbl, spec.time_column, spec.time_column)
          USING cutoff, delete_from;
        GET DIAGNOSTICS rows_deleted = ROW_COUNT;
        IF partitions_kept = 0 THEN
            UPDATE rollup_state SET raw_horizon = greatest(raw_horizon, cutoff) WHERE source_table = spec.tbl;
        END IF;
        RETURN NEXT;
    END LOOP;
END
$$
"""

# As 0003 left it (the downgrade puts it back).
CLEANUP_OLD_TELEMETRY_DATA_0003 = """
CREATE FUNCTION cleanup_old_telemetry_data(
    events_retention_days integer DEFAULT 90,
    metrics_retention_days integer DEFAULT 180,
    traces_retention_days integer DEFAULT 30,
    as_of timestamptz DEFAULT now()
)
RETURNS TABLE (table_name text, cutoff timestamptz, partitions_dropped integer, rows_dropped bigint, rows_deleted bigint)
LANGUAGE plpgsql AS $$
DECLARE
    spec record;
    part record;
    counted bigint;
    not_rolled_up timestamptz;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('fernando_telemetry.rollups', 0));
    FOR spec IN
        SELECT * FROM (VALUES
            ('telemetry_events', 'event_timestamp', events_retention_days),
            ('system_metrics', 'timestamp', metrics_retention_days),
            ('traces', 'start_time', traces_retention_days)
        ) AS s (tbl, time_column, days)
    LOOP
        IF spec.days IS NULL OR spec.days < 1 THEN
            RAISE EXCEPTION 'cleanup_old_telemetry_data: retention of % must be at least 1 day, got %', spec.tbl, spec.days;
        END IF;
        PERFORM pg_advisory_xact_lock(hashtextextended('fernando_telemetry.partitions:' || spec.tbl, 0));
        table_name := spec.tbl;
        cutoff := date_trunc('hour', as_of - make_interval(days => spec.days), 'UTC');
        EXECUTE format(
            'SELECT min(date_trunc(''hour'', %I, ''UTC'')) FROM %I WHERE created_at > '
            'coalesce((SELECT watermark FROM rollup_state WHERE source_table = %L), ''-infinity'')',
            spec.time_column, spec.tbl, spec.tbl) INTO not_rolled_up;
        SELECT least(not_rolled_up, min(d.bucket_start)) INTO not_rolled_up
          FROM rollup_dirty_buckets d WHERE d.source_table = spec.tbl;
        cutoff := least(cutoff, not_rolled_up);
        partitions_dropped := 0;
        rows_dropped := 0;
        FOR part IN
            SELECT c.oid::regclass AS rel,
                   (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \\(''([^'']+)''\\)'))[1]::timestamptz AS upper_bound
              FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = to_regclass(spec.tbl)
        LOOP
            CONTINUE WHEN part.upper_bound IS NULL OR part.upper_bound > cutoff;
            EXECUTE format('SELECT count(*) FROM %s', part.rel) INTO counted;
            EXECUTE format('DROP TABLE %s', part.rel);
            partitions_dropped := partitions_dropped + 1;
            rows_dropped := rows_dropped + counted;
        END LOOP;
        EXECUTE format('DELETE FROM %I WHERE %I < $1', spec.tbl, spec.time_column) USING cutoff;
        GET DIAGNOSTICS rows_deleted = ROW_COUNT;
        UPDATE rollup_state SET raw_horizon = greatest(raw_horizon, cutoff) WHERE source_table = spec.tbl;
        RETURN NEXT;
    END LOOP;
END
$$
"""

_SIGNATURE = "cleanup_old_telemetry_data(integer, integer, integer, timestamptz)"


def upgrade() -> None:
    for table, column, default in _DEFAULTS:
        op.alter_column(table, column, server_default=sa.text(default))
    op.create_table(
        "retention_settings",
        sa.Column("settings_id", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("archive_before_drop", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("settings_id", name=op.f("ck_retention_settings_one_row")),
        sa.PrimaryKeyConstraint("settings_id", name=op.f("pk_retention_settings")),
    )
    op.execute(f"DROP FUNCTION {_SIGNATURE}")
    op.execute(CLEANUP_OLD_TELEMETRY_DATA)


def downgrade() -> None:
    op.execute(f"DROP FUNCTION {_SIGNATURE}")
    op.execute(CLEANUP_OLD_TELEMETRY_DATA_0003)
    op.drop_table("retention_settings")
    for table, column, _ in reversed(_DEFAULTS):
        op.alter_column(table, column, server_default=None)
