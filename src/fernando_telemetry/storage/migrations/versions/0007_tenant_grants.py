"""The tenant role gets what license-key requests use, and no more: the parent tables with row-level
security, the views, and read access to users, licenses and the rollup bookkeeping; never the daily
partitions themselves (queries go through the parents, where the policies apply), keys, idempotency
answers, job runs, archives or the query scopes.

Default privileges for the tenant role are removed, so a table made later (a daily partition, a new
table of a later revision) gives it nothing until a revision grants it explicitly.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT_ROLE = "fernando_telemetry_tenant"

READ_WRITE = (
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
    "alert_rule_states",
    "alert_events",
    "notification_channels",
    "alert_notifications",
    "alert_deliveries",
    "silences",
    "audit_log",
)
"""Every table with a row-level security policy for the tenant role."""

READ_ONLY = (
    "users",
    "licenses",
    "rollup_state",
    "rollup_dirty_buckets",
    "telemetry_events_hourly_summary",
    "system_metrics_service_summary",
    "business_metrics_kpi_summary",
    "traces_service_summary",
    "storage_by_partition",
    "storage_by_kind",
    "storage_by_license",
)


def upgrade() -> None:
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLES FROM {TENANT_ROLE}")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE USAGE, SELECT ON SEQUENCES FROM {TENANT_ROLE}")
    op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {TENANT_ROLE}")
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {', '.join(READ_WRITE)} TO {TENANT_ROLE}")
    op.execute(f"GRANT SELECT ON {', '.join(READ_ONLY)} TO {TENANT_ROLE}")


def downgrade() -> None:
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {TENANT_ROLE}")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {TENANT_ROLE}")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {TENANT_ROLE}")
