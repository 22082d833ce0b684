"""Initial schema: platform tables, partitioned telemetry tables, upkeep and retention functions, views.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Creates the daily partitions of one partitioned table for [first_day, last_day], skipping those that
# exist. Each is created standalone and then attached: ATTACH takes only SHARE UPDATE EXCLUSIVE on the
# parent, so writers and readers keep going. A transaction-scoped advisory lock per parent serialises
# concurrent upkeep (and retention), which makes the function idempotent under concurrency.
ENSURE_DAILY_PARTITIONS = """
CREATE FUNCTION ensure_daily_partitions(p_parent regclass, p_first_day date, p_last_day date)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    parent_schema text;
    parent_name text;
    partition_name text;
    day date;
    created integer := 0;
BEGIN
    IF p_first_day IS NULL OR p_last_day IS NULL OR p_last_day < p_first_day THEN
        RAISE EXCEPTION 'ensure_daily_partitions: first day % must not be after last day %', p_first_day, p_last_day;
    END IF;
    IF p_last_day - p_first_day > 3660 THEN
        RAISE EXCEPTION 'ensure_daily_partitions: % days requested, at most 3660 at a time', p_last_day - p_first_day + 1;
    END IF;
    SELECT n.nspname, c.relname INTO parent_schema, parent_name
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = p_parent AND c.relkind = 'p';
    IF parent_name IS NULL THEN
        RAISE EXCEPTION 'ensure_daily_partitions: % is not a partitioned table', p_parent;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended('fernando_telemetry.partitions:' || parent_name, 0));
    FOR day IN SELECT d::date FROM generate_series(p_first_day, p_last_day, interval '1 day') AS d LOOP
        partition_name := parent_name || '_p' || to_char(day, 'YYYYMMDD');
        CONTINUE WHEN to_regclass(format('%I.%I', parent_schema, partition_name)) IS NOT NULL;
        EXECUTE format(
            'CREATE TABLE %I.%I (LIKE %I.%I INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMPRESSION)',
            parent_schema, partition_name, parent_schema, parent_name);
        EXECUTE format(
            'ALTER TABLE %I.%I ATTACH PARTITION %I.%I FOR VALUES FROM (%L) TO (%L)',
            parent_schema, parent_name, parent_schema, partition_name,
            day::timestamp AT TIME ZONE 'UTC', (day + 1)::timestamp AT TIME ZONE 'UTC');
        created := created + 1;
    END LOOP;
    RETURN created;
END
$$
"""

# Drops whole daily partitions that end at or before the cutoff and deletes the older rows of the
# boundary partition only; returns one row per table with what it removed.
CLEANUP_OLD_TELEMETRY_DATA = """
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
BEGIN
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
        cutoff := as_of - make_interval(days => spec.days);
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
        RETURN NEXT;
    END LOOP;
END
$$
"""

VIEW_NAMES = (
    "telemetry_events_hourly_summary",
    "system_metrics_service_summary",
    "business_metrics_kpi_summary",
    "traces_service_summary",
)

# security_invoker: a view reads with the caller's rights, so row-level security on the base tables
# applies through it.
VIEWS = (
    """
CREATE VIEW telemetry_events_hourly_summary WITH (security_invoker = true) AS
SELECT date_trunc('hour', event_timestamp, 'UTC') AS hour,
       event_type,
       license_id,
       count(*) AS events,
       count(DISTINCT user_id) AS unique_users,
       count(DISTINCT session_id) AS unique_sessions,
       avg(duration_ms) AS avg_duration_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) AS p95_duration_ms,
       count(*) FILTER (WHERE event_type = 'error_event' OR payload ? 'error') AS errors
  FROM telemetry_events
 GROUP BY 1, 2, 3
""",
    """
