"""The demo's alert rules and notification channel, set up through the HTTP API as a user would.

Idempotent: what exists by name is kept (the channel's URL is updated, since the shop's ports change
between runs), what is missing is created. ``Payments error rate`` is the rule that fires during the
planned error burst and resolves after it; the others show one rule per telemetry source.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = ["CHANNEL_NAME", "FIRING_RULE", "RulesOutcome", "demo_rules", "ensure"]

CHANNEL_NAME = "shop-ops-webhook"
FIRING_RULE = "Payments error rate"


def demo_rules(*, license_id: int, evaluation_interval_s: int) -> list[dict[str, Any]]:
    """The demo's rules as ``POST /api/v1/alert-rules`` bodies."""
    common = {"license_id": license_id, "evaluation_interval_seconds": evaluation_interval_s, "enabled": True}
    return [
        {
            **common,
            "name": FIRING_RULE,
            "description": "More than 20% of the payments service's requests failed over the last minute.",
            "severity": "critical",
            "condition_config": {
                "source": "traces",
                "filters": {"service_name": "payments", "span_kind": "server"},
                "aggregation": "error_rate",
                "operator": ">",
                "threshold": 0.2,
                "window_minutes": 1,
                "for_minutes": 0,
                "min_points": 5,
                "no_data": "ok",
            },
            "notification_channels": [CHANNEL_NAME],
            "labels": {"team": "payments", "service": "payments"},
            "annotations": {
                "summary": "Payments are failing: checkouts cannot complete",
                "runbook_url": "https://runbooks.example.com/payments/error-rate",
            },
        },
        {
            **common,
            "name": "Web p95 latency",
            "description": "The shop's edge answers slowly: p95 of its requests over 5 minutes above 2 s.",
            "severity": "warning",
            "condition_config": {
                "source": "traces",
                "filters": {"service_name": "web", "span_kind": "server"},
                "aggregation": "p95",
                "operator": ">",
                "threshold": 2000,
                "window_minutes": 5,
                "for_minutes": 2,
                "min_points": 20,
            },
            "notification_channels": [CHANNEL_NAME],
            "labels": {"team": "web"},
            "annotations": {"summary": "Shoppers wait more than 2 s for one request in twenty"},
        },
        {
            **common,
            "name": "High CPU Usage",
            "description": "The seed's example, as written: average cpu_usage above 80 (defaults fill the rest).",
            "severity": "warning",
            "condition_config": {"metric": "cpu_usage", "operator": ">", "threshold": 80},
            "labels": {"team": "platform"},
            "annotations": {"summary": "A host of the shop is busy"},
        },
        {
            **common,
            "name": "Failed logins",
            "description": "More than 30 failed logins in 5 minutes: someone may be guessing passwords.",
            "severity": "error",
            "condition_config": {
                "source": "telemetry_events",
                "filters": {"event_type": "security_event", "event_name": "login_failed"},
                "aggregation": "count",
                "operator": ">",
                "threshold": 30,
                "window_minutes": 5,
            },
            "labels": {"team": "security"},
            "annotations": {"summary": "Many failed logins"},
        },
        {
            **common,
            "name": "No orders",
            "description": "The shop's hourly order count stayed at zero: checkout may be broken.",
            "severity": "info",
            "condition_config": {
                "source": "business_metrics",
                "metric": "orders",
                "filters": {"period_type": "hourly"},
                "aggregation": "max",
                "operator": "<",
                "threshold": 1,
                "window_minutes": 120,
                "no_data": "ok",
            },
            "labels": {"team": "business"},
            "annotations": {"summary": "No orders this hour"},
        },
    ]


@dataclass(frozen=True)
class RulesOutcome:
    available: bool
    """False when this server has no alerting API (nothing was set up)."""
    created: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()
    channel: str | None = None


class SetupFailed(Exception):
    """The API refused part of the demo's setup; the message says which request and why."""


def _items(body: Any) -> list[dict[str, Any]]:
    """The rows of a list answer, whether a bare list or a page ``{"items": [...]}``."""
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        for key in ("items", "alert_rules", "rules", "notification_channels", "data"):
            if isinstance(body.get(key), list):
                return body[key]
    return []


def _check(response: httpx.Response, what: str) -> Any:
    if response.status_code >= 400:
        try:
            error = response.json().get("error", {})
            reason = error.get("message") or response.text
            details = error.get("details")
        except ValueError:
            reason, details = response.text, None
        raise SetupFailed(f"{what}: HTTP {response.status_code}: {reason}" + (f" {details}" if details else ""))
    return response.json() if response.content else None


def ensure(
    base_url: str,
    admin_key: str,
    *,
    license_id: int,
    webhook_url: str,
    evaluation_interval_s: int,
    note: Callable[[str], None],
) -> RulesOutcome:
    """Create what is missing of the demo's channel and rules for ``license_id``; keep what exists."""
    headers = {"Authorization": f"Bearer {admin_key}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=30.0) as client:
        listed = client.get("/api/v1/alert-rules", params={"license_id": license_id, "limit": 200})
        if listed.status_code in (404, 405):
            note("this server has no alerting API: the demo runs without alert rules")
            return RulesOutcome(available=False)
        existing = {rule.get("name") for rule in _items(_check(listed, "listing alert rules"))}
        channel = _ensure_channel(client, license_id=license_id, url=webhook_url)
        created, kept = [], []
        for rule in demo_rules(license_id=license_id, evaluation_interval_s=evaluation_interval_s):
            if rule["name"] in existing:
                kept.append(rule["name"])
                continue
            if channel is None:
                rule = {**rule, "notification_channels": []}
            _check(client.post("/api/v1/alert-rules", json=rule), f"creating the rule {rule['name']!r}")
            created.append(rule["name"])
    return RulesOutcome(available=True, created=tuple(created), kept=tuple(kept), channel=channel)


def _ensure_channel(client: httpx.Client, *, license_id: int, url: str) -> str | None:
    """The demo's webhook channel pointing at the shop's receiver; None when channels are not available."""
    scope = {"license_id": license_id}
    listed = client.get("/api/v1/notification-channels", params=scope)
    if listed.status_code in (404, 405):
        return None
    settings = {"url": url, "format": "native", "send_resolved": True, "enabled": True}
    if any(channel.get("name") == CHANNEL_NAME for channel in _items(_check(listed, "listing notification channels"))):
        # the shop listens on a new port each run
        _check(
            client.patch(f"/api/v1/notification-channels/{CHANNEL_NAME}", params=scope, json=settings),
            "updating the demo channel",
        )
    else:
        body = {"name": CHANNEL_NAME, "type": "webhook", **settings}
        _check(client.post("/api/v1/notification-channels", params=scope, json=body), "creating the demo channel")
    return CHANNEL_NAME
