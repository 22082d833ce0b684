"""Rollups: hourly and daily tables with percentile sketches, refresh bookkeeping, BRIN on created_at,
the analytics views reading rollups plus the raw tail, retention that waits for the rollups.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SOURCES = ("telemetry_events", "system_metrics", "traces")

# The sketch of core/sketch.py in SQL, with its constants written out (a revision is frozen; a test checks
# they still agree with core): relative accuracy 0.0075, gamma = 1.0075 / 0.9925, ln(gamma), key offset
# 50000, exponents clamped to +-49999, magnitudes under 1e-300 counted as zero, NaN in the top bucket
# (PostgreSQL sorts NaN above every number), exp() arguments kept in [-708, 709] (PostgreSQL raises beyond).
SKETCH_FUNCTIONS = (
    """
CREATE FUNCTION rollup_sketch_key(x double precision) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT CASE
    WHEN x = 'NaN'::double precision THEN 99999
    WHEN abs(x) < CAST('1e-300' AS double precision) THEN 0
    WHEN x > 0 THEN 50000 + least(greatest(ceil(ln(x) / CAST('0.015000281259492598' AS double precision)), -49999), 49999)::integer
    ELSE -(50000 + least(greatest(ceil(ln(-x) / CAST('0.015000281259492598' AS double precision)), -49999), 49999)::integer)
END
$$
""",
    """
CREATE FUNCTION rollup_sketch_value(key integer) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT CASE
    WHEN key = 0 THEN 0::double precision
    WHEN key > 0 THEN 2.0::double precision * exp(greatest(least((key - 50000) * CAST('0.015000281259492598' AS double precision), 709.0::double precision), -708.0::double precision))
                      / (CAST('1.0151133501259446' AS double precision) + 1.0::double precision)
    ELSE -(2.0::double precision * exp(greatest(least((-key - 50000) * CAST('0.015000281259492598' AS double precision), 709.0::double precision), -708.0::double precision))
           / (CAST('1.0151133501259446' AS double precision) + 1.0::double precision))
END
$$
""",
    # Quantiles of one sketch (ascending keys, their counts) as percentile_cont defines them: rank
    # q * (n - 1), linear interpolation between the values at its floor and ceiling; the first and last
    # ranks are the exact lowest and highest, the others clamped to them. One walk for ascending fractions.
    """
