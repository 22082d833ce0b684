"""The same error rule and metric sums, in forms a Citus cluster runs as a single node does.

``telemetry_event_is_error`` takes a searched ``CASE``.

The planner inlines this SQL function into the queries that call it; Citus then writes the query back to SQL for
the workers. A simple ``CASE jsonb_typeof(...) WHEN 'number' ...`` that has been inlined comes back as
``CASE jsonb_typeof(...) WHEN (jsonb_typeof(...) = 'number') ...``, which a worker refuses ("operator does not
exist: text = boolean"): every hourly rollup of events failed on Citus. ``CASE WHEN jsonb_typeof(...) = 'number'``
means the same and is written back as it is.

``system_metrics_hour_aggregate`` (the pending hours of ``system_metrics_service_summary``) adds up its
floating-point sums in value order: on Citus the samples of an hour come from several shards in whatever order
the workers answer, and a sum in arrival order could differ in its last bits from one read to the next.

Downgrade restores revisions 0012's and 0011's texts.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EVENT_IS_ERROR = """
CREATE OR REPLACE FUNCTION telemetry_event_is_error(event_type text, payload jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT event_type = 'error_event'
    OR coalesce(payload -> 'error' NOT IN ('null'::jsonb, 'false'::jsonb), false)
    OR coalesce(payload -> 'exception' NOT IN ('null'::jsonb, 'false'::jsonb), false)
    OR CASE WHEN jsonb_typeof(payload -> 'status_code') = 'number'
                THEN (payload ->> 'status_code')::numeric >= 500 AND (payload ->> 'status_code')::numeric < 600
            WHEN jsonb_typeof(payload -> 'status_code') = 'string'
                THEN (payload ->> 'status_code') ~ '^5[0-9][0-9]$'
            ELSE false
       END
$$
"""

EVENT_IS_ERROR_0012 = """
CREATE OR REPLACE FUNCTION telemetry_event_is_error(event_type text, payload jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT event_type = 'error_event'
    OR coalesce(payload -> 'error' NOT IN ('null'::jsonb, 'false'::jsonb), false)
    OR coalesce(payload -> 'exception' NOT IN ('null'::jsonb, 'false'::jsonb), false)
    OR CASE jsonb_typeof(payload -> 'status_code')
           WHEN 'number' THEN (payload ->> 'status_code')::numeric >= 500 AND (payload ->> 'status_code')::numeric < 600
           WHEN 'string' THEN (payload ->> 'status_code') ~ '^5[0-9][0-9]$'
           ELSE false
       END
$$
"""

# Revision 0011's function with its two sums over the samples in value order (see the docstring).
HOUR_AGGREGATE = """
CREATE OR REPLACE FUNCTION system_metrics_hour_aggregate(hour timestamptz)
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
           coalesce(sum(r.total ORDER BY r.total), 0) AS value_sum,
           coalesce(sum(r.weighted ORDER BY r.weighted), 0) AS weighted_sum,
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

HOUR_AGGREGATE_0011 = """
CREATE OR REPLACE FUNCTION system_metrics_hour_aggregate(hour timestamptz)
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


def upgrade() -> None:
    op.execute(EVENT_IS_ERROR)
    op.execute(HOUR_AGGREGATE)


def downgrade() -> None:
    op.execute(HOUR_AGGREGATE_0011)
    op.execute(EVENT_IS_ERROR_0012)
