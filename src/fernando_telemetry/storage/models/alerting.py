"""Alerting tables: rules and their per-group state, alerts, their history, channels, notifications, silences.

``alert_rules`` (a JSON condition over telemetry), ``alert_rule_states`` (where each rule and group key
stands between evaluations: inactive, pending, firing), ``alerts`` (one raised alert and its lifecycle),
``alert_events`` (every transition, by whom, with the observed value), ``notification_channels`` (named
email, Slack and webhook targets), ``alert_notifications`` (the outbox of messages still to send),
``alert_deliveries`` (every send attempt and its outcome) and ``silences``.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Double,
    FetchedValue,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship, synonym

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


def _user_fk(table: str, column: str) -> ForeignKeyConstraint:
    """(license_id, column) -> users; MATCH SIMPLE: a row of no license keeps the user id, unlinked."""
    return ForeignKeyConstraint(
        ["license_id", column],
        ["users.license_id", "users.user_id"],
        name=f"fk_{table}_{column}_users",
        ondelete=f"SET NULL ({column})",
    )


__all__ = [
    "Alert",
    "AlertDelivery",
    "AlertEvent",
    "AlertNotification",
    "AlertRule",
    "AlertRuleState",
    "NotificationChannel",
    "Silence",
]


class AlertRule(Base):
    """A rule: a JSON condition, a severity, channels, and how often and over what window it runs."""

    __tablename__ = "alert_rules"
    __table_args__ = (
        UniqueConstraint("license_id", "name", name="uq_alert_rules_license_id_name", postgresql_nulls_not_distinct=True),
        _user_fk("alert_rules", "owner_user_id"),
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
    rule_name: Mapped[str] = synonym("name")
    """The seed's name for ``name``: ``AlertRule(rule_name=...)`` sets it, queries may filter on it."""
    description: Mapped[str | None] = mapped_column(Text)
    condition_config: Mapped[dict[str, Any]] = jsonb_column()
    severity: Mapped[Severity] = mapped_column(vocabulary(Severity, "severity"), server_default=text("'warning'"))
    notification_channels: Mapped[list[Any]] = jsonb_column("[]")
    # The window and the pending period: what the evaluator reads. The trigger alert_rules_sync_condition keeps
    # them equal to condition_config's window_minutes and for_minutes (either side may be set, see docs/ALERTING.md).
    evaluation_window_minutes: Mapped[int] = mapped_column(Integer, server_default=FetchedValue(), server_onupdate=FetchedValue())
    evaluation_interval_seconds: Mapped[int] = mapped_column(Integer, server_default=text("60"))
    pending_period_minutes: Mapped[int] = mapped_column(Integer, server_default=FetchedValue(), server_onupdate=FetchedValue())
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    owner_user_id: Mapped[str | None] = mapped_column(String(128))
    license_id: Mapped[int | None] = mapped_column(ForeignKey("licenses.license_id"))
    labels: Mapped[dict[str, Any]] = jsonb_column()
    annotations: Mapped[dict[str, Any]] = jsonb_column()
    last_evaluated_at: Mapped[datetime | None]
    last_triggered_at: Mapped[datetime | None]
    last_evaluation_status: Mapped[str | None] = mapped_column(String(32))
    last_error: Mapped[str | None] = mapped_column(Text)
    repeat_interval_minutes: Mapped[int] = mapped_column(Integer, server_default=text("240"))
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
        _user_fk("alerts", "acknowledged_by"),
        _user_fk("alerts", "resolved_by"),
        _user_fk("alerts", "assigned_to"),
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
    acknowledged_by: Mapped[str | None] = mapped_column(String(128))
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(128))
    assigned_to: Mapped[str | None] = mapped_column(String(128))
    resolution_notes: Mapped[str | None] = mapped_column(Text)
    affected_service: Mapped[str | None] = mapped_column(String(100))
    error_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    """failed notification attempts of the alert (deliveries with outcome failed or abandoned), over all channels"""
    notification_status: Mapped[dict[str, Any]] = jsonb_column()
    license_id: Mapped[int | None] = mapped_column(ForeignKey("licenses.license_id"))
    labels: Mapped[dict[str, Any]] = jsonb_column()
    annotations: Mapped[dict[str, Any]] = jsonb_column()
    last_evaluated_at: Mapped[datetime | None]
    last_notified_at: Mapped[datetime | None]
    silenced_by: Mapped[int | None] = mapped_column(ForeignKey("silences.silence_id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()

    rule: Mapped[AlertRule | None] = relationship(back_populates="alerts", lazy="raise")
    license: Mapped[License | None] = relationship(back_populates="alerts", lazy="raise")
    assignee: Mapped[User | None] = relationship(
        primaryjoin="and_(User.license_id == foreign(Alert.license_id), User.user_id == foreign(Alert.assigned_to))",
        viewonly=True,
        lazy="raise",
    )


class AlertRuleState(Base):
    """Where one rule and group key stands between evaluations; a row exists once the condition was true."""

    __tablename__ = "alert_rule_states"

    rule_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("alert_rules.rule_id", ondelete="CASCADE"), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    group_key: Mapped[dict[str, Any]] = jsonb_column()
    state: Mapped[str] = mapped_column(String(16))
    """inactive, pending or firing"""
    active_since: Mapped[datetime | None]
    """when the condition last turned true (start of pending)"""
    last_true_at: Mapped[datetime | None]
    """last evaluation at which the condition held (``keep_firing`` counts from here)"""
    last_value: Mapped[float | None] = mapped_column(Double)
    last_evaluated_at: Mapped[datetime | None]
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.alert_id", ondelete="SET NULL"))
    updated_at: Mapped[datetime] = updated_at_column()


class AlertEvent(Base):
    """One transition of a rule's group key or of an alert: who or what did it, from, to, when, the value seen."""

    __tablename__ = "alert_events"
    __table_args__ = (
        # serves: GET /api/v1/alerts/{id}/history, oldest first
        Index("ix_alert_events_alert_id_occurred_at", "alert_id", "occurred_at"),
        # serves: a rule's history (pending transitions have no alert yet), newest first
        Index("ix_alert_events_rule_id_occurred_at", "rule_id", text("occurred_at DESC")),
    )

    event_id: Mapped[int] = mapped_column(BigInteger, Identity(always=False), primary_key=True)
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.alert_id", ondelete="CASCADE"))
    rule_id: Mapped[int | None] = mapped_column(ForeignKey("alert_rules.rule_id", ondelete="SET NULL"))
    license_id: Mapped[int | None] = mapped_column(ForeignKey("licenses.license_id"))
    fingerprint: Mapped[str | None] = mapped_column(String(64))
    group_key: Mapped[dict[str, Any]] = jsonb_column()
    from_state: Mapped[str] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(200))
    """``evaluator``, ``user:<user_id>``, ``key:<api_key_id>`` or ``cli``"""
    note: Mapped[str | None] = mapped_column(Text)
    observed_value: Mapped[float | None] = mapped_column(Double)
    details: Mapped[dict[str, Any]] = jsonb_column()
    occurred_at: Mapped[datetime]


class NotificationChannel(Base):
    """A named target (email, Slack or webhook); secrets live apart from the config the API shows."""

    __tablename__ = "notification_channels"
    __table_args__ = (
        UniqueConstraint(
            "license_id", "name", name="uq_notification_channels_license_id_name", postgresql_nulls_not_distinct=True
        ),
    )

    channel_id: Mapped[int] = mapped_column(BigInteger, Identity(always=False), primary_key=True)
    license_id: Mapped[int | None] = mapped_column(ForeignKey("licenses.license_id"))
    name: Mapped[str] = mapped_column(String(100))
    type: Mapped[str] = mapped_column(String(16))
    """email, slack or webhook"""
    config: Mapped[dict[str, Any]] = jsonb_column()
    """what may be shown: recipients, SMTP host, webhook format, ..."""
    secrets: Mapped[str | None] = mapped_column(Text)
    """the secret fields (SMTP password, webhook URL with its token, signing secret), encrypted"""
    send_resolved: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()


class AlertNotification(Base):
    """The outbox: one message for one channel, written by the evaluation, sent after it committed."""

    __tablename__ = "alert_notifications"
    __table_args__ = (
        # serves: the dispatcher's "due messages, oldest first" (partial: sent and abandoned ones cost nothing)
        Index("ix_alert_notifications_next_attempt_at_pending", "next_attempt_at", postgresql_where=text("status = 'pending'")),
        # serves: an alert's notifications (its status page; the cascade when an alert is deleted)
        Index("ix_alert_notifications_alert_id", "alert_id"),
    )

    notification_id: Mapped[int] = mapped_column(BigInteger, Identity(always=False), primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.alert_id", ondelete="CASCADE"))
    channel_id: Mapped[int | None] = mapped_column(ForeignKey("notification_channels.channel_id", ondelete="SET NULL"))
    channel_name: Mapped[str] = mapped_column(String(100))
    license_id: Mapped[int | None] = mapped_column(ForeignKey("licenses.license_id"))
    kind: Mapped[str] = mapped_column(String(16))
    """firing, resolved or repeat"""
    payload: Mapped[dict[str, Any]] = jsonb_column()
    status: Mapped[str] = mapped_column(String(16), server_default=text("'pending'"))
    """pending, sent or failed (attempts exhausted)"""
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()


class AlertDelivery(Base):
    """One attempt to send one notification: the channel, the outcome, what the far side answered, how long it took."""

    __tablename__ = "alert_deliveries"
    __table_args__ = (
        # serves: an alert's delivery log, oldest first
        Index("ix_alert_deliveries_alert_id_attempted_at", "alert_id", "attempted_at"),
        # serves: the attempts of one notification (and SET NULL when the outbox row is removed)
        Index("ix_alert_deliveries_notification_id", "notification_id"),
    )

    delivery_id: Mapped[int] = mapped_column(BigInteger, Identity(always=False), primary_key=True)
    notification_id: Mapped[int | None] = mapped_column(ForeignKey("alert_notifications.notification_id", ondelete="SET NULL"))
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.alert_id", ondelete="CASCADE"))
    license_id: Mapped[int | None] = mapped_column(ForeignKey("licenses.license_id"))
    channel_id: Mapped[int | None] = mapped_column(ForeignKey("notification_channels.channel_id", ondelete="SET NULL"))
    channel_name: Mapped[str] = mapped_column(String(100))
    channel_type: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(16))
    """sent, failed (will retry) or abandoned (no retries left)"""
    http_status: Mapped[int | None] = mapped_column(Integer)
    smtp_reply: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    latency_ms: Mapped[float | None] = mapped_column(Double)
    attempted_at: Mapped[datetime]


class Silence(Base):
    """Matchers (on rule, labels, group key) and a time span; matching alerts are ``suppressed`` meanwhile."""

    __tablename__ = "silences"
    __table_args__ = (
        # serves: "silences in force now" at each evaluation
        Index("ix_silences_ends_at", "ends_at"),
    )

    silence_id: Mapped[int] = mapped_column(BigInteger, Identity(always=False), primary_key=True)
    license_id: Mapped[int | None] = mapped_column(ForeignKey("licenses.license_id"))
    matchers: Mapped[list[Any]] = jsonb_column("[]")
    """``[{"name": "rule_id" | "alertname" | "severity" | <label> | <group key field>, "value": ..., "op": "=" | "!=" | "=~" | "!~"}]``"""
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(200))
    comment: Mapped[str | None] = mapped_column(Text)
    expired_at: Mapped[datetime | None]
    """set when someone ends the silence early"""
    created_at: Mapped[datetime] = created_at_column()