CREATE FUNCTION rollup_sketch_quantiles(
    keys integer[], counts bigint[], fractions double precision[], lowest double precision, highest double precision
) RETURNS double precision[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    buckets integer := coalesce(array_length(keys, 1), 0);
    total bigint := 0;
    result double precision[] := '{}';
    fraction double precision;
    position double precision;
    wanted bigint;
    values_at double precision[];
    side integer;
    i integer := 1;
    seen bigint;
BEGIN
    FOR i IN 1 .. buckets LOOP
        total := total + counts[i];
    END LOOP;
    IF total = 0 THEN
        RETURN array_fill(NULL::double precision, ARRAY[coalesce(array_length(fractions, 1), 0)]);
    END IF;
    i := 1;
    seen := counts[1];
    FOREACH fraction IN ARRAY fractions LOOP
        position := fraction * (total - 1);
        values_at := '{}';
        FOR side IN 0 .. 1 LOOP
            wanted := CASE side WHEN 0 THEN floor(position) ELSE ceil(position) END;
            IF wanted = 0 THEN
                values_at := values_at || lowest;
            ELSIF wanted = total - 1 THEN
                values_at := values_at || highest;
            ELSE
                IF seen - counts[i] > wanted THEN  -- a smaller rank than the last one: walk again from the start
                    i := 1;
                    seen := counts[1];
                END IF;
                WHILE seen <= wanted LOOP
                    i := i + 1;
                    seen := seen + counts[i];
                END LOOP;
                values_at := values_at || least(greatest(rollup_sketch_value(keys[i]), lowest), highest);
            END IF;
        END LOOP;
        result := result || (values_at[1] + (values_at[2] - values_at[1]) * (position - floor(position)));
    END LOOP;
    RETURN result;
END
$$
""",
)
SKETCH_FUNCTION_SIGNATURES = (
    "rollup_sketch_quantiles(integer[], bigint[], double precision[], double precision, double precision)",
    "rollup_sketch_value(integer)",
    "rollup_sketch_key(double precision)",
)


# The tail of the views, as plpgsql functions: the planner costs a view at a few pending hours instead of
# every partition of the raw table (and does not JIT-compile a plan that reads a few thousand rows), and
# each function's query is planned with its actual hour or watermark (EXECUTE ... USING), so it reads one
# partition through its time index.
TAIL_FUNCTIONS = (
    # The hours of a raw table its rollups do not hold: marked dirty, or holding rows written after the
    # watermark (found through the BRIN index on created_at, planned with the watermark's value).
    """
CREATE FUNCTION rollup_pending_hours(source_table text) RETURNS SETOF timestamptz
LANGUAGE plpgsql STABLE PARALLEL SAFE ROWS 4 AS $$
DECLARE
    time_column text := CASE source_table
        WHEN 'telemetry_events' THEN 'event_timestamp' WHEN 'system_metrics' THEN 'timestamp' WHEN 'traces' THEN 'start_time' END;
    mark timestamptz;
BEGIN
    IF time_column IS NULL THEN
        RAISE EXCEPTION 'rollup_pending_hours: % has no rollups', source_table;
    END IF;
    SELECT s.watermark INTO mark FROM rollup_state s WHERE s.source_table = rollup_pending_hours.source_table;
    RETURN QUERY EXECUTE format(
        'SELECT d.bucket_start FROM rollup_dirty_buckets d WHERE d.source_table = $1 AND d.grain = ''hour'' '
        'UNION SELECT date_trunc(''hour'', raw.%I, ''UTC'') FROM %I raw WHERE raw.created_at > $2',
        time_column, source_table)
        USING source_table, coalesce(mark, '-infinity');
END
$$
""",
    # One hour of each view, aggregated from raw rows (a range on the partition column: one partition).
    """
CREATE FUNCTION telemetry_events_hour_summary(hour timestamptz)
RETURNS TABLE (event_type text, license_id bigint, events bigint, unique_users bigint, unique_sessions bigint,
               avg_duration_ms double precision, p95_duration_ms double precision, errors bigint)
LANGUAGE plpgsql STABLE PARALLEL SAFE ROWS 20
SET jit = off
AS $$
BEGIN
    -- EXECUTE: planned with the hour's value, so for its partition and time index only
    RETURN QUERY EXECUTE '
SELECT e.event_type::text, e.license_id, count(*), count(DISTINCT e.user_id), count(DISTINCT e.session_id), avg(e.duration_ms),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY e.duration_ms),
       count(*) FILTER (WHERE e.event_type = ''error_event'' OR e.payload ? ''error'')
  FROM telemetry_events e
 WHERE e.event_timestamp >= $1 AND e.event_timestamp < $1 + interval ''1 hour''
 GROUP BY e.event_type, e.license_id'
    USING hour;
END
$$
""",
    """
CREATE FUNCTION system_metrics_hour_summary(hour timestamptz)
RETURNS TABLE (service_name text, metric_name text, samples bigint, avg_value double precision, min_value double precision,
               max_value double precision, p50 double precision, p90 double precision, p95 double precision, p99 double precision)
LANGUAGE plpgsql STABLE PARALLEL SAFE ROWS 20
SET jit = off
AS $$
BEGIN
    -- EXECUTE: planned with the hour's value, so for its partition and time index only
    RETURN QUERY EXECUTE '
SELECT m.service_name::text, m.metric_name::text, count(*), avg(m.value), min(m.value), max(m.value),
       percentile_cont(0.50) WITHIN GROUP (ORDER BY m.value), percentile_cont(0.90) WITHIN GROUP (ORDER BY m.value),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY m.value), percentile_cont(0.99) WITHIN GROUP (ORDER BY m.value)
  FROM system_metrics m
 WHERE m."timestamp" >= $1 AND m."timestamp" < $1 + interval ''1 hour''
 GROUP BY m.service_name, m.metric_name'
    USING hour;
END
$$
""",
    """
CREATE FUNCTION traces_hour_summary(hour timestamptz)
RETURNS TABLE (service_name text, operation_name text, spans bigint, errors bigint, error_rate double precision,
               p50_duration_ms double precision, p95_duration_ms double precision, p99_duration_ms double precision)
LANGUAGE plpgsql STABLE PARALLEL SAFE ROWS 20
SET jit = off
AS $$
BEGIN
    -- EXECUTE: planned with the hour's value, so for its partition and time index only
    RETURN QUERY EXECUTE '