CREATE VIEW system_metrics_service_summary WITH (security_invoker = true) AS
SELECT date_trunc('hour', "timestamp", 'UTC') AS hour,
       service_name,
       metric_name,
       count(*) AS samples,
       avg(value) AS avg_value,
       min(value) AS min_value,
       max(value) AS max_value,
       percentile_cont(0.50) WITHIN GROUP (ORDER BY value) AS p50,
       percentile_cont(0.90) WITHIN GROUP (ORDER BY value) AS p90,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY value) AS p95,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY value) AS p99
  FROM system_metrics
 GROUP BY 1, 2, 3
""",
    """
CREATE VIEW business_metrics_kpi_summary WITH (security_invoker = true) AS
SELECT metric_name,
       metric_category,
       period_type,
       license_id,
       dimensions,
       currency,
       period_start,
       period_end,
       metric_value,
       previous_value,
       metric_value - previous_value AS change,
       CASE WHEN previous_value IS NULL OR previous_value = 0 THEN NULL
            ELSE round((metric_value - previous_value) / abs(previous_value) * 100, 2)
       END AS change_pct,
       target_value,
       computed_at
  FROM (
        SELECT bm.metric_name, bm.metric_category, bm.period_type, bm.license_id, bm.dimensions, bm.currency,
               bm.period_start, bm.period_end, bm.metric_value, bm.target_value, bm.computed_at,
               COALESCE(lag(bm.metric_value) OVER kpi, bm.previous_value) AS previous_value,
               row_number() OVER kpi_newest_first AS newest_rank
          FROM business_metrics bm
        WINDOW kpi AS (PARTITION BY bm.metric_name, bm.period_type, bm.license_id, bm.dimensions ORDER BY bm.period_start),
               kpi_newest_first AS (PARTITION BY bm.metric_name, bm.period_type, bm.license_id, bm.dimensions
                                    ORDER BY bm.period_start DESC)
       ) ranked
 WHERE newest_rank = 1
""",
    """
CREATE VIEW traces_service_summary WITH (security_invoker = true) AS
SELECT date_trunc('hour', start_time, 'UTC') AS hour,
       service_name,
       operation_name,
       count(*) AS spans,
       count(*) FILTER (WHERE status = 'error') AS errors,
       (count(*) FILTER (WHERE status = 'error'))::double precision / count(*) AS error_rate,
       percentile_cont(0.50) WITHIN GROUP (ORDER BY duration_ms) AS p50_duration_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) AS p95_duration_ms,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY duration_ms) AS p99_duration_ms
  FROM traces
 GROUP BY 1, 2, 3
