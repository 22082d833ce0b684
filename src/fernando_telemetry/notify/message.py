"""What a notification says: ``AlertMessage``, the alert as it stood when the notification was queued, and the
pure helpers every format shares (values, the condition, the group, links). Imports nothing of the project.

The outbox stores ``AlertMessage.to_payload()`` (plain JSON); the dispatcher rebuilds the message with
``AlertMessage.from_payload`` and adds the links of the server it runs on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "KINDS",
    "AlertMessage",
    "Links",
    "condition_text",
    "format_value",
    "group_text",
    "links_for",
    "channel_test_message",
]

KINDS = ("firing", "resolved", "repeat", "test")
"""``firing`` (the alert started), ``resolved`` (it ended), ``repeat`` (still firing, unacknowledged), ``test``."""

PAYLOAD_VERSION = 1


@dataclass(frozen=True)
class Links:
    alert_url: str | None = None
    """The alert's page on the dashboard."""
    api_url: str | None = None
    """The alert in the API (``GET /api/v1/alerts/{id}``)."""
    history_url: str | None = None
    """Its transitions and delivery log (``GET /api/v1/alerts/{id}/history``)."""
    runbook_url: str | None = None
    """The rule's ``runbook_url`` annotation, when it has one."""
    external_url: str | None = None
    """The server's base URL."""


@dataclass(frozen=True)
class AlertMessage:
    """One alert as it stood when its notification was queued, plus what kind of notification this is."""

    kind: str
    alert_id: int | None
    rule_id: int | None
    rule_name: str
    title: str
    severity: str
    alert_status: str
    """The alert's status when queued: active, acknowledged, suppressed or resolved."""
    fingerprint: str
    starts_at: datetime
    ends_at: datetime | None = None
    message: str | None = None
    group_key: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    observed_value: float | None = None
    threshold_value: float | None = None
    condition: Mapping[str, Any] = field(default_factory=dict)
    """The rule's normalized condition (source, metric, aggregation, operator, threshold, window_minutes, ...)."""
    affected_service: str | None = None
    license_id: int | None = None
    queued_at: datetime | None = None
    notification_id: int | None = None
    links: Links = field(default_factory=Links)

    @property
    def status(self) -> str:
        """``resolved`` for a resolved notification, else ``firing`` (repeats and tests included)."""
        return "resolved" if self.kind == "resolved" else "firing"

    @property
    def operator(self) -> str | None:
        value = self.condition.get("operator")
        return str(value) if value is not None else None

    def with_delivery(self, *, notification_id: int | None, links: Links) -> AlertMessage:
        return replace(self, notification_id=notification_id, links=links)

    def to_payload(self) -> dict[str, Any]:
        """Plain JSON for the outbox (links are left out: they depend on the server that sends)."""
        return {
            "version": PAYLOAD_VERSION,
            "kind": self.kind,
            "alert_id": self.alert_id,
            "rule_id": self.rule_id,
            "rule_name": self.rule_name,
            "title": self.title,
            "severity": self.severity,
            "alert_status": self.alert_status,
            "fingerprint": self.fingerprint,
            "starts_at": _iso(self.starts_at),
            "ends_at": _iso(self.ends_at),
            "message": self.message,
            "group_key": {str(k): _text(v) for k, v in self.group_key.items()},
            "labels": {str(k): _text(v) for k, v in self.labels.items()},
            "annotations": {str(k): _text(v) for k, v in self.annotations.items()},
            "observed_value": _finite(self.observed_value),
            "threshold_value": _finite(self.threshold_value),
            "condition": dict(self.condition),
            "affected_service": self.affected_service,
            "license_id": self.license_id,
            "queued_at": _iso(self.queued_at),
        }

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> AlertMessage:
        starts_at = _parse(payload.get("starts_at")) or _parse(payload.get("queued_at")) or datetime(1970, 1, 1, tzinfo=UTC)
        return cls(
            kind=str(payload.get("kind", "firing")),
            alert_id=payload.get("alert_id"),
            rule_id=payload.get("rule_id"),
            rule_name=str(payload.get("rule_name") or payload.get("title") or "alert"),
            title=str(payload.get("title") or payload.get("rule_name") or "alert"),
            severity=str(payload.get("severity", "warning")),
            alert_status=str(payload.get("alert_status", "active")),
            fingerprint=str(payload.get("fingerprint", "")),
            starts_at=starts_at,
            ends_at=_parse(payload.get("ends_at")),
            message=payload.get("message"),
            group_key=dict(payload.get("group_key") or {}),
            labels=dict(payload.get("labels") or {}),
            annotations=dict(payload.get("annotations") or {}),
            observed_value=payload.get("observed_value"),
            threshold_value=payload.get("threshold_value"),
            condition=dict(payload.get("condition") or {}),
            affected_service=payload.get("affected_service"),
            license_id=payload.get("license_id"),
            queued_at=_parse(payload.get("queued_at")),
        )


