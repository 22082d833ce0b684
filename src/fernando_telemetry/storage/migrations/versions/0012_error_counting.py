"""Errors counted where users look, and alert columns that mean what they say.

- ``telemetry_event_is_error(event_type, payload)``: the one rule for a failed event (an ``error_event``; a
  payload ``error`` or ``exception`` that is not null or false; a payload ``status_code`` of 500..599, as the
  SDK middleware records a failed request). The hourly rollup, the views' raw tail and every reader use it;
  the rolled-up ``errors`` of hours still in raw rows are recounted with it.
- ``traces_hourly`` / ``traces_daily`` gain ``server_spans`` and ``server_errors`` (spans of kind ``server``,
  and those with status ``error``), filled from raw rows for the hours still held.
- ``telemetry_events_hourly_summary`` gains ``server_span_errors``: failed server spans of the hour and
  license, on the ``api_event`` row (a row with no events when the hour has server errors but no api event).
  Redefined in full here: the view (revision 0003's plus the new column), ``telemetry_events_hour_summary``
  (the new rule), and the new ``traces_server_errors_hour_summary`` (the spans' raw tail).
- ``alert_rules``: ``evaluation_window_minutes`` / ``pending_period_minutes`` lose their defaults; the
  trigger ``alert_rules_sync_condition`` keeps them equal to ``condition_config.window_minutes`` /
  ``for_minutes`` (a column set alone is copied into the condition, a condition set alone into the column,
  both set and different is an error).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT_ROLE = "fernando_telemetry_tenant"
QUERY_ROLE = "fernando_telemetry_query"

EVENT_IS_ERROR = """
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

EVENTS_TAIL = """
CREATE OR REPLACE FUNCTION telemetry_events_hour_summary(hour timestamptz)
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
       count(*) FILTER (WHERE telemetry_event_is_error(e.event_type, e.payload))
  FROM telemetry_events e
 WHERE e.event_timestamp >= $1 AND e.event_timestamp < $1 + interval ''1 hour''
 GROUP BY e.event_type, e.license_id'
    USING hour;
END
$$
"""

EVENTS_TAIL_0003 = EVENTS_TAIL.replace(
    "count(*) FILTER (WHERE telemetry_event_is_error(e.event_type, e.payload))",
    "count(*) FILTER (WHERE e.event_type = ''error_event'' OR e.payload ? ''error'')",
)

SPANS_TAIL = """
CREATE OR REPLACE FUNCTION traces_server_errors_hour_summary(hour timestamptz)
RETURNS TABLE (license_id bigint, server_errors bigint)
LANGUAGE plpgsql STABLE PARALLEL SAFE ROWS 5
SET jit = off
AS $$
BEGIN
    RETURN QUERY EXECUTE '
SELECT t.license_id, count(*)
  FROM traces t
 WHERE t.start_time >= $1 AND t.start_time < $1 + interval ''1 hour'' AND t.span_kind = ''server'' AND t.status = ''error''
 GROUP BY t.license_id'
    USING hour;
END
$$
"""

# The events of each hour (rolled-up hours from the hourly table, pending hours from raw rows, as in 0003),
# and beside them the failed server spans of the hour and license (rolled up or pending for ``traces``),
# added up per hour, event type and license. A filter on hour or license reaches every branch.
VIEW = """
CREATE OR REPLACE VIEW telemetry_events_hourly_summary WITH (security_invoker = true) AS
WITH pending AS MATERIALIZED (SELECT p AS hour FROM rollup_pending_hours('telemetry_events') AS p),
pending_spans AS MATERIALIZED (SELECT p AS hour FROM rollup_pending_hours('traces') AS p)
SELECT u.hour,
       u.event_type,
       u.license_id,
       sum(u.events)::bigint AS events,
       sum(u.unique_users)::bigint AS unique_users,
       sum(u.unique_sessions)::bigint AS unique_sessions,
       max(u.avg_duration_ms) AS avg_duration_ms,
       max(u.p95_duration_ms) AS p95_duration_ms,
       sum(u.errors)::bigint AS errors,
       sum(u.server_span_errors)::bigint AS server_span_errors
  FROM (SELECT r.bucket_start AS hour,
               r.event_type,
               r.license_id,
               r.events,
               r.unique_users,
               r.unique_sessions,
               r.duration_sum / NULLIF(r.duration_count, 0) AS avg_duration_ms,
               r.duration_p95 AS p95_duration_ms,
               r.errors,
               0::bigint AS server_span_errors
          FROM telemetry_events_hourly r
         WHERE NOT EXISTS (SELECT 1 FROM pending p WHERE p.hour = r.bucket_start)
        UNION ALL
        SELECT p.hour, raw.event_type::varchar(25), raw.license_id, raw.events, raw.unique_users, raw.unique_sessions,
               raw.avg_duration_ms, raw.p95_duration_ms, raw.errors, 0::bigint
          FROM pending p
         CROSS JOIN LATERAL telemetry_events_hour_summary(p.hour) raw
        UNION ALL
        SELECT t.bucket_start, 'api_event'::varchar(25), t.license_id, 0::bigint, 0::bigint, 0::bigint, NULL::double precision,
               NULL::double precision, 0::bigint, t.server_errors
          FROM traces_hourly t
         WHERE t.server_errors > 0 AND NOT EXISTS (SELECT 1 FROM pending_spans p WHERE p.hour = t.bucket_start)
        UNION ALL
        SELECT p.hour, 'api_event'::varchar(25), raw.license_id, 0::bigint, 0::bigint, 0::bigint, NULL::double precision,
               NULL::double precision, 0::bigint, raw.server_errors
          FROM pending_spans p
         CROSS JOIN LATERAL traces_server_errors_hour_summary(p.hour) raw
       ) u
 GROUP BY u.hour, u.event_type, u.license_id
"""

