"""``alert_rules`` (a JSON condition over telemetry) and ``alerts`` (one raised alert and its lifecycle)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, Boolean, Double, ForeignKey, Identity, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from fernando_telemetry.core.enums import AlertStatus, Severity
from fernando_telemetry.storage.models.base import (
    Base,
    created_at_column,
    jsonb_column,
    updated_at_column,
    vocabulary,
)

if TYPE_CHECKING:
    from fernando_telemetry.storage.models.platform import License, User

__all__ = ["Alert", "AlertRule"]


class AlertRule(Base):
    """A rule: a JSON condition, a severity, channels, and how often and over what window it runs."""

    __tablename__ = "alert_rules"
    __table_args__ = (
        UniqueConstraint("license_id", "name", name="uq_alert_rules_license_id_name", postgresql_nulls_not_distinct=True),
        # serves: the evaluator's "enabled rules, never evaluated first, then least recently evaluated"
        # (partial: disabled rules cost nothing)
        Index(
            "ix_alert_rules_enabled_last_evaluated_at",
            text("last_evaluated_at NULLS FIRST"),
            postgresql_where=text("enabled"),
        ),
    )

    rule_id: Mapped[int] = mapped_column(BigInteger, Identity(always=False), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    condition_config: Mapped[dict[str, Any]] = jsonb_column()
    severity: Mapped[Severity] = mapped_column(vocabulary(Severity, "severity"), server_default=text("'warning'"))
    notification_channels: Mapped[list[Any]] = jsonb_column("[]")
    evaluation_window_minutes: Mapped[int] = mapped_column(Integer, server_default=text("5"))
    evaluation_interval_seconds: Mapped[int] = mapped_column(Integer, server_default=text("60"))
    pending_period_minutes: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    owner_user_id: Mapped[str | None] = mapped_column(ForeignKey("users.user_id", ondelete="SET NULL"))
    license_id: Mapped[int | None] = mapped_column(ForeignKey("licenses.license_id"))
    labels: Mapped[dict[str, Any]] = jsonb_column()
    annotations: Mapped[dict[str, Any]] = jsonb_column()
    last_evaluated_at: Mapped[datetime | None]
    last_triggered_at: Mapped[datetime | None]
    last_evaluation_status: Mapped[str | None] = mapped_column(String(32))
    last_error: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()

    license: Mapped[License | None] = relationship(back_populates="alert_rules", lazy="raise")
    alerts: Mapped[list[Alert]] = relationship(back_populates="rule", passive_deletes=True, lazy="raise")


class Alert(Base):
    """One alert raised by a rule for one group key; deleting the rule keeps the alert's history."""

    __tablename__ = "alerts"
    __table_args__ = (
        # serves: "the open alert of this rule and group key" -- and guarantees there is at most one
        Index(
            "uq_alerts_rule_id_fingerprint_open",
            "rule_id",
            "fingerprint",
            unique=True,
            postgresql_where=text("status <> 'resolved'"),
        ),
        # serves: the active-alerts list, newest first (dashboard, GET /api/v1/alerts?status=active)
        Index(
            "ix_alerts_triggered_at_active",
            text("triggered_at DESC"),
            postgresql_where=text("status IN ('active', 'acknowledged')"),
        ),
    )

    alert_id: Mapped[int] = mapped_column(BigInteger, Identity(always=False), primary_key=True)
    rule_id: Mapped[int | None] = mapped_column(ForeignKey("alert_rules.rule_id", ondelete="SET NULL"))
    status: Mapped[AlertStatus] = mapped_column(vocabulary(AlertStatus, "status"), server_default=text("'active'"))
    severity: Mapped[Severity] = mapped_column(vocabulary(Severity, "severity"))
    title: Mapped[str] = mapped_column(String(300))
    message: Mapped[str | None] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(64))
    group_key: Mapped[dict[str, Any]] = jsonb_column()
    observed_value: Mapped[float | None] = mapped_column(Double)
    threshold_value: Mapped[float | None] = mapped_column(Double)
    triggered_at: Mapped[datetime]
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(ForeignKey("users.user_id", ondelete="SET NULL"))
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(ForeignKey("users.user_id", ondelete="SET NULL"))
    assigned_to: Mapped[str | None] = mapped_column(ForeignKey("users.user_id", ondelete="SET NULL"))
    resolution_notes: Mapped[str | None] = mapped_column(Text)
    affected_service: Mapped[str | None] = mapped_column(String(100))
    error_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    notification_status: Mapped[dict[str, Any]] = jsonb_column()
    license_id: Mapped[int | None] = mapped_column(ForeignKey("licenses.license_id"))
    labels: Mapped[dict[str, Any]] = jsonb_column()
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()

    rule: Mapped[AlertRule | None] = relationship(back_populates="alerts", lazy="raise")
    license: Mapped[License | None] = relationship(back_populates="alerts", lazy="raise")
    assignee: Mapped[User | None] = relationship(foreign_keys=[assigned_to], lazy="raise")
