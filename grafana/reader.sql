-- A read-only PostgreSQL role for Grafana's datasource: SELECT on the views and on the tables the dashboard
-- reads, nothing else. Run it once per database as the owner of the schema (or a superuser), after
-- 'fernando-telemetry db upgrade':  psql "$DATABASE_URL" -f grafana/reader.sql
-- then let it log in:               ALTER ROLE fernando_grafana LOGIN PASSWORD 'choose-one';
--
-- BYPASSRLS: row-level security limits every other role to one license's rows, and Grafana shows every
-- license. Creating a role with it needs a superuser (or, on managed services, their admin role).
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'fernando_grafana') THEN
        CREATE ROLE fernando_grafana NOLOGIN BYPASSRLS;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;  -- made at this instant by a run on another database of the cluster
END
$$;

ALTER ROLE fernando_grafana SET default_transaction_read_only = on;
GRANT USAGE ON SCHEMA public TO fernando_grafana;

-- the analytics views
GRANT SELECT ON telemetry_events_hourly_summary, system_metrics_service_summary, traces_service_summary,
                business_metrics_kpi_summary TO fernando_grafana;

-- the views run as the reader (security_invoker): the rollups under them, the rollup state that says which
-- hours are pending, and the raw tables those hours are read from
GRANT SELECT ON telemetry_events_hourly, system_metrics_hourly, traces_hourly, rollup_state, rollup_dirty_buckets,
                telemetry_events, system_metrics, traces TO fernando_grafana;

-- the tables the dashboard reads directly: KPI history and alerts
GRANT SELECT ON business_metrics, alerts TO fernando_grafana;