SELECT t.service_name::text, t.operation_name::text, count(*), count(*) FILTER (WHERE t.status = ''error''),
       (count(*) FILTER (WHERE t.status = ''error''))::double precision / count(*),
       percentile_cont(0.50) WITHIN GROUP (ORDER BY t.duration_ms), percentile_cont(0.95) WITHIN GROUP (ORDER BY t.duration_ms),
       percentile_cont(0.99) WITHIN GROUP (ORDER BY t.duration_ms)
  FROM traces t
 WHERE t.start_time >= $1 AND t.start_time < $1 + interval ''1 hour''
 GROUP BY t.service_name, t.operation_name'
    USING hour;
END
$$
""",
    # Arrays of several rows end to end (the sketches of one view row, merged by the view).
    """
CREATE AGGREGATE rollup_concat(anycompatiblearray) (SFUNC = array_cat, STYPE = anycompatiblearray, INITCOND = '{}')
""",
)
TAIL_FUNCTION_SIGNATURES = (
    "traces_hour_summary(timestamptz)",
    "system_metrics_hour_summary(timestamptz)",
    "telemetry_events_hour_summary(timestamptz)",
    "rollup_pending_hours(text)",
)

# Each view: the rolled-up hours from the hourly table, plus the pending hours aggregated from raw rows.
# A filter on hour reaches both branches: an index range on bucket_start, and the pending hours of the range.
VIEWS = (
    """
CREATE OR REPLACE VIEW telemetry_events_hourly_summary WITH (security_invoker = true) AS
WITH pending AS MATERIALIZED (SELECT p AS hour FROM rollup_pending_hours('telemetry_events') AS p)
SELECT r.bucket_start AS hour,
       r.event_type,
       r.license_id,
       r.events,
       r.unique_users,
       r.unique_sessions,
       r.duration_sum / NULLIF(r.duration_count, 0) AS avg_duration_ms,
       r.duration_p95 AS p95_duration_ms,
       r.errors
  FROM telemetry_events_hourly r
 WHERE NOT EXISTS (SELECT 1 FROM pending p WHERE p.hour = r.bucket_start)
UNION ALL
SELECT p.hour, raw.event_type::varchar(25), raw.license_id, raw.events, raw.unique_users, raw.unique_sessions,
       raw.avg_duration_ms, raw.p95_duration_ms, raw.errors
  FROM pending p
 CROSS JOIN LATERAL telemetry_events_hour_summary(p.hour) raw
""",
    """
CREATE OR REPLACE VIEW system_metrics_service_summary WITH (security_invoker = true) AS
WITH pending AS MATERIALIZED (SELECT p AS hour FROM rollup_pending_hours('system_metrics') AS p)
SELECT g.hour,
       g.service_name,
       g.metric_name,
       g.samples,
       g.avg_value,
       g.min_value,
       g.max_value,
       CASE WHEN g.parts = 1 THEN g.p50 ELSE m.merged[1] END AS p50,
       CASE WHEN g.parts = 1 THEN g.p90 ELSE m.merged[2] END AS p90,
       CASE WHEN g.parts = 1 THEN g.p95 ELSE m.merged[3] END AS p95,
       CASE WHEN g.parts = 1 THEN g.p99 ELSE m.merged[4] END AS p99
  FROM (SELECT r.bucket_start AS hour,
               r.service_name,
               r.metric_name,
               sum(r.samples)::bigint AS samples,
               sum(r.value_sum) / sum(r.samples)::double precision AS avg_value,
               min(r.value_min) AS min_value,
               max(r.value_max) AS max_value,
               count(*) AS parts,
               min(r.value_p50) AS p50,
               min(r.value_p90) AS p90,
               min(r.value_p95) AS p95,
               min(r.value_p99) AS p99,
               rollup_concat(r.value_sketch_keys) AS sketch_keys,
               rollup_concat(r.value_sketch_counts) AS sketch_counts
          FROM system_metrics_hourly r
         WHERE NOT EXISTS (SELECT 1 FROM pending p WHERE p.hour = r.bucket_start)
         GROUP BY r.bucket_start, r.service_name, r.metric_name
       ) g
 -- several hosts or licenses in one view row: their sketches' buckets in key order are the merged sketch (a key may
 -- repeat; the quantile walk adds up counts all the same). OFFSET 0: computed once per row.
 CROSS JOIN LATERAL (
       SELECT CASE WHEN g.parts > 1 THEN (
                  SELECT rollup_sketch_quantiles(array_agg(u.key ORDER BY u.key), array_agg(u.count ORDER BY u.key),
                                                 '{0.5,0.9,0.95,0.99}', g.min_value, g.max_value)
                    FROM unnest(g.sketch_keys, g.sketch_counts) AS u(key, count)
              ) END AS merged
       OFFSET 0
       ) m