""",
)


def upgrade() -> None:
    op.execute("CREATE SEQUENCE system_metrics_metric_id_seq")
    op.create_table('licenses',
    sa.Column('license_id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('plan', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=32), server_default=sa.text("'active'"), nullable=False),
    sa.Column('max_users', sa.Integer(), nullable=True),
    sa.Column('valid_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attributes', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('license_id', name=op.f('pk_licenses'))
    )
    op.create_table('api_keys',
    sa.Column('api_key_id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('key_prefix', sa.String(length=16), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('license_id', sa.BigInteger(), nullable=True),
    sa.Column('scopes', postgresql.ARRAY(sa.String(length=32)), server_default=sa.text("'{}'::varchar[]"), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['license_id'], ['licenses.license_id'], name=op.f('fk_api_keys_license_id_licenses'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('api_key_id', name=op.f('pk_api_keys')),
    sa.UniqueConstraint('key_hash', name=op.f('uq_api_keys_key_hash'))
    )
    op.create_index(op.f('ix_api_keys_license_id'), 'api_keys', ['license_id'], unique=False)
    op.create_table('business_metrics',
    sa.Column('business_metric_id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('metric_name', sa.String(length=200), nullable=False),
    sa.Column('metric_category', sa.Enum('revenue', 'user_engagement', 'retention', 'acquisition', 'conversion', 'usage', 'performance', 'cost', 'other', name='metric_category', native_enum=False, create_constraint=True, length=23), nullable=False),
    sa.Column('metric_value', sa.Numeric(precision=24, scale=6), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=True),
    sa.Column('period_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('period_end', sa.DateTime(timezone=True), nullable=False),
    sa.Column('period_type', sa.Enum('hourly', 'daily', 'weekly', 'monthly', name='period_type', native_enum=False, create_constraint=True, length=15), nullable=False),
    sa.Column('license_id', sa.BigInteger(), nullable=True),
    sa.Column('dimensions', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('target_value', sa.Numeric(precision=24, scale=6), nullable=True),
    sa.Column('previous_value', sa.Numeric(precision=24, scale=6), nullable=True),
    sa.Column('source', sa.String(length=64), server_default=sa.text("'api'"), nullable=False),
    sa.Column('computed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['license_id'], ['licenses.license_id'], name=op.f('fk_business_metrics_license_id_licenses')),
    sa.PrimaryKeyConstraint('business_metric_id', name=op.f('pk_business_metrics')),
    sa.UniqueConstraint('metric_name', 'period_type', 'period_start', 'license_id', 'dimensions', name='uq_business_metrics_natural_key', postgresql_nulls_not_distinct=True)
    )
    op.create_index(op.f('ix_business_metrics_license_id'), 'business_metrics', ['license_id'], unique=False)
    op.create_table('users',
    sa.Column('user_id', sa.String(length=128), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('display_name', sa.String(length=200), nullable=True),
    sa.Column('license_id', sa.BigInteger(), nullable=True),
    sa.Column('is_active', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('attributes', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['license_id'], ['licenses.license_id'], name=op.f('fk_users_license_id_licenses')),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_users'))
    )
    op.create_index(op.f('ix_users_license_id'), 'users', ['license_id'], unique=False)
    op.create_index('ix_users_lower_email', 'users', [sa.literal_column('lower(email)')], unique=False)
    op.create_table('alert_rules',
    sa.Column('rule_id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('condition_config', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('severity', sa.Enum('info', 'warning', 'error', 'critical', name='severity', native_enum=False, create_constraint=True, length=16), server_default=sa.text("'warning'"), nullable=False),
    sa.Column('notification_channels', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False),
    sa.Column('evaluation_window_minutes', sa.Integer(), server_default=sa.text('5'), nullable=False),
    sa.Column('evaluation_interval_seconds', sa.Integer(), server_default=sa.text('60'), nullable=False),
    sa.Column('pending_period_minutes', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('enabled', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('owner_user_id', sa.String(length=128), nullable=True),
    sa.Column('license_id', sa.BigInteger(), nullable=True),
    sa.Column('labels', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('annotations', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('last_evaluated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_triggered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_evaluation_status', sa.String(length=32), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('version', sa.Integer(), server_default=sa.text('1'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['license_id'], ['licenses.license_id'], name=op.f('fk_alert_rules_license_id_licenses')),
    sa.ForeignKeyConstraint(['owner_user_id'], ['users.user_id'], name=op.f('fk_alert_rules_owner_user_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('rule_id', name=op.f('pk_alert_rules')),
    sa.UniqueConstraint('license_id', 'name', name='uq_alert_rules_license_id_name', postgresql_nulls_not_distinct=True)
    )
    op.create_index('ix_alert_rules_enabled_last_evaluated_at', 'alert_rules', [sa.literal_column('last_evaluated_at NULLS FIRST')], unique=False, postgresql_where=sa.text('enabled'))
    op.create_table('system_metrics',
    sa.Column('metric_id', sa.BigInteger(), server_default=sa.text("nextval('system_metrics_metric_id_seq')"), nullable=False),
    sa.Column('metric_name', sa.String(length=200), nullable=False),
    sa.Column('metric_type', sa.Enum('counter', 'gauge', 'histogram', 'timer', 'distribution', name='metric_type', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('value', sa.Double(), nullable=False),
    sa.Column('unit', sa.String(length=32), nullable=True),
    sa.Column('service_name', sa.String(length=100), nullable=True),
    sa.Column('host_name', sa.String(length=255), nullable=True),
    sa.Column('instance_id', sa.String(length=255), nullable=True),
    sa.Column('labels', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('sample_count', sa.Integer(), server_default=sa.text('1'), nullable=False),
    sa.Column('p50', sa.Double(), nullable=True),
    sa.Column('p90', sa.Double(), nullable=True),
    sa.Column('p95', sa.Double(), nullable=True),
    sa.Column('p99', sa.Double(), nullable=True),
    sa.Column('user_id', sa.String(length=128), nullable=True),
    sa.Column('license_id', sa.BigInteger(), nullable=True),
    sa.Column('timestamp', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['license_id'], ['licenses.license_id'], name=op.f('fk_system_metrics_license_id_licenses')),
    sa.ForeignKeyConstraint(['user_id'], ['users.user_id'], name=op.f('fk_system_metrics_user_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('metric_id', 'timestamp', name=op.f('pk_system_metrics')),
    postgresql_partition_by='RANGE (timestamp)'
    )
    op.create_index('ix_system_metrics_labels_gin', 'system_metrics', ['labels'], unique=False, postgresql_using='gin', postgresql_ops={'labels': 'jsonb_path_ops'})
    op.create_index('ix_system_metrics_service_name_metric_name_timestamp', 'system_metrics', ['service_name', 'metric_name', 'timestamp'], unique=False)
    op.create_index('ix_system_metrics_timestamp_brin', 'system_metrics', ['timestamp'], unique=False, postgresql_using='brin')
    op.create_table('telemetry_events',
    sa.Column('event_id', sa.UUID(), nullable=False),
    sa.Column('event_type', sa.Enum('user_action', 'system_event', 'api_event', 'error_event', 'performance_event', 'security_event', 'business_event', name='event_type', native_enum=False, create_constraint=True, length=25), nullable=False),
    sa.Column('event_name', sa.String(length=200), nullable=False),
    sa.Column('category', sa.String(length=100), nullable=True),
    sa.Column('source', sa.Enum('web', 'api', 'mobile', 'desktop', 'batch_job', 'scheduler', 'webhook', 'sdk', 'otlp', 'system', name='source', native_enum=False, create_constraint=True, length=17), server_default=sa.text("'api'"), nullable=False),
    sa.Column('user_id', sa.String(length=128), nullable=True),
    sa.Column('license_id', sa.BigInteger(), nullable=True),
    sa.Column('session_id', sa.String(length=128), nullable=True),
    sa.Column('payload', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('duration_ms', sa.Double(), nullable=True),
    sa.Column('ip_address', postgresql.INET(), nullable=True),
    sa.Column('user_agent', sa.String(length=1024), nullable=True),
    sa.Column('trace_id', sa.String(length=32), nullable=True),
    sa.Column('span_id', sa.String(length=16), nullable=True),
    sa.Column('environment', sa.String(length=32), nullable=True),
    sa.Column('app_version', sa.String(length=64), nullable=True),
    sa.Column('event_timestamp', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['license_id'], ['licenses.license_id'], name=op.f('fk_telemetry_events_license_id_licenses')),
    sa.ForeignKeyConstraint(['user_id'], ['users.user_id'], name=op.f('fk_telemetry_events_user_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('event_id', 'event_timestamp', name=op.f('pk_telemetry_events')),
    postgresql_partition_by='RANGE (event_timestamp)'
    )
    op.create_index('ix_telemetry_events_event_timestamp_brin', 'telemetry_events', ['event_timestamp'], unique=False, postgresql_using='brin')
    op.create_index('ix_telemetry_events_event_type_event_timestamp', 'telemetry_events', ['event_type', 'event_timestamp'], unique=False)
    op.create_index('ix_telemetry_events_payload_gin', 'telemetry_events', ['payload'], unique=False, postgresql_using='gin', postgresql_ops={'payload': 'jsonb_path_ops'})
    op.create_index('ix_telemetry_events_user_id_event_timestamp', 'telemetry_events', ['user_id', 'event_timestamp'], unique=False, postgresql_where=sa.text('user_id IS NOT NULL'))
    op.create_table('traces',
    sa.Column('trace_id', sa.String(length=32), nullable=False),
    sa.Column('span_id', sa.String(length=16), nullable=False),
    sa.Column('parent_span_id', sa.String(length=16), nullable=True),
    sa.Column('operation_name', sa.String(length=255), nullable=False),
    sa.Column('service_name', sa.String(length=100), nullable=False),
    sa.Column('span_kind', sa.Enum('unspecified', 'internal', 'server', 'client', 'producer', 'consumer', name='span_kind', native_enum=False, create_constraint=True, length=19), server_default=sa.text("'internal'"), nullable=False),
    sa.Column('start_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('end_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('duration_ms', sa.Double(), nullable=False),
    sa.Column('status', sa.Enum('unset', 'ok', 'error', name='status', native_enum=False, create_constraint=True, length=13), server_default=sa.text("'unset'"), nullable=False),
    sa.Column('status_message', sa.Text(), nullable=True),
    sa.Column('status_code', sa.SmallInteger(), nullable=True),
    sa.Column('http_method', sa.String(length=16), nullable=True),
    sa.Column('http_route', sa.String(length=255), nullable=True),
    sa.Column('error_type', sa.String(length=255), nullable=True),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.Column('host_name', sa.String(length=255), nullable=True),
    sa.Column('user_id', sa.String(length=128), nullable=True),
    sa.Column('license_id', sa.BigInteger(), nullable=True),
    sa.Column('attributes', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('span_events', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False),
    sa.Column('resource', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('environment', sa.String(length=32), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['license_id'], ['licenses.license_id'], name=op.f('fk_traces_license_id_licenses')),
    sa.ForeignKeyConstraint(['user_id'], ['users.user_id'], name=op.f('fk_traces_user_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('span_id', 'trace_id', 'start_time', name=op.f('pk_traces')),
    postgresql_partition_by='RANGE (start_time)'
    )
    op.create_index('ix_traces_attributes_gin', 'traces', ['attributes'], unique=False, postgresql_using='gin', postgresql_ops={'attributes': 'jsonb_path_ops'})
    op.create_index('ix_traces_service_name_operation_name_start_time', 'traces', ['service_name', 'operation_name', 'start_time'], unique=False)
    op.create_index('ix_traces_trace_id_hash', 'traces', ['trace_id'], unique=False, postgresql_using='hash')
    op.create_table('alerts',
    sa.Column('alert_id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('rule_id', sa.BigInteger(), nullable=True),
    sa.Column('status', sa.Enum('active', 'acknowledged', 'resolved', 'suppressed', name='status', native_enum=False, create_constraint=True, length=20), server_default=sa.text("'active'"), nullable=False),
    sa.Column('severity', sa.Enum('info', 'warning', 'error', 'critical', name='severity', native_enum=False, create_constraint=True, length=16), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('group_key', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('observed_value', sa.Double(), nullable=True),
    sa.Column('threshold_value', sa.Double(), nullable=True),
    sa.Column('triggered_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('acknowledged_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('acknowledged_by', sa.String(length=128), nullable=True),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolved_by', sa.String(length=128), nullable=True),
    sa.Column('assigned_to', sa.String(length=128), nullable=True),
    sa.Column('resolution_notes', sa.Text(), nullable=True),
    sa.Column('affected_service', sa.String(length=100), nullable=True),
    sa.Column('error_count', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('notification_status', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('license_id', sa.BigInteger(), nullable=True),
    sa.Column('labels', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['acknowledged_by'], ['users.user_id'], name=op.f('fk_alerts_acknowledged_by_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['assigned_to'], ['users.user_id'], name=op.f('fk_alerts_assigned_to_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['license_id'], ['licenses.license_id'], name=op.f('fk_alerts_license_id_licenses')),
    sa.ForeignKeyConstraint(['resolved_by'], ['users.user_id'], name=op.f('fk_alerts_resolved_by_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['rule_id'], ['alert_rules.rule_id'], name=op.f('fk_alerts_rule_id_alert_rules'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('alert_id', name=op.f('pk_alerts'))
    )
    op.create_index('ix_alerts_triggered_at_active', 'alerts', [sa.literal_column('triggered_at DESC')], unique=False, postgresql_where=sa.text("status IN ('active', 'acknowledged')"))
    op.create_index('uq_alerts_rule_id_fingerprint_open', 'alerts', ['rule_id', 'fingerprint'], unique=True, postgresql_where=sa.text("status <> 'resolved'"))
    op.execute("ALTER SEQUENCE system_metrics_metric_id_seq OWNED BY system_metrics.metric_id")
    op.execute(ENSURE_DAILY_PARTITIONS)
    op.execute(CLEANUP_OLD_TELEMETRY_DATA)
    for statement in VIEWS:
        op.execute(statement)


def downgrade() -> None:
    for view in reversed(VIEW_NAMES):
        op.execute(f"DROP VIEW IF EXISTS {view}")
    op.execute("DROP FUNCTION IF EXISTS cleanup_old_telemetry_data(integer, integer, integer, timestamptz)")
    op.execute("DROP FUNCTION IF EXISTS ensure_daily_partitions(regclass, date, date)")
    op.drop_index('uq_alerts_rule_id_fingerprint_open', table_name='alerts', postgresql_where=sa.text("status <> 'resolved'"))
    op.drop_index('ix_alerts_triggered_at_active', table_name='alerts', postgresql_where=sa.text("status IN ('active', 'acknowledged')"))
    op.drop_table('alerts')
    op.drop_index('ix_traces_trace_id_hash', table_name='traces', postgresql_using='hash')
    op.drop_index('ix_traces_service_name_operation_name_start_time', table_name='traces')
    op.drop_index('ix_traces_attributes_gin', table_name='traces', postgresql_using='gin', postgresql_ops={'attributes': 'jsonb_path_ops'})
    op.drop_table('traces')
    op.drop_index('ix_telemetry_events_user_id_event_timestamp', table_name='telemetry_events', postgresql_where=sa.text('user_id IS NOT NULL'))
    op.drop_index('ix_telemetry_events_payload_gin', table_name='telemetry_events', postgresql_using='gin', postgresql_ops={'payload': 'jsonb_path_ops'})
    op.drop_index('ix_telemetry_events_event_type_event_timestamp', table_name='telemetry_events')
    op.drop_index('ix_telemetry_events_event_timestamp_brin', table_name='telemetry_events', postgresql_using='brin')
    op.drop_table('telemetry_events')
    op.drop_index('ix_system_metrics_timestamp_brin', table_name='system_metrics', postgresql_using='brin')
    op.drop_index('ix_system_metrics_service_name_metric_name_timestamp', table_name='system_metrics')
    op.drop_index('ix_system_metrics_labels_gin', table_name='system_metrics', postgresql_using='gin', postgresql_ops={'labels': 'jsonb_path_ops'})
    op.drop_table('system_metrics')
    op.drop_index('ix_alert_rules_enabled_last_evaluated_at', table_name='alert_rules', postgresql_where=sa.text('enabled'))
    op.drop_table('alert_rules')
    op.drop_index('ix_users_lower_email', table_name='users')
    op.drop_index(op.f('ix_users_license_id'), table_name='users')
    op.drop_table('users')
    op.drop_index(op.f('ix_business_metrics_license_id'), table_name='business_metrics')
    op.drop_table('business_metrics')
    op.drop_index(op.f('ix_api_keys_license_id'), table_name='api_keys')
    op.drop_table('api_keys')
    op.drop_table('licenses')
    op.execute("DROP SEQUENCE IF EXISTS system_metrics_metric_id_seq")
