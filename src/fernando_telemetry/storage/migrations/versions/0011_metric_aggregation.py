"""Metric aggregation from increments and merged distributions: the service summary view weighs by
observations and takes percentiles of the rows' sketches; metric rollups may hold hours without observation.

``system_metrics_service_summary`` keeps its columns (``avg_value`` now the mean of the observations, not of
the rows; percentiles of the merged per-row sketches, exact when every row is one plain value) and gains
``observations`` (the sum of ``sample_count``) and ``value_sum`` (the ``sum`` aggregation). Its raw tail reads
the new ``system_metrics_hour_aggregate(hour)``, which replaces ``system_metrics_hour_summary(hour)``.
``system_metrics_hourly``/``_daily`` extremes and percentiles become nullable (an hour of histogram rows with no
observation has none). Every metric rollup hour still backed by raw rows is marked dirty, so the refresh
recomputes it with the new aggregation (hours before the raw horizon keep their rows).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROLES = ("fernando_telemetry_tenant", "fernando_telemetry_query", "fernando_grafana")
"""The roles granted SELECT on the view (revisions 0005 and 0007, grafana/reader.sql): a recreated view needs them again."""

NULLABLE = ("value_min", "value_max", "value_p50", "value_p90", "value_p95", "value_p99")

# One hour of raw rows per service and metric, aggregated as storage/metric_aggregates.py does: observations
# and sums added (the sum: increments of counters, values of gauges, value * sample_count of histogram-like
# rows), extremes from the rows' min_value/max_value (else their sketch's first and last keys: a cumulative
# histogram's later increment has no exact extremes and is bounded by its own distribution; else value),
# percentiles exact when every row is one plain value, else from the rows' sketches merged (a row without
# sketch: sample_count copies of its value).
HOUR_AGGREGATE = """
CREATE FUNCTION system_metrics_hour_aggregate(hour timestamptz)
RETURNS TABLE (service_name text, metric_name text, samples bigint, observations bigint, value_sum double precision,
               weighted_sum double precision, min_value double precision, max_value double precision,
               p50 double precision, p90 double precision, p95 double precision, p99 double precision)
LANGUAGE plpgsql STABLE PARALLEL SAFE ROWS 20
SET jit = off
AS $$
BEGIN
    -- EXECUTE: planned with the hour's value, so for its partition and time index only
    RETURN QUERY EXECUTE '
WITH r AS (
    SELECT m.service_name::text AS service_name, m.metric_name::text AS metric_name,
           m.sample_count::bigint AS n,
           CASE WHEN m.metric_type IN (''histogram'', ''timer'', ''distribution'') THEN m.value * m.sample_count ELSE m.value END AS total,
           m.value * m.sample_count AS weighted,
           CASE WHEN m.sample_count > 0 THEN
                coalesce(m.min_value, CASE WHEN cardinality(m.sketch_keys) > 0 THEN rollup_sketch_value(m.sketch_keys[1]) END,
                         m.value) END AS lo,
           CASE WHEN m.sample_count > 0 THEN
                coalesce(m.max_value,
                         CASE WHEN cardinality(m.sketch_keys) > 0 THEN rollup_sketch_value(m.sketch_keys[cardinality(m.sketch_keys)]) END,
                         m.value) END AS hi,
           m.value AS v,
           (m.sketch_keys IS NULL AND m.sample_count = 1) AS plain,
           coalesce(m.sketch_keys, ARRAY[rollup_sketch_key(m.value)]) AS keys,
           coalesce(m.sketch_counts, ARRAY[m.sample_count::bigint]) AS counts
      FROM system_metrics m
     WHERE m."timestamp" >= $1 AND m."timestamp" < $1 + interval ''1 hour''),
a AS (
    SELECT r.service_name, r.metric_name, jsonb_build_array(r.service_name, r.metric_name) AS group_key,
           count(*)::bigint AS samples, coalesce(sum(r.n), 0)::bigint AS observations,
           coalesce(sum(r.total), 0) AS value_sum, coalesce(sum(r.weighted), 0) AS weighted_sum,
           min(r.lo) AS min_value, max(r.hi) AS max_value,
           CASE WHEN bool_and(r.plain) THEN percentile_cont(ARRAY[0.5, 0.9, 0.95, 0.99]) WITHIN GROUP (ORDER BY r.v) END AS exact
      FROM r GROUP BY r.service_name, r.metric_name),
