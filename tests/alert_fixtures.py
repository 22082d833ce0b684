"""Builders shared by the alert lifecycle, silence, API and CLI tests: rules, channels, samples and alerts
written straight into the tables, so every test controls exactly what the evaluator sees."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from fernando_telemetry.core.alert_condition import fingerprint, parse_condition
from fernando_telemetry.services import keys
from fernando_telemetry.storage.models import Alert, AlertEvent, AlertNotification, AlertRule, NotificationChannel, SystemMetric

__all__ = [
    "MINUTE",
    "T0",
    "add_alert",
    "add_channel",
    "add_license",
    "add_rule",
    "add_sample",
    "alerts_of",
    "events_of",
    "outbox_of",
    "unique",
]

MINUTE = timedelta(minutes=1)
T0 = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=2)
"""An instant two days back at noon: inside the partitions every test database has."""


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def add_license(session: Session, name: str | None = None) -> int:
    return keys.create_license(session, name=name or unique("alerts"))


def add_rule(
    session: Session,
    *,
    license_id: int | None,
    condition: dict[str, Any],
    name: str | None = None,
    severity: str = "warning",
    channels: list[str] | None = None,
    interval_s: int = 60,
    repeat_minutes: int = 240,
    labels: dict[str, Any] | None = None,
    annotations: dict[str, Any] | None = None,
    enabled: bool = True,
    validate: bool = True,
) -> AlertRule:
    config = parse_condition(condition).to_config() if validate else condition
    rule = AlertRule(
        name=name or unique("rule"),
        condition_config=config,
        severity=severity,
        notification_channels=channels or [],
        evaluation_interval_seconds=interval_s,
        repeat_interval_minutes=repeat_minutes,
        license_id=license_id,
        labels=labels or {},
        annotations=annotations or {},
        enabled=enabled,
    )
    session.add(rule)
    session.flush()
    return rule


def add_channel(
    session: Session, *, license_id: int | None, name: str | None = None, send_resolved: bool = True
) -> NotificationChannel:
    channel = NotificationChannel(
        license_id=license_id,
        name=name or unique("hook"),
        type="webhook",
        config={"url": "http://127.0.0.1:9/hook", "format": "native"},
        send_resolved=send_resolved,
    )
    session.add(channel)
    session.flush()
    return channel


def add_sample(
    session: Session, *, metric: str, at: datetime, value: float, license_id: int | None = None, **fields: Any
) -> None:
    session.add(SystemMetric(metric_name=metric, metric_type="gauge", value=value, timestamp=at, license_id=license_id, **fields))
    session.flush()


def add_alert(
    session: Session,
    *,
    rule: AlertRule,
    group_key: dict[str, str] | None = None,
    status: str = "active",
    severity: str | None = None,
    triggered_at: datetime = T0,
    service: str | None = None,
    value: float | None = 90.0,
) -> Alert:
    """An open alert as the evaluator would have raised it (for tests of the people-side changes)."""
    key = group_key or {}
    alert = Alert(
        rule_id=rule.rule_id,
        status=status,
        severity=severity or rule.severity,
        title=rule.name,
        fingerprint=fingerprint(rule.rule_id, key),
        group_key=key,
        observed_value=value,
        threshold_value=80.0,
        triggered_at=triggered_at,
        affected_service=service,
        license_id=rule.license_id,
        labels={**key, "alertname": rule.name, "severity": severity or rule.severity, "rule_id": str(rule.rule_id)},
    )
    session.add(alert)
    session.flush()
    return alert


def alerts_of(session: Session, rule: AlertRule) -> list[Alert]:
    return list(
        session.scalars(
            select(Alert).where(Alert.rule_id == rule.rule_id).order_by(Alert.alert_id).execution_options(populate_existing=True)
        )
    )


def events_of(session: Session, alert_id: int) -> list[tuple[str, str, str, str]]:
    """``(action, from, to, actor)`` of an alert's events, oldest first."""
    rows = session.scalars(
        select(AlertEvent).where(AlertEvent.alert_id == alert_id).order_by(AlertEvent.occurred_at, AlertEvent.event_id)
    )
    return [(row.details.get("action"), row.from_state, row.to_state, row.actor) for row in rows]


def outbox_of(session: Session, alert_id: int) -> list[tuple[str, str]]:
    """``(kind, status)`` of an alert's queued notifications, in order."""
    rows = session.scalars(
        select(AlertNotification).where(AlertNotification.alert_id == alert_id).order_by(AlertNotification.notification_id)
    )
    return [(row.kind, row.status) for row in rows]
