"""User SQL runs as a role that cannot watch, signal or lock anything; the tenant role reads only its license row.

``POST /api/v1/query`` still logs in as ``fernando_telemetry_query``, but every statement now runs after
``SET LOCAL ROLE fernando_telemetry_query_reader`` (NOLOGIN, new here). PostgreSQL identifies a backend by the
role it logged in as: the reader has none of the login role's privileges (the login role is NOINHERIT and
only a member of the reader), so the reader neither reads another backend's query text in
``pg_stat_activity`` nor signals it (``pg_cancel_backend``/``pg_terminate_backend``), whatever license runs
it. The grants and the ``query_isolation``/``own_backend`` policies move from the login role to the reader,
which also reads ``rollup_state`` and ``rollup_dirty_buckets`` (read only: watermarks and hours waiting for a
refresh, no license and no values) so the security-invoker summary views answer there.

Functions user SQL must not call lose their EXECUTE grant to PUBLIC in this database and get it back for the
migrating role (the owner the server connects as) and the tenant role:

- ``set_config`` (user SQL could switch back to the login role with ``set_config('role', 'none', true)``, or
  raise its own ``work_mem``),
- every advisory-lock function (``pg_advisory_*``, ``pg_try_advisory_*``): the jobs' locks cannot be taken
  or held by user SQL,
- the statistics and size functions (``pg_stat_get_*``, ``pg_*_size``): platform-wide counts and sizes, and
  with ``pg_stat_get_activity`` the whole of ``pg_stat_activity``.

``pg_stats``/``pg_stats_ext``/``pg_stats_ext_exprs`` (most common values of readable columns, every
license's), ``pg_roles``/``pg_user``/``pg_group`` lose SELECT for PUBLIC the same way, and ``pg_class`` keeps
SELECT for PUBLIC on every column but ``reltuples``, ``relpages`` and ``relallvisible``.

A superuser running the migration also sets ``temp_file_limit`` on the login role (only a superuser may).

``licenses`` gets row-level security: the tenant role reads its own license row only.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT_ROLE = "fernando_telemetry_tenant"
QUERY_ROLE = "fernando_telemetry_query"
READER_ROLE = "fernando_telemetry_query_reader"
_TENANT_LICENSE = "NULLIF(current_setting('fernando_telemetry.license_id', true), '')::bigint"
TEMP_FILE_LIMIT = "256MB"

QUERY_READABLE = (
    "telemetry_events",
    "system_metrics",
    "traces",
    "business_metrics",
    "telemetry_events_hourly",
    "telemetry_events_daily",
    "system_metrics_hourly",
    "system_metrics_daily",
    "traces_hourly",
    "traces_daily",
    "telemetry_events_hourly_summary",
    "system_metrics_service_summary",
    "business_metrics_kpi_summary",
    "traces_service_summary",
)
POLICY_TABLES = (
    "telemetry_events",
    "system_metrics",
    "traces",
    "business_metrics",
    "telemetry_events_hourly",
    "telemetry_events_daily",
    "system_metrics_hourly",
    "system_metrics_daily",
    "traces_hourly",
    "traces_daily",
)
"""Tables with a ``query_isolation`` policy (migration 0005)."""

_REVOKED_FUNCTIONS = """
SELECT p.oid::regprocedure::text
  FROM pg_proc p
 WHERE p.pronamespace = 'pg_catalog'::regnamespace
   AND (p.proname = 'set_config'
        OR p.proname LIKE 'pg\\_advisory\\_%' OR p.proname LIKE 'pg\\_try\\_advisory\\_%'
        OR p.proname LIKE 'pg\\_stat\\_get\\_%'
        OR p.proname IN ('pg_relation_size', 'pg_total_relation_size', 'pg_table_size', 'pg_indexes_size',
                         'pg_database_size', 'pg_tablespace_size'))
"""
_REVOKED_VIEWS = ("pg_stats", "pg_stats_ext", "pg_stats_ext_exprs", "pg_roles", "pg_user", "pg_group")
_PG_CLASS_HIDDEN = ("reltuples", "relpages", "relallvisible")


def _create_role(name: str) -> str:
    return f"""
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{name}') THEN
        CREATE ROLE {name} NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$"""


def _each_function(action: str) -> str:
    # action: a format() string with %1$s for the function signature
    return f"""
DO $$
DECLARE
    fn text;
BEGIN
    FOR fn IN {_REVOKED_FUNCTIONS} LOOP
        EXECUTE format({action!r}, fn);
    END LOOP;