s AS (
    SELECT b.group_key, array_agg(b.key ORDER BY b.key) AS keys, array_agg(b.count ORDER BY b.key) AS counts
      FROM (SELECT jsonb_build_array(r.service_name, r.metric_name) AS group_key, u.key, sum(u.count)::bigint AS count
              FROM r CROSS JOIN LATERAL unnest(r.keys, r.counts) AS u(key, count)
             WHERE u.count > 0
             GROUP BY 1, 2) b
     GROUP BY b.group_key)
SELECT a.service_name, a.metric_name, a.samples, a.observations, a.value_sum, a.weighted_sum, a.min_value, a.max_value,
       q.q[1], q.q[2], q.q[3], q.q[4]
  FROM a LEFT JOIN s ON s.group_key = a.group_key
 CROSS JOIN LATERAL (
       SELECT coalesce(a.exact, rollup_sketch_quantiles(coalesce(s.keys, ''{}''), coalesce(s.counts, ''{}''),
                                                        ''{0.5,0.9,0.95,0.99}'', a.min_value, a.max_value)) AS q
       ) q'
    USING hour;
END
$$
"""

# The rolled-up hours (weighted by observations, percentiles of one hourly row or of the rows' merged
# sketches), plus the pending hours from system_metrics_hour_aggregate; 0003's columns, then the new ones.
VIEW = """
CREATE OR REPLACE VIEW system_metrics_service_summary WITH (security_invoker = true) AS
WITH pending AS MATERIALIZED (SELECT p AS hour FROM rollup_pending_hours('system_metrics') AS p)
SELECT g.hour,
       g.service_name,
       g.metric_name,
       g.samples,
       g.weighted_sum / NULLIF(g.observations, 0)::double precision AS avg_value,
       g.min_value,
       g.max_value,
       CASE WHEN g.parts = 1 THEN g.p50 ELSE m.merged[1] END AS p50,
       CASE WHEN g.parts = 1 THEN g.p90 ELSE m.merged[2] END AS p90,
       CASE WHEN g.parts = 1 THEN g.p95 ELSE m.merged[3] END AS p95,
       CASE WHEN g.parts = 1 THEN g.p99 ELSE m.merged[4] END AS p99,
       g.observations,
       g.value_sum
  FROM (SELECT r.bucket_start AS hour,
               r.service_name,
               r.metric_name,
               sum(r.samples)::bigint AS samples,
               sum(r.observations)::bigint AS observations,
               sum(r.value_sum) AS value_sum,
               sum(r.weighted_sum) AS weighted_sum,
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
SELECT p.hour, raw.service_name::varchar(100), raw.metric_name::varchar(200), raw.samples,
       raw.weighted_sum / NULLIF(raw.observations, 0)::double precision, raw.min_value, raw.max_value,
       raw.p50, raw.p90, raw.p95, raw.p99, raw.observations, raw.value_sum
  FROM pending p
 CROSS JOIN LATERAL system_metrics_hour_aggregate(p.hour) raw
"""

# Revision 0003's definitions, restored by the downgrade.
HOUR_SUMMARY_0003 = """
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
"""

VIEW_0003 = """
CREATE VIEW system_metrics_service_summary WITH (security_invoker = true) AS
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
"""

# Hours still backed by raw rows (from the raw horizon on) are recomputed by the next refreshes.
MARK_FOR_RECOMPUTE = """
INSERT INTO rollup_dirty_buckets (source_table, grain, bucket_start)
SELECT DISTINCT 'system_metrics', 'hour', h.bucket_start
  FROM system_metrics_hourly h
 WHERE h.bucket_start >= (SELECT s.raw_horizon FROM rollup_state s WHERE s.source_table = 'system_metrics')
ON CONFLICT DO NOTHING
"""


def upgrade() -> None:
    for grain in ("hourly", "daily"):
        for column in NULLABLE:
            op.alter_column(f"system_metrics_{grain}", column, nullable=True)
    op.execute(HOUR_AGGREGATE)
    op.execute(VIEW)
    op.execute("DROP FUNCTION system_metrics_hour_summary(timestamptz)")
    op.execute(MARK_FOR_RECOMPUTE)


def downgrade() -> None:
    op.execute(HOUR_SUMMARY_0003)
    op.execute("DROP VIEW system_metrics_service_summary")
    op.execute(VIEW_0003)
    for role in ROLES:
        op.execute(
            f"DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN "
            f"GRANT SELECT ON system_metrics_service_summary TO {role}; END IF; END $$"
        )
    op.execute("DROP FUNCTION system_metrics_hour_aggregate(timestamptz)")
    for grain in ("hourly", "daily"):
        for column in NULLABLE:
            op.execute(f"UPDATE system_metrics_{grain} SET {column} = 'NaN' WHERE {column} IS NULL")
            op.alter_column(f"system_metrics_{grain}", column, nullable=False)
