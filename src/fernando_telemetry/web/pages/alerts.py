"""Alerts: the lists by status with acknowledge, assign, resolve and silence forms, one alert's history and
delivery log, and the silences in force. The actions themselves are ``act`` and ``expire_silence``, called by
the POST routes. Imports services and core.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from fernando_telemetry.core.enums import AlertStatus, Severity
from fernando_telemetry.core.errors import InvalidInput, field_problem
from fernando_telemetry.services import alerts, silences
from fernando_telemetry.services.alerts import AlertFilters, AlertView
from fernando_telemetry.web.page import Page, PageRequest

__all__ = [
    "ACTIONS",
    "DONE_MESSAGES",
    "SILENCE_DURATIONS",
    "TABS",
    "act",
    "active_alerts",
    "build",
    "build_detail",
    "expire_silence",
    "silence_matchers",
]

TABS: dict[str, tuple[str, ...]] = {
    "open": (AlertStatus.ACTIVE.value, AlertStatus.ACKNOWLEDGED.value, AlertStatus.SUPPRESSED.value),
    "active": (AlertStatus.ACTIVE.value,),
    "acknowledged": (AlertStatus.ACKNOWLEDGED.value,),
    "suppressed": (AlertStatus.SUPPRESSED.value,),
    "resolved": (AlertStatus.RESOLVED.value,),
    "all": (),
}
SILENCE_DURATIONS: dict[str, timedelta] = {
    "1h": timedelta(hours=1),
    "4h": timedelta(hours=4),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
}
ACTIONS = ("acknowledge", "assign", "resolve", "silence")
DONE_MESSAGES = {
    "acknowledge": "The alert is acknowledged.",
    "assign": "The alert's assignee is changed.",
    "resolve": "The alert is resolved.",
    "silence": "A silence now covers this alert.",
    "expire": "The silence has ended.",
}
_PAGE_SIZE = 50


def active_alerts(request: PageRequest, *, limit: int = 10) -> tuple[list[AlertView], int, bool]:
    """The newest open, unsilenced alerts (active or acknowledged), how many are active, and whether that count
    stopped at the page limit."""
    license_id = request.license_scope
    shown = alerts.list_alerts(
        request.session,
        filters=AlertFilters(
            license_id=license_id, statuses=(AlertStatus.ACTIVE.value, AlertStatus.ACKNOWLEDGED.value), limit=limit
        ),
        cursor_key=request.cursor_key,
    )
    counted = alerts.list_alerts(
        request.session,
        filters=AlertFilters(license_id=license_id, statuses=(AlertStatus.ACTIVE.value,), limit=alerts.MAX_LIMIT),
        cursor_key=request.cursor_key,
    )
    return shown.alerts, len(counted.alerts), counted.next_cursor is not None


def build(request: PageRequest) -> Page:
    tab = request.choice("status", list(TABS), "open")
    severity = request.text("severity")
    license_id = request.license_scope
    page = alerts.list_alerts(
        request.session,
        filters=AlertFilters(
            license_id=license_id,
            statuses=TABS[tab],
            severities=(severity,) if severity else (),
            cursor=request.text("cursor"),
            limit=_PAGE_SIZE,
        ),
        cursor_key=request.cursor_key,
    )
    in_force = silences.list_silences(request.session, license_id=license_id, now=request.now, state="active", limit=50)
    pending = silences.list_silences(request.session, license_id=license_id, now=request.now, state="pending", limit=50)
    return Page(
        title="Alerts",
        template="alerts/page.html",
        context={
            "alerts": page.alerts,
            "next_cursor": page.next_cursor,
            "tab": tab,
            "tabs": list(TABS),
            "severity": severity or "",
            "severities": [member.value for member in Severity],
            "silences": in_force.silences + pending.silences,
            "durations": list(SILENCE_DURATIONS),
            "done": DONE_MESSAGES.get(request.text("done") or ""),
            "return_to": _return_to(request, "/ui/alerts"),
        },
        fragments={"alerts-table": "alerts/_table.html", "alerts-silences": "alerts/_silences.html"},
        refresh=request.text("cursor") is None,
    )


def build_detail(request: PageRequest, alert_id: int, *, action_error: Exception | None = None) -> Page:
    found = alerts.history(request.session, alert_id=alert_id, license_id=request.license_scope)
    return Page(
        title=f"Alert {alert_id}",
        template="alerts/detail.html",
        context={
            "alert": found.alert,
            "events": found.events,
            "deliveries": found.deliveries,
            "durations": list(SILENCE_DURATIONS),
            "done": DONE_MESSAGES.get(request.text("done") or ""),
            "action_error": action_error,
            "return_to": f"/ui/alerts/{alert_id}",
        },
        fragments={"alert-history": "alerts/_history.html"},
    )


def _return_to(request: PageRequest, path: str) -> str:
    kept = [(key, value) for key, value in request.query if key in ("status", "severity")]
    return path + ("?" + urlencode(kept) if kept else "")


def silence_matchers(alert: AlertView) -> list[dict[str, str]]:
    """Matchers that silence this alert's rule and group (or its title, for an alert without a rule)."""
    if alert.rule_id is None:
        return [{"name": "alertname", "op": "=", "value": alert.title}]
    matchers = [{"name": "rule_id", "op": "=", "value": str(alert.rule_id)}]
    for key, value in sorted(alert.group_key.items()):
        matchers.append({"name": str(key), "op": "=", "value": "" if value is None else str(value)})
    return matchers


def act(request: PageRequest, *, alert_id: int, action: str, form: Mapping[str, str]) -> Any:
    """Apply one action of the alert page's forms with the signed-in key; the caller commits."""
    license_id = request.license_scope
    caller = request.caller
    note = (form.get("note") or "").strip() or None
    session, now = request.session, request.now
    if action == "acknowledge":
        return alerts.acknowledge(session, caller=caller, alert_id=alert_id, license_id=license_id, note=note)
    if action == "assign":
        assignee = (form.get("user_id") or "").strip() or None
        return alerts.assign(session, caller=caller, alert_id=alert_id, license_id=license_id, assignee=assignee, note=note)
    if action == "resolve":
        return alerts.resolve(session, caller=caller, alert_id=alert_id, license_id=license_id, note=note)
    if action == "silence":
        duration = SILENCE_DURATIONS.get(form.get("duration") or "")
        if duration is None:
            raise InvalidInput(
                f"duration: choose one of {', '.join(SILENCE_DURATIONS)}",
                details=[field_problem("duration", "unknown value")],
            )
        alert = alerts.get(session, alert_id=alert_id, license_id=license_id)
        view = silences.create(
            session,
            caller=caller,
            license_id=alert.license_id,
            matchers=silence_matchers(alert),
            ends_at=now + duration,
            comment=(form.get("comment") or "").strip() or f"silenced from the dashboard for {form.get('duration')}",
            quotas=request.quotas,
        )
        return view
    raise InvalidInput(f"unknown action {action[:40]!r}", details=[field_problem("action", "unknown")])


def expire_silence(request: PageRequest, *, silence_id: int) -> Any:
    view = silences.expire(request.session, caller=request.caller, silence_id=silence_id, license_id=request.license_scope)
    return view