UNION ALL
SELECT p.hour, raw.service_name::varchar(100), raw.metric_name::varchar(200), raw.samples, raw.avg_value, raw.min_value,
       raw.max_value, raw.p50, raw.p90, raw.p95, raw.p99
  FROM pending p
 CROSS JOIN LATERAL system_metrics_hour_summary(p.hour) raw
""",
    """
CREATE OR REPLACE VIEW traces_service_summary WITH (security_invoker = true) AS
WITH pending AS MATERIALIZED (SELECT p AS hour FROM rollup_pending_hours('traces') AS p)
SELECT g.hour,
       g.service_name,
       g.operation_name,
       g.spans,
       g.errors,
       g.errors::double precision / g.spans AS error_rate,
       CASE WHEN g.parts = 1 THEN g.p50 ELSE m.merged[1] END AS p50_duration_ms,
       CASE WHEN g.parts = 1 THEN g.p95 ELSE m.merged[2] END AS p95_duration_ms,
       CASE WHEN g.parts = 1 THEN g.p99 ELSE m.merged[3] END AS p99_duration_ms
  FROM (SELECT r.bucket_start AS hour,
               r.service_name,
               r.operation_name,
               sum(r.spans)::bigint AS spans,
               sum(r.errors)::bigint AS errors,
               count(*) AS parts,
               min(r.duration_p50) AS p50,
               min(r.duration_p95) AS p95,
               min(r.duration_p99) AS p99,
               min(r.duration_min) AS duration_min,
               max(r.duration_max) AS duration_max,
               rollup_concat(r.duration_sketch_keys) AS sketch_keys,
               rollup_concat(r.duration_sketch_counts) AS sketch_counts
          FROM traces_hourly r
         WHERE NOT EXISTS (SELECT 1 FROM pending p WHERE p.hour = r.bucket_start)
         GROUP BY r.bucket_start, r.service_name, r.operation_name
       ) g
 -- several licenses in one view row: their sketches' buckets in key order are the merged sketch (OFFSET 0: once per row)
 CROSS JOIN LATERAL (
       SELECT CASE WHEN g.parts > 1 THEN (
                  SELECT rollup_sketch_quantiles(array_agg(u.key ORDER BY u.key), array_agg(u.count ORDER BY u.key),
                                                 '{0.5,0.95,0.99}', g.duration_min, g.duration_max)
                    FROM unnest(g.sketch_keys, g.sketch_counts) AS u(key, count)
              ) END AS merged
       OFFSET 0
       ) m
UNION ALL
SELECT p.hour, raw.service_name::varchar(100), raw.operation_name::varchar(255), raw.spans, raw.errors, raw.error_rate,
       raw.p50_duration_ms, raw.p95_duration_ms, raw.p99_duration_ms
  FROM pending p
 CROSS JOIN LATERAL traces_hour_summary(p.hour) raw
""",
)


# Revision 0001's definitions, restored by the downgrade.
VIEWS_0001 = (
    """
CREATE OR REPLACE VIEW telemetry_events_hourly_summary WITH (security_invoker = true) AS
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
CREATE OR REPLACE VIEW system_metrics_service_summary WITH (security_invoker = true) AS
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
CREATE OR REPLACE VIEW traces_service_summary WITH (security_invoker = true) AS
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

