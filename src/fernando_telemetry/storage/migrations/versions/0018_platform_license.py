"""Every telemetry, rollup and KPI row belongs to a license: the platform license (0) owns the rows that had none,
``license_id`` becomes NOT NULL (default: the platform license) on those tables and the last column of every
primary key, so that one schema
serves a single PostgreSQL and a Citus cluster distributed by ``license_id`` (``storage.citus``).

Tables: telemetry_events, system_metrics, traces, telemetry_resources, metric_streams, business_metrics and the six
rollups. Their unique keys already named ``license_id`` (the rollups', the KPIs' natural key); the primary keys gain
it at the end, so lookups by their leading columns keep their index. A key stored under two licenses is two rows:
before, the second license's row was refused as a key of another license.

The configuration and alerting tables, ``api_keys`` and ``audit_log`` keep NULL for platform-wide (rules, channels,
silences) and admin (keys, audit entries): they are small tables that a cluster keeps whole on every node, where
NULL is allowed.

The rows are rewritten only where ``license_id`` is NULL; the primary keys are rebuilt (one index build per
partition). Downgrade gives the platform's rows NULL again and removes the platform license if nothing else names it.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PLATFORM_LICENSE_ID = 0

OWNED_TABLES = (
    "telemetry_events",
    "system_metrics",
    "traces",
    "telemetry_resources",
    "metric_streams",
    "business_metrics",
    "telemetry_events_hourly",
    "telemetry_events_daily",
    "system_metrics_hourly",
    "system_metrics_daily",
    "traces_hourly",
    "traces_daily",
)

PRIMARY_KEYS = {
    "telemetry_events": ("event_id", "event_timestamp"),
    "system_metrics": ("metric_id", "timestamp"),
    "traces": ("span_id", "trace_id", "start_time"),
    "telemetry_resources": ("resource_id",),
    "metric_streams": ("stream_key",),
    "business_metrics": ("business_metric_id",),
}


def _columns(names: Sequence[str]) -> str:
    return ", ".join(f'"{name}"' for name in names)


def upgrade() -> None:
    op.execute(
        f"INSERT INTO licenses (license_id, name, status) VALUES ({PLATFORM_LICENSE_ID}, 'platform', 'active') "
        "ON CONFLICT (license_id) DO NOTHING"
    )
    for table in OWNED_TABLES:
        op.execute(f"UPDATE {table} SET license_id = {PLATFORM_LICENSE_ID} WHERE license_id IS NULL")
        op.execute(f"ALTER TABLE {table} ALTER COLUMN license_id SET NOT NULL")
        op.execute(f"ALTER TABLE {table} ALTER COLUMN license_id SET DEFAULT {PLATFORM_LICENSE_ID}")
    for table, columns in PRIMARY_KEYS.items():
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT pk_{table}")
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT pk_{table} PRIMARY KEY ({_columns((*columns, 'license_id'))})")


def downgrade() -> None:
    for table, columns in PRIMARY_KEYS.items():
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT pk_{table}")
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT pk_{table} PRIMARY KEY ({_columns(columns)})")
    for table in OWNED_TABLES:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN license_id DROP NOT NULL")
        op.execute(f"ALTER TABLE {table} ALTER COLUMN license_id DROP DEFAULT")
        op.execute(f"UPDATE {table} SET license_id = NULL WHERE license_id = {PLATFORM_LICENSE_ID}")
    # the platform license stays when another row still names it (a user, a key, a rule...)
    op.execute(
        "DO $$ BEGIN "
        f"DELETE FROM licenses WHERE license_id = {PLATFORM_LICENSE_ID} AND name = 'platform'; "
        "EXCEPTION WHEN foreign_key_violation THEN NULL; END $$"
    )