VIEW_0003 = """
CREATE VIEW telemetry_events_hourly_summary WITH (security_invoker = true) AS
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
"""

# Rolled-up hours whose raw rows are still held get their errors recounted with the new rule (older hours
# keep the count they had); days are re-added from their hours.
RECOUNT_EVENT_ERRORS = """
UPDATE telemetry_events_hourly h SET errors = c.errors
  FROM (SELECT date_trunc('hour', e.event_timestamp, 'UTC') AS hour, e.event_type, e.license_id,
               count(*) FILTER (WHERE {rule}) AS errors
          FROM telemetry_events e
         GROUP BY 1, 2, 3) c
 WHERE h.bucket_start = c.hour AND h.event_type = c.event_type AND h.license_id IS NOT DISTINCT FROM c.license_id
   AND h.errors <> c.errors
"""
RECOUNT_DAILY_EVENT_ERRORS = """
UPDATE telemetry_events_daily d SET errors = c.errors
  FROM (SELECT date_trunc('day', h.bucket_start, 'UTC') AS day, h.event_type, h.license_id, sum(h.errors)::bigint AS errors
          FROM telemetry_events_hourly h
         GROUP BY 1, 2, 3) c
 WHERE d.bucket_start = c.day AND d.event_type = c.event_type AND d.license_id IS NOT DISTINCT FROM c.license_id
   AND d.errors <> c.errors
"""

COUNT_SERVER_SPANS = """
UPDATE traces_hourly h SET server_spans = c.server_spans, server_errors = c.server_errors
  FROM (SELECT date_trunc('hour', t.start_time, 'UTC') AS hour, t.service_name, t.operation_name, t.license_id,
               count(*) FILTER (WHERE t.span_kind = 'server') AS server_spans,
               count(*) FILTER (WHERE t.span_kind = 'server' AND t.status = 'error') AS server_errors
          FROM traces t
         GROUP BY 1, 2, 3, 4) c
 WHERE h.bucket_start = c.hour AND h.service_name = c.service_name AND h.operation_name = c.operation_name
   AND h.license_id IS NOT DISTINCT FROM c.license_id AND c.server_spans > 0
"""
COUNT_DAILY_SERVER_SPANS = """
UPDATE traces_daily d SET server_spans = c.server_spans, server_errors = c.server_errors
  FROM (SELECT date_trunc('day', h.bucket_start, 'UTC') AS day, h.service_name, h.operation_name, h.license_id,
               sum(h.server_spans)::bigint AS server_spans, sum(h.server_errors)::bigint AS server_errors
          FROM traces_hourly h
         GROUP BY 1, 2, 3, 4) c
 WHERE d.bucket_start = c.day AND d.service_name = c.service_name AND d.operation_name = c.operation_name
   AND d.license_id IS NOT DISTINCT FROM c.license_id AND c.server_spans > 0
"""