END
$$"""


def _keepers() -> str:
    # the owner the server connects as (the migrating role) and API sessions of license keys
    return f"CURRENT_USER, {TENANT_ROLE}"


def upgrade() -> None:
    op.execute(_create_role(READER_ROLE))
    op.execute(f"ALTER ROLE {QUERY_ROLE} NOINHERIT")
    # granted after NOINHERIT: the login role may SET ROLE to the reader without holding its privileges
    op.execute(f"GRANT {READER_ROLE} TO {QUERY_ROLE}")
    op.execute(f"GRANT USAGE ON SCHEMA public TO {READER_ROLE}")
    readable = ", ".join(QUERY_READABLE)
    op.execute(f"GRANT SELECT ON {readable}, query_scopes, rollup_state, rollup_dirty_buckets TO {READER_ROLE}")
    op.execute(f"REVOKE SELECT ON {readable}, query_scopes FROM {QUERY_ROLE}")
    for table in POLICY_TABLES:
        op.execute(f"ALTER POLICY query_isolation ON {table} TO {READER_ROLE}")
    op.execute(f"ALTER POLICY own_backend ON query_scopes TO {READER_ROLE}")

    op.execute(_each_function(f"REVOKE EXECUTE ON FUNCTION %1$s FROM PUBLIC; GRANT EXECUTE ON FUNCTION %1$s TO {_keepers()}"))
    for view in _REVOKED_VIEWS:
        op.execute(f"REVOKE SELECT ON pg_catalog.{view} FROM PUBLIC")
        op.execute(f"GRANT SELECT ON pg_catalog.{view} TO {_keepers()}")
    op.execute(
        f"""
DO $$
DECLARE
    columns text;
BEGIN
    SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) INTO columns
      FROM pg_attribute
     WHERE attrelid = 'pg_catalog.pg_class'::regclass AND attnum > 0 AND NOT attisdropped
       AND attname NOT IN ({", ".join(f"'{c}'" for c in _PG_CLASS_HIDDEN)});
    REVOKE SELECT ON pg_catalog.pg_class FROM PUBLIC;
    EXECUTE format('GRANT SELECT (%s) ON pg_catalog.pg_class TO PUBLIC', columns);
    GRANT SELECT ON pg_catalog.pg_class TO {_keepers()};
END
$$"""
    )
    op.execute(
        f"""
DO $$
BEGIN
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        ALTER ROLE {QUERY_ROLE} SET temp_file_limit = '{TEMP_FILE_LIMIT}';
    END IF;
END
$$"""
    )

    op.execute("ALTER TABLE licenses ENABLE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY tenant_isolation ON licenses FOR SELECT TO {TENANT_ROLE} USING (license_id = {_TENANT_LICENSE})")


def downgrade() -> None:
    op.execute("DROP POLICY IF EXISTS tenant_isolation ON licenses")
    op.execute("ALTER TABLE licenses DISABLE ROW LEVEL SECURITY")
    op.execute(
        f"""
DO $$
DECLARE
    columns text;
BEGIN
    SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) INTO columns
      FROM pg_attribute
     WHERE attrelid = 'pg_catalog.pg_class'::regclass AND attnum > 0 AND NOT attisdropped
       AND attname NOT IN ({", ".join(f"'{c}'" for c in _PG_CLASS_HIDDEN)});
    EXECUTE format('REVOKE SELECT (%s) ON pg_catalog.pg_class FROM PUBLIC', columns);
    GRANT SELECT ON pg_catalog.pg_class TO PUBLIC;
END
$$"""
    )
    for view in _REVOKED_VIEWS:
        op.execute(f"GRANT SELECT ON pg_catalog.{view} TO PUBLIC")
    op.execute(_each_function("GRANT EXECUTE ON FUNCTION %1$s TO PUBLIC"))

    readable = ", ".join(QUERY_READABLE)
    for table in POLICY_TABLES:
        op.execute(f"ALTER POLICY query_isolation ON {table} TO {QUERY_ROLE}")
    op.execute(f"ALTER POLICY own_backend ON query_scopes TO {QUERY_ROLE}")
    op.execute(f"GRANT SELECT ON {readable}, query_scopes TO {QUERY_ROLE}")
    op.execute(f"REVOKE ALL ON {readable}, query_scopes, rollup_state, rollup_dirty_buckets FROM {READER_ROLE}")
    op.execute(f"REVOKE USAGE ON SCHEMA public FROM {READER_ROLE}")
    # the roles, their membership, NOINHERIT and temp_file_limit stay: they are cluster-wide and other databases of
    # the cluster may be at this revision; the login role holds its grants directly again here