# Retention as in 0001, with two changes: each cutoff is truncated to its UTC hour (raw hours are never
# left half deleted) and capped at the oldest hour or day the rollups do not hold yet (pending hours, dirty
# days), so raw rows are never removed before they are rolled up. It records the cutoff as the table's
# raw horizon, and takes the rollup lock, so a refresh never reads a partition while it is dropped.
CLEANUP_OLD_TELEMETRY_DATA = """
CREATE OR REPLACE FUNCTION cleanup_old_telemetry_data(
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

CLEANUP_OLD_TELEMETRY_DATA_0001 = """
CREATE OR REPLACE FUNCTION cleanup_old_telemetry_data(
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

# Rollup retention: hourly rows older than N days, daily rows older than M days. Hourly rows are kept while
# their raw hours are (the raw horizon) and while their day still has to be rolled up into the daily table.
CLEANUP_OLD_ROLLUPS = """
CREATE FUNCTION cleanup_old_rollups(
    hourly_retention_days integer DEFAULT 400,
    daily_retention_days integer DEFAULT 1825,
    as_of timestamptz DEFAULT now()
)
RETURNS TABLE (table_name text, cutoff timestamptz, rows_deleted bigint)
LANGUAGE plpgsql AS $$
DECLARE
    spec record;
    hourly_cutoff timestamptz;
BEGIN
    IF hourly_retention_days IS NULL OR hourly_retention_days < 1 OR daily_retention_days IS NULL OR daily_retention_days < 1 THEN
        RAISE EXCEPTION 'cleanup_old_rollups: retention must be at least 1 day, got % (hourly) and % (daily)',
            hourly_retention_days, daily_retention_days;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended('fernando_telemetry.rollups', 0));
    FOR spec IN
        SELECT s.source_table, s.raw_horizon FROM rollup_state s ORDER BY s.source_table
    LOOP
        SELECT least(date_trunc('hour', as_of - make_interval(days => hourly_retention_days), 'UTC'), spec.raw_horizon,
                     min(d.bucket_start))
          INTO hourly_cutoff
          FROM rollup_dirty_buckets d WHERE d.source_table = spec.source_table;
        table_name := spec.source_table || '_hourly';
        cutoff := hourly_cutoff;
        EXECUTE format('DELETE FROM %I WHERE bucket_start < $1', table_name) USING cutoff;
        GET DIAGNOSTICS rows_deleted = ROW_COUNT;
        RETURN NEXT;
        table_name := spec.source_table || '_daily';
        cutoff := least(date_trunc('day', as_of - make_interval(days => daily_retention_days), 'UTC'), hourly_cutoff);
        EXECUTE format('DELETE FROM %I WHERE bucket_start < $1', table_name) USING cutoff;
        GET DIAGNOSTICS rows_deleted = ROW_COUNT;
        RETURN NEXT;
    END LOOP;
END
$$
"""


def _sketch_columns(prefix: str) -> list[sa.Column]:
    return [
        sa.Column(f"{prefix}_sketch_keys", postgresql.ARRAY(sa.Integer()), server_default=sa.text("'{}'::integer[]"), nullable=False),
        sa.Column(f"{prefix}_sketch_counts", postgresql.ARRAY(sa.BigInteger()), server_default=sa.text("'{}'::bigint[]"), nullable=False),
    ]


def _license_column(table: str) -> list[sa.Column | sa.ForeignKeyConstraint]:
    return [
        sa.Column("license_id", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["license_id"], ["licenses.license_id"], name=op.f(f"fk_{table}_license_id_licenses"), ondelete="CASCADE"
        ),
    ]


def _create_event_rollup(table: str) -> None:
    op.create_table(
        table,
        sa.Column("bucket_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_type", sa.String(length=25), nullable=False),
        *_license_column(table),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.Column("unique_users", sa.BigInteger(), nullable=False),
        sa.Column("unique_sessions", sa.BigInteger(), nullable=False),
        sa.Column("errors", sa.BigInteger(), nullable=False),
        sa.Column("duration_count", sa.BigInteger(), nullable=False),
        *[sa.Column(f"duration_{name}", sa.Double(), nullable=True) for name in ("sum", "min", "max", "p50", "p90", "p95", "p99")],
        *_sketch_columns("duration"),
        sa.UniqueConstraint(
            "bucket_start", "event_type", "license_id", name=f"uq_{table}_grain", postgresql_nulls_not_distinct=True
        ),
    )


def _create_metric_rollup(table: str) -> None:
    op.create_table(
        table,
        sa.Column("bucket_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("service_name", sa.String(length=100), nullable=True),
        sa.Column("metric_name", sa.String(length=200), nullable=False),
        sa.Column("host_name", sa.String(length=255), nullable=True),
        *_license_column(table),
        sa.Column("samples", sa.BigInteger(), nullable=False),
        sa.Column("value_sum", sa.Double(), nullable=False),
        sa.Column("observations", sa.BigInteger(), nullable=False),
        sa.Column("weighted_sum", sa.Double(), nullable=False),
        *[sa.Column(f"value_{name}", sa.Double(), nullable=False) for name in ("min", "max", "p50", "p90", "p95", "p99")],
        *_sketch_columns("value"),
        sa.UniqueConstraint(
            "bucket_start", "service_name", "metric_name", "host_name", "license_id",
            name=f"uq_{table}_grain", postgresql_nulls_not_distinct=True,
        ),
    )
    op.create_index(f"ix_{table}_metric_name_bucket_start", table, ["metric_name", "bucket_start"], unique=False)


def _create_span_rollup(table: str) -> None:
    op.create_table(
        table,
        sa.Column("bucket_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("service_name", sa.String(length=100), nullable=False),
        sa.Column("operation_name", sa.String(length=255), nullable=False),
        *_license_column(table),
        sa.Column("spans", sa.BigInteger(), nullable=False),
        sa.Column("errors", sa.BigInteger(), nullable=False),
        *[sa.Column(f"duration_{name}", sa.Double(), nullable=False) for name in ("sum", "min", "max", "p50", "p90", "p95", "p99")],
        *_sketch_columns("duration"),
        sa.UniqueConstraint(
            "bucket_start", "service_name", "operation_name", "license_id",
            name=f"uq_{table}_grain", postgresql_nulls_not_distinct=True,
        ),
    )


def upgrade() -> None:
    for table in SOURCES:
        op.create_index(
            f"ix_{table}_created_at_brin", table, ["created_at"], unique=False,
            postgresql_using="brin", postgresql_with={"pages_per_range": "16", "autosummarize": "on"},
        )
    op.create_table(
        "rollup_state",
        sa.Column("source_table", sa.String(length=64), nullable=False),
        sa.Column("watermark", sa.DateTime(timezone=True), server_default=sa.text("'-infinity'::timestamptz"), nullable=False),
        sa.Column("raw_horizon", sa.DateTime(timezone=True), server_default=sa.text("'-infinity'::timestamptz"), nullable=False),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("source_table", name=op.f("pk_rollup_state")),
    )
    op.create_table(
        "rollup_dirty_buckets",
        sa.Column("source_table", sa.String(length=64), nullable=False),
        sa.Column("grain", sa.String(length=8), nullable=False),
        sa.Column("bucket_start", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("grain IN ('hour', 'day')", name=op.f("ck_rollup_dirty_buckets_grain")),
        sa.ForeignKeyConstraint(
            ["source_table"], ["rollup_state.source_table"],
            name=op.f("fk_rollup_dirty_buckets_source_table_rollup_state"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("source_table", "grain", "bucket_start", name=op.f("pk_rollup_dirty_buckets")),
    )
    op.execute("INSERT INTO rollup_state (source_table) VALUES " + ", ".join(f"('{table}')" for table in SOURCES))
    for grain in ("hourly", "daily"):
        _create_event_rollup(f"telemetry_events_{grain}")
        _create_metric_rollup(f"system_metrics_{grain}")
        _create_span_rollup(f"traces_{grain}")
    for statement in (*SKETCH_FUNCTIONS, *TAIL_FUNCTIONS):
        op.execute(statement)
    for statement in VIEWS:
        op.execute(statement)
    op.execute(CLEANUP_OLD_TELEMETRY_DATA)
    op.execute(CLEANUP_OLD_ROLLUPS)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS cleanup_old_rollups(integer, integer, timestamptz)")
    op.execute(CLEANUP_OLD_TELEMETRY_DATA_0001)
    for statement in VIEWS_0001:
        op.execute(statement)
    for signature in TAIL_FUNCTION_SIGNATURES:
        op.execute(f"DROP FUNCTION IF EXISTS {signature}")
    op.execute("DROP AGGREGATE IF EXISTS rollup_concat(anycompatiblearray)")
    for signature in SKETCH_FUNCTION_SIGNATURES:
        op.execute(f"DROP FUNCTION IF EXISTS {signature}")
    for grain in ("daily", "hourly"):
        op.drop_table(f"traces_{grain}")
        op.drop_index(f"ix_system_metrics_{grain}_metric_name_bucket_start", table_name=f"system_metrics_{grain}")
        op.drop_table(f"system_metrics_{grain}")
        op.drop_table(f"telemetry_events_{grain}")
    op.drop_table("rollup_dirty_buckets")
    op.drop_table("rollup_state")
    for table in SOURCES:
        op.drop_index(f"ix_{table}_created_at_brin", table_name=table, postgresql_using="brin")
