"""The JSON bodies of generic webhooks: the native format, and Alertmanager's webhook version 4 so that
receivers written for Alertmanager work unchanged. Pure.

One notification carries one alert. In the Alertmanager body, the group is that alert: ``groupLabels`` are
``alertname`` and the rule's group key, and ``groupKey`` is built from them like Alertmanager's own
(``{}:{alertname="High CPU Usage", host="web-1"}``), so the firing and the resolved message of one alert
share a ``groupKey``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fernando_telemetry.notify.message import AlertMessage

__all__ = ["FORMATS", "NATIVE_VERSION", "alertmanager_labels", "alertmanager_payload", "native_payload"]

FORMATS = ("native", "alertmanager")
NATIVE_VERSION = "1"
ZERO_TIME = "0001-01-01T00:00:00Z"
"""Alertmanager's ``endsAt`` of an alert that has not ended."""


def _rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def native_payload(message: AlertMessage, *, receiver: str, sent_at: datetime) -> dict[str, Any]:
    """The native body: what happened (``event``), to which alert, with its figures and links."""
    condition = message.condition
    return {
        "version": NATIVE_VERSION,
        "event": message.kind,
        "status": message.status,
        "receiver": receiver,
        "notification_id": message.notification_id,
        "sent_at": _rfc3339(sent_at),
        "alert": {
            "alert_id": message.alert_id,
            "rule_id": message.rule_id,
            "rule_name": message.rule_name,
            "title": message.title,
            "message": message.message,
            "severity": message.severity,
            "status": message.alert_status,
            "fingerprint": message.fingerprint,
            "group_key": dict(message.group_key),
            "labels": dict(message.labels),
            "annotations": dict(message.annotations),
            "value": message.observed_value,
            "threshold": message.threshold_value,
            "operator": message.operator,
            "source": condition.get("source"),
            "metric": condition.get("metric"),
            "aggregation": condition.get("aggregation"),
            "window_minutes": condition.get("window_minutes"),
            "service": message.affected_service,
            "license_id": message.license_id,
            "starts_at": _rfc3339(message.starts_at),
            "ends_at": _rfc3339(message.ends_at) if message.ends_at is not None else None,
        },
        "links": {
            "alert": message.links.alert_url,
            "api": message.links.api_url,
            "history": message.links.history_url,
            "runbook": message.links.runbook_url,
        },
    }


def alertmanager_labels(message: AlertMessage) -> dict[str, str]:
    """The alert's labels as Alertmanager has them: the rule's labels and group key, ``alertname`` and ``severity``."""
    labels = {str(key): str(value) for key, value in message.labels.items()}
    labels.update({str(key): str(value) for key, value in message.group_key.items()})
    labels["alertname"] = message.rule_name
    labels["severity"] = message.severity
    if message.rule_id is not None:
        labels.setdefault("rule_id", str(message.rule_id))
    if message.affected_service and "service" not in labels:
        labels["service"] = message.affected_service
    return labels


def _annotations(message: AlertMessage) -> dict[str, str]:
    annotations = {str(key): str(value) for key, value in message.annotations.items()}
    annotations.setdefault("summary", message.title)
    if message.message:
        annotations.setdefault("description", message.message)
    if message.observed_value is not None:
        annotations.setdefault("value", repr(message.observed_value))
    if message.threshold_value is not None:
        annotations.setdefault("threshold", repr(message.threshold_value))
    return annotations


def alertmanager_payload(message: AlertMessage, *, receiver: str) -> dict[str, Any]:
    """Alertmanager's webhook body, version 4, with this one alert."""
    labels = alertmanager_labels(message)
    group_labels = {"alertname": message.rule_name, **{str(k): str(v) for k, v in message.group_key.items()}}
    group_key = "{}:{" + ", ".join(f'{key}="{_quote(value)}"' for key, value in sorted(group_labels.items())) + "}"
    annotations = _annotations(message)
    ends_at = message.ends_at if message.status == "resolved" else None
    alert = {
        "status": message.status,
        "labels": labels,
        "annotations": annotations,
        "startsAt": _rfc3339(message.starts_at),
        "endsAt": _rfc3339(ends_at) if ends_at is not None else ZERO_TIME,
        "generatorURL": message.links.alert_url or message.links.external_url or "",
        "fingerprint": message.fingerprint,
    }
    return {
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": 0,
        "status": message.status,
        "receiver": receiver,
        "groupLabels": group_labels,
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": message.links.external_url or "",
        "alerts": [alert],
    }


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')
