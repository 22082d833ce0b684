"""Row-level security by license on every telemetry, rollup, alerting and KPI table; the tenant and query roles.

Two NOLOGIN roles (cluster-wide, created once, shared by every database of the cluster):

- ``fernando_telemetry_tenant``: API sessions of a license key switch to it for their transaction
  (``SET LOCAL ROLE``) after setting ``fernando_telemetry.license_id``; it may read and write every table,
  and the policies below limit it to rows of that license.
- ``fernando_telemetry_query`` (LOGIN): ``POST /api/v1/query`` runs user SQL on a connection of its own as
  this role, which can only read the telemetry tables, their rollups and the views. Its license is not a
  setting (user SQL could call ``set_config``) but a row of ``query_scopes`` keyed by the backend pid,
  written by the owner before the query runs; the role can read only its own row and write nothing.

The connecting role (owner) and superusers bypass RLS: jobs, the ingest writer and admin keys see every
license, as before.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT_ROLE = "fernando_telemetry_tenant"
QUERY_ROLE = "fernando_telemetry_query"
LICENSE_SETTING = "fernando_telemetry.license_id"

LICENSE_TABLES = (
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
    "alert_rules",
    "alerts",
    "alert_events",
    "notification_channels",
    "alert_notifications",
    "alert_deliveries",
    "silences",
    "audit_log",
)
"""Tables with a ``license_id`` column: a row is visible to a tenant session when it is of its license."""

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

_TENANT_LICENSE = f"NULLIF(current_setting('{LICENSE_SETTING}', true), '')::bigint"
_QUERY_LICENSE = "(SELECT license_id FROM query_scopes WHERE backend_pid = pg_backend_pid())"


def _create_role(name: str, login: str) -> str:
    # roles are cluster-wide: another database of the cluster may have made it already, maybe at this instant
    return f"""
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{name}') THEN
        CREATE ROLE {name} {login};
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$"""


def _grant_membership(name: str) -> str:
    # the connecting role must be a member to SET ROLE; superusers need nothing
    return f"""
DO $$
BEGIN
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        EXECUTE format('GRANT {name} TO %I', current_user);
    END IF;
END
$$"""


def upgrade() -> None:
    op.create_table(
        "query_scopes",
        sa.Column("backend_pid", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("license_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("backend_pid", name=op.f("pk_query_scopes")),
    )
    for role, login in ((TENANT_ROLE, "NOLOGIN"), (QUERY_ROLE, "LOGIN")):
        op.execute(_create_role(role, login))
        op.execute(_grant_membership(role))
        op.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
    op.execute(f"ALTER ROLE {QUERY_ROLE} LOGIN")
    op.execute(f"ALTER ROLE {QUERY_ROLE} SET default_transaction_read_only = on")

    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {TENANT_ROLE}")
    op.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {TENANT_ROLE}")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {TENANT_ROLE}")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {TENANT_ROLE}")
    op.execute(f"REVOKE ALL ON query_scopes FROM {TENANT_ROLE}")
    for relation in (*QUERY_READABLE, "query_scopes"):
        op.execute(f"GRANT SELECT ON {relation} TO {QUERY_ROLE}")
    op.execute("ALTER TABLE query_scopes ENABLE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY own_backend ON query_scopes FOR SELECT TO {QUERY_ROLE} USING (backend_pid = pg_backend_pid())")

    for table in LICENSE_TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} TO {TENANT_ROLE} USING (license_id = {_TENANT_LICENSE}) "
            f"WITH CHECK (license_id = {_TENANT_LICENSE})"
        )
        if table in QUERY_READABLE:
            op.execute(
                f"CREATE POLICY query_isolation ON {table} FOR SELECT TO {QUERY_ROLE} USING (license_id = {_QUERY_LICENSE})"
            )
    # per-group rule states carry no license: they are visible with their (visible) rule
    op.execute("ALTER TABLE alert_rule_states ENABLE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON alert_rule_states TO {TENANT_ROLE} "
        "USING (rule_id IN (SELECT rule_id FROM alert_rules)) WITH CHECK (rule_id IN (SELECT rule_id FROM alert_rules))"
    )


def downgrade() -> None:
    for table in (*LICENSE_TABLES, "alert_rule_states"):
        op.execute(f"DROP POLICY IF EXISTS tenant_isolation ON {table}")
        op.execute(f"DROP POLICY IF EXISTS query_isolation ON {table}")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
    for relation in QUERY_READABLE:
        op.execute(f"REVOKE SELECT ON {relation} FROM {QUERY_ROLE}")
    op.drop_table("query_scopes")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE USAGE, SELECT ON SEQUENCES FROM {TENANT_ROLE}")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLES FROM {TENANT_ROLE}")
    op.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {TENANT_ROLE}")
    op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {TENANT_ROLE}")
    for role in (TENANT_ROLE, QUERY_ROLE):
        op.execute(f"REVOKE USAGE ON SCHEMA public FROM {role}")
    # the roles stay: other databases of the cluster may use them
