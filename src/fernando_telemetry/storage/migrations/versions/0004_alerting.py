"""Alerting (rule states, alert history, channels, notification outbox, delivery log, silences), job runs, audit log.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "job_runs",
        sa.Column("job_name", sa.String(length=64), nullable=False),
        sa.Column("last_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_outcome", sa.String(length=16), nullable=True),
        sa.Column("last_summary", sa.Text(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_duration_ms", sa.Double(), nullable=True),
        sa.Column("runs", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("failures", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint("job_name", name=op.f("pk_job_runs")),
    )
    op.create_table(
        "audit_log",
        sa.Column("entry_id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target_type", sa.String(length=64), nullable=False),
        sa.Column("target_id", sa.String(length=200), nullable=True),
        sa.Column("license_id", sa.BigInteger(), nullable=True),
        sa.Column("details", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.ForeignKeyConstraint(["license_id"], ["licenses.license_id"], name=op.f("fk_audit_log_license_id_licenses")),
        sa.PrimaryKeyConstraint("entry_id", name=op.f("pk_audit_log")),
    )
    op.create_index(
        "ix_audit_log_license_id_occurred_at", "audit_log", ["license_id", sa.literal_column("occurred_at DESC")], unique=False
    )
    op.create_table(
        "notification_channels",
        sa.Column("channel_id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("license_id", sa.BigInteger(), nullable=True),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("config", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("secrets", sa.Text(), nullable=True),
        sa.Column("send_resolved", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["license_id"], ["licenses.license_id"], name=op.f("fk_notification_channels_license_id_licenses")
        ),
        sa.PrimaryKeyConstraint("channel_id", name=op.f("pk_notification_channels")),
        sa.UniqueConstraint(
            "license_id", "name", name="uq_notification_channels_license_id_name", postgresql_nulls_not_distinct=True
        ),
    )
    op.create_table(
        "silences",
        sa.Column("silence_id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("license_id", sa.BigInteger(), nullable=True),
        sa.Column("matchers", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("expired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["license_id"], ["licenses.license_id"], name=op.f("fk_silences_license_id_licenses")),
        sa.PrimaryKeyConstraint("silence_id", name=op.f("pk_silences")),
    )
    op.create_index("ix_silences_ends_at", "silences", ["ends_at"], unique=False)
    op.create_table(
        "alert_events",
        sa.Column("event_id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("alert_id", sa.BigInteger(), nullable=True),
        sa.Column("rule_id", sa.BigInteger(), nullable=True),
        sa.Column("license_id", sa.BigInteger(), nullable=True),
        sa.Column("fingerprint", sa.String(length=64), nullable=True),
        sa.Column("group_key", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("from_state", sa.String(length=16), nullable=False),
        sa.Column("to_state", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("observed_value", sa.Double(), nullable=True),
        sa.Column("details", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["alert_id"], ["alerts.alert_id"], name=op.f("fk_alert_events_alert_id_alerts"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["license_id"], ["licenses.license_id"], name=op.f("fk_alert_events_license_id_licenses")),
        sa.ForeignKeyConstraint(
            ["rule_id"], ["alert_rules.rule_id"], name=op.f("fk_alert_events_rule_id_alert_rules"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_alert_events")),
    )
    op.create_index("ix_alert_events_alert_id_occurred_at", "alert_events", ["alert_id", "occurred_at"], unique=False)
    op.create_index(
        "ix_alert_events_rule_id_occurred_at", "alert_events", ["rule_id", sa.literal_column("occurred_at DESC")], unique=False
    )
    op.create_table(
        "alert_notifications",
        sa.Column("notification_id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("alert_id", sa.BigInteger(), nullable=False),
        sa.Column("channel_id", sa.BigInteger(), nullable=True),
        sa.Column("channel_name", sa.String(length=100), nullable=False),
        sa.Column("license_id", sa.BigInteger(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("status", sa.String(length=16), server_default=sa.text("'pending'"), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["alert_id"], ["alerts.alert_id"], name=op.f("fk_alert_notifications_alert_id_alerts"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["notification_channels.channel_id"],
            name=op.f("fk_alert_notifications_channel_id_notification_channels"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(["license_id"], ["licenses.license_id"], name=op.f("fk_alert_notifications_license_id_licenses")),
        sa.PrimaryKeyConstraint("notification_id", name=op.f("pk_alert_notifications")),
    )
    op.create_index("ix_alert_notifications_alert_id", "alert_notifications", ["alert_id"], unique=False)
    op.create_index(
        "ix_alert_notifications_next_attempt_at_pending",
        "alert_notifications",
        ["next_attempt_at"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_table(
        "alert_rule_states",
        sa.Column("rule_id", sa.BigInteger(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("group_key", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("active_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_true_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_value", sa.Double(), nullable=True),
        sa.Column("last_evaluated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("alert_id", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["alert_id"], ["alerts.alert_id"], name=op.f("fk_alert_rule_states_alert_id_alerts"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["rule_id"], ["alert_rules.rule_id"], name=op.f("fk_alert_rule_states_rule_id_alert_rules"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("rule_id", "fingerprint", name=op.f("pk_alert_rule_states")),
    )
    op.create_table(
        "alert_deliveries",
        sa.Column("delivery_id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("notification_id", sa.BigInteger(), nullable=True),
        sa.Column("alert_id", sa.BigInteger(), nullable=True),
        sa.Column("license_id", sa.BigInteger(), nullable=True),
        sa.Column("channel_id", sa.BigInteger(), nullable=True),
        sa.Column("channel_name", sa.String(length=100), nullable=False),
        sa.Column("channel_type", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("smtp_reply", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("latency_ms", sa.Double(), nullable=True),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["alert_id"], ["alerts.alert_id"], name=op.f("fk_alert_deliveries_alert_id_alerts"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["notification_channels.channel_id"],
            name=op.f("fk_alert_deliveries_channel_id_notification_channels"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(["license_id"], ["licenses.license_id"], name=op.f("fk_alert_deliveries_license_id_licenses")),
        sa.ForeignKeyConstraint(
            ["notification_id"],
            ["alert_notifications.notification_id"],
            name=op.f("fk_alert_deliveries_notification_id_alert_notifications"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("delivery_id", name=op.f("pk_alert_deliveries")),
    )
    op.create_index("ix_alert_deliveries_alert_id_attempted_at", "alert_deliveries", ["alert_id", "attempted_at"], unique=False)
    op.create_index("ix_alert_deliveries_notification_id", "alert_deliveries", ["notification_id"], unique=False)
    op.add_column(
        "alert_rules", sa.Column("repeat_interval_minutes", sa.Integer(), server_default=sa.text("240"), nullable=False)
    )
    op.add_column(
        "alerts",
        sa.Column("annotations", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    )
    op.add_column("alerts", sa.Column("last_evaluated_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("alerts", sa.Column("last_notified_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("alerts", sa.Column("silenced_by", sa.BigInteger(), nullable=True))
    op.create_foreign_key(
        op.f("fk_alerts_silenced_by_silences"), "alerts", "silences", ["silenced_by"], ["silence_id"], ondelete="SET NULL"
    )


def downgrade() -> None:
    op.drop_constraint(op.f("fk_alerts_silenced_by_silences"), "alerts", type_="foreignkey")
    op.drop_column("alerts", "silenced_by")
    op.drop_column("alerts", "last_notified_at")
    op.drop_column("alerts", "last_evaluated_at")
    op.drop_column("alerts", "annotations")
    op.drop_column("alert_rules", "repeat_interval_minutes")
    op.drop_index("ix_alert_deliveries_notification_id", table_name="alert_deliveries")
    op.drop_index("ix_alert_deliveries_alert_id_attempted_at", table_name="alert_deliveries")
    op.drop_table("alert_deliveries")
    op.drop_table("alert_rule_states")
    op.drop_index(
        "ix_alert_notifications_next_attempt_at_pending",
        table_name="alert_notifications",
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.drop_index("ix_alert_notifications_alert_id", table_name="alert_notifications")
    op.drop_table("alert_notifications")
    op.drop_index("ix_alert_events_rule_id_occurred_at", table_name="alert_events")
    op.drop_index("ix_alert_events_alert_id_occurred_at", table_name="alert_events")
    op.drop_table("alert_events")
    op.drop_index("ix_silences_ends_at", table_name="silences")
    op.drop_table("silences")
    op.drop_table("notification_channels")
    op.drop_index("ix_audit_log_license_id_occurred_at", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_table("job_runs")