# One truth for a rule's window and pending period: the columns and condition_config's window_minutes /
# for_minutes are kept equal. On insert a NULL column means "not given"; on update a column that changed
# (while the condition's value did not) is copied into the condition. A value given both ways and different
# is refused. A window given neither way is the condition language's default for the source (1440 minutes
# for business_metrics rules, 5 for the others: core.alert_condition's default_window_minutes, checked by a test).
SYNC_FUNCTION = """
CREATE OR REPLACE FUNCTION alert_rules_sync_condition() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    spec record;
    column_value integer;
    old_column integer;
    config_value jsonb;
    old_config jsonb;
    column_given boolean;
    config_given boolean;
BEGIN
    NEW.condition_config := coalesce(NEW.condition_config, '{}'::jsonb);
    IF jsonb_typeof(NEW.condition_config) <> 'object' THEN
        RAISE EXCEPTION 'alert_rules.condition_config must be a JSON object' USING ERRCODE = 'check_violation';
    END IF;
    FOR spec IN SELECT * FROM (VALUES
            ('evaluation_window_minutes', 'window_minutes',
             CASE WHEN NEW.condition_config ->> 'source' = 'business_metrics' THEN 1440 ELSE 5 END),
            ('pending_period_minutes', 'for_minutes', 0)
        ) AS s (column_name, config_key, default_value)
    LOOP
        column_value := CASE spec.column_name WHEN 'evaluation_window_minutes' THEN NEW.evaluation_window_minutes
                                              ELSE NEW.pending_period_minutes END;
        config_value := NEW.condition_config -> spec.config_key;
        IF TG_OP = 'INSERT' THEN
            column_given := column_value IS NOT NULL;
            config_given := config_value IS NOT NULL;
        ELSE
            old_column := CASE spec.column_name WHEN 'evaluation_window_minutes' THEN OLD.evaluation_window_minutes
                                                ELSE OLD.pending_period_minutes END;
            old_config := OLD.condition_config -> spec.config_key;
            column_given := column_value IS DISTINCT FROM old_column;
            config_given := config_value IS DISTINCT FROM old_config OR (config_value IS NOT NULL AND NOT column_given);
        END IF;
        IF column_given AND config_given THEN
            IF jsonb_typeof(config_value) IS DISTINCT FROM 'number' OR (config_value #>> '{}')::numeric <> column_value THEN
                RAISE EXCEPTION 'alert_rules.% (%) disagrees with condition_config.% (%)',
                    spec.column_name, column_value, spec.config_key, config_value
                    USING ERRCODE = 'check_violation';
            END IF;
        ELSIF column_given AND column_value IS NOT NULL THEN
            NEW.condition_config := NEW.condition_config || jsonb_build_object(spec.config_key, column_value);
        ELSE
            -- the condition decides; a value the condition language refuses is reported when the rule is
            -- evaluated, the column then holds the default
            column_value := CASE
                WHEN jsonb_typeof(config_value) = 'number' AND (config_value #>> '{}')::numeric
                     BETWEEN -2147483648 AND 2147483647 THEN round((config_value #>> '{}')::numeric)::integer
                ELSE spec.default_value END;
        END IF;
        IF spec.column_name = 'evaluation_window_minutes' THEN
            NEW.evaluation_window_minutes := column_value;
        ELSE
            NEW.pending_period_minutes := column_value;
        END IF;
    END LOOP;
    RETURN NEW;
END
$$
"""
SYNC_TRIGGER = """
CREATE TRIGGER alert_rules_sync_condition BEFORE INSERT OR UPDATE ON alert_rules
FOR EACH ROW EXECUTE FUNCTION alert_rules_sync_condition()
"""


def upgrade() -> None:
    op.execute(EVENT_IS_ERROR)
    op.execute(EVENTS_TAIL)
    op.execute(RECOUNT_EVENT_ERRORS.format(rule="telemetry_event_is_error(e.event_type, e.payload)"))
    op.execute(RECOUNT_DAILY_EVENT_ERRORS)
    for table in ("traces_hourly", "traces_daily"):
        op.add_column(table, sa.Column("server_spans", sa.BigInteger(), server_default=sa.text("0"), nullable=False))
        op.add_column(table, sa.Column("server_errors", sa.BigInteger(), server_default=sa.text("0"), nullable=False))
    op.execute(COUNT_SERVER_SPANS)
    op.execute(COUNT_DAILY_SERVER_SPANS)
    op.execute(SPANS_TAIL)
    op.execute(VIEW)

    op.alter_column("alert_rules", "evaluation_window_minutes", server_default=None)
    op.alter_column("alert_rules", "pending_period_minutes", server_default=None)
    op.execute(SYNC_FUNCTION)
    op.execute(SYNC_TRIGGER)
    # rules written before: the condition decides (the API always wrote both; an ORM-made rule may not have)
    op.execute(
        """
        UPDATE alert_rules SET condition_config = condition_config
                               || jsonb_build_object('window_minutes', evaluation_window_minutes)
         WHERE NOT condition_config ? 'window_minutes'
        """
    )
    op.execute(
        """
        UPDATE alert_rules SET condition_config = condition_config || jsonb_build_object('for_minutes', pending_period_minutes)
         WHERE NOT condition_config ? 'for_minutes'
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS alert_rules_sync_condition ON alert_rules")
    op.execute("DROP FUNCTION IF EXISTS alert_rules_sync_condition()")
    op.alter_column("alert_rules", "evaluation_window_minutes", server_default=sa.text("5"))
    op.alter_column("alert_rules", "pending_period_minutes", server_default=sa.text("0"))

    op.execute("DROP VIEW telemetry_events_hourly_summary")
    op.execute(VIEW_0003)
    op.execute(f"GRANT SELECT ON telemetry_events_hourly_summary TO {TENANT_ROLE}, {QUERY_ROLE}")
    op.execute("DROP FUNCTION IF EXISTS traces_server_errors_hour_summary(timestamptz)")
    for table in ("traces_daily", "traces_hourly"):
        op.drop_column(table, "server_errors")
        op.drop_column(table, "server_spans")
    op.execute(EVENTS_TAIL_0003)
    op.execute(RECOUNT_EVENT_ERRORS.format(rule="e.event_type = 'error_event' OR e.payload ? 'error'"))
    op.execute(RECOUNT_DAILY_EVENT_ERRORS)
    op.execute("DROP FUNCTION IF EXISTS telemetry_event_is_error(text, jsonb)")