def links_for(message: AlertMessage, external_url: str | None) -> Links:
    """The links of ``message`` on a server reachable at ``external_url`` (no trailing slash needed)."""
    runbook = message.annotations.get("runbook_url") or None
    if not external_url:
        return Links(runbook_url=runbook)
    base = external_url.rstrip("/")
    if message.alert_id is None:
        return Links(runbook_url=runbook, external_url=base)
    return Links(
        alert_url=f"{base}/ui/alerts/{message.alert_id}",
        api_url=f"{base}/api/v1/alerts/{message.alert_id}",
        history_url=f"{base}/api/v1/alerts/{message.alert_id}/history",
        runbook_url=runbook,
        external_url=base,
    )


def channel_test_message(*, channel_name: str, now: datetime, external_url: str | None = None) -> AlertMessage:
    """A message for ``POST /api/v1/notification-channels/{name}/test`` and ``channels test``: no alert behind it."""
    message = AlertMessage(
        kind="test",
        alert_id=None,
        rule_id=None,
        rule_name="Test notification",
        title=f"Test notification for channel {channel_name}",
        severity="info",
        alert_status="active",
        fingerprint="0" * 64,
        starts_at=now,
        message="This is a test sent by Fernando Telemetry to check that the channel works. No alert is firing.",
        labels={"alertname": "Test notification", "severity": "info"},
        annotations={"summary": f"Test notification for channel {channel_name}"},
        queued_at=now,
    )
    return replace(message, links=links_for(message, external_url))


def format_value(value: float | None) -> str:
    """A number as a person reads it: ``93.2``, ``80``, ``1,234,567``, ``0.00123``; ``n/a`` for none."""
    if value is None:
        return "n/a"
    if not math.isfinite(value):
        return str(value)
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}"
    if abs(value) >= 1000:
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    return f"{value:.4g}" if abs(value) < 0.01 else f"{round(value, 3):g}"


def condition_text(message: AlertMessage) -> str:
    """``avg(cpu_usage) over 5 min > 80``, or ``> 80`` when the condition is not known."""
    condition = message.condition
    threshold = format_value(
        message.threshold_value if message.threshold_value is not None else _number(condition.get("threshold"))
    )
    operator = message.operator or ""
    metric = condition.get("metric")
    aggregation = condition.get("aggregation")
    window = condition.get("window_minutes")
    subject = ""
    if metric and aggregation:
        subject = f"{aggregation}({metric})"
    elif metric or aggregation:
        subject = str(metric or aggregation)
    if subject and window:
        subject += f" over {window} min"
    return " ".join(part for part in (subject, operator, threshold) if part)


def group_text(group_key: Mapping[str, Any]) -> str:
    """``host=web-1, service=api`` (sorted), or an empty string for a rule without group_by."""
    return ", ".join(f"{key}={group_key[key]}" for key in sorted(group_key))


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def _parse(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _finite(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
