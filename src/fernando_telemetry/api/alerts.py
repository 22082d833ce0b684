"""Alert routes: ``GET /api/v1/alerts`` (filtered, keyset pages), ``GET /api/v1/alerts/{id}``, its
``/history``, and the changes people make: ``/acknowledge``, ``/assign``, ``/resolve``.

A license key sees and changes only its license's alerts (another license's alert is a 404); an admin
key sees every license, or one with ``license_id``. Imports services and core.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from fernando_telemetry.api.deps import ReadCaller
from fernando_telemetry.api.query_params import check_names, integer
from fernando_telemetry.core import time_range
from fernando_telemetry.services import alerts

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])

_ALERT_ID = Path(ge=1, le=2**63 - 1, description="The alert's id")
_READ_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "A malformed or out-of-range parameter, an unknown parameter, or a cursor of another query"},
    401: {"description": "Missing or unknown API key"},
    403: {"description": "The key lacks the read scope, or asks for another license"},
}
_ONE_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or unknown API key"},
    403: {"description": "The key lacks the read scope"},
    404: {"description": "No such alert in the key's license"},
}
_CHANGE_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ONE_ERRORS,
    400: {"description": "A note that is too long, or a user_id that names no user of the alert's license"},
    409: {"description": "The alert is resolved (or, for acknowledge, already acknowledged)"},
    422: {"description": "The body does not match the schema"},
}


class AlertOut(BaseModel):
    alert_id: int
    rule_id: int | None = Field(description="null once the rule is deleted (the alert and its history stay)")
    rule_name: str | None
    status: str = Field(description="active, acknowledged, suppressed (a silence covers it) or resolved")
    severity: str
    title: str
    message: str | None
    fingerprint: str = Field(description="Identity of the rule and group key: one open alert per fingerprint")
    group_key: dict[str, Any]
    labels: dict[str, Any] = Field(description="The rule's labels, the group key, alertname, severity and rule_id")
    annotations: dict[str, Any]
    observed_value: float | None = Field(description="The value at the last evaluation while it was open")
    threshold_value: float | None
    affected_service: str | None
    license_id: int | None
    triggered_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    assigned_to: str | None
    resolved_at: datetime | None
    resolved_by: str | None = Field(description="The user who resolved it by hand; null when it resolved by itself")
    resolution_notes: str | None
    silenced_by: int | None = Field(description="The silence that suppresses it (kept after it resolves)")
    notification_status: dict[str, Any]
    error_count: int = Field(
        description="Failed notification attempts of the alert (deliveries failed or abandoned), over all its channels"
    )
    last_evaluated_at: datetime | None
    last_notified_at: datetime | None
    created_at: datetime = Field(description="When the row was written (the evaluator raised the alert)")
    updated_at: datetime = Field(description="When the row last changed (evaluation, notification or a person's action)")


class AlertPageOut(BaseModel):
    alerts: list[AlertOut] = Field(description="Newest triggered first")
    next_cursor: str | None = Field(
        description="Pass as `cursor` (with the same filters) for the next page; null on the last page"
    )


class EventOut(BaseModel):
    event_id: int
    occurred_at: datetime
    from_state: str
    to_state: str
    actor: str = Field(description="evaluator, key:<api_key_id>, user:<user_id> or cli")
    note: str | None
    observed_value: float | None
    details: dict[str, Any] = Field(
        description="`action` (pending, fire, acknowledge, assign, suppress, resolve, ...) and what changed"
    )


class DeliveryOut(BaseModel):
    delivery_id: int
    attempted_at: datetime
    channel_name: str
    channel_type: str
    kind: str = Field(description="firing, resolved or repeat")
    attempt: int
    outcome: str = Field(description="sent, failed (will retry) or abandoned")
    http_status: int | None
    smtp_reply: str | None
    error: str | None
    latency_ms: float | None


class HistoryOut(BaseModel):
    alert: AlertOut
    events: list[EventOut] = Field(description="Every transition and change, oldest first")
    deliveries: list[DeliveryOut] = Field(description="Every notification attempt, oldest first")


class AcknowledgeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: str | None = Field(None, max_length=128, description="The user who acknowledges (a user of the alert's license)")
    note: str | None = Field(None, max_length=alerts.MAX_NOTE_CHARS)


class AssignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: str | None = Field(max_length=128, description="The assignee (a user of the alert's license); null unassigns")
    note: str | None = Field(None, max_length=alerts.MAX_NOTE_CHARS)


class ResolveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: str | None = Field(None, max_length=128, description="The user who resolves (a user of the alert's license)")
    note: str | None = Field(None, max_length=alerts.MAX_NOTE_CHARS, description="Resolution notes")


def _out(view: alerts.AlertView) -> AlertOut:
    return AlertOut.model_validate(asdict(view))


def _list_param(text: str | None) -> list[str]:
    return [] if text is None else [part.strip() for part in text.split(",") if part.strip()]


@router.get(
    "",
    response_model=AlertPageOut,
    responses=_READ_ERRORS,
    summary="Alerts, newest first, filtered",
    description=(
        "Alerts matching every filter given. `status` and `severity` take one value or several separated by commas "
        "(`status=active,acknowledged`). `from`/`to` bound `triggered_at` as `[from, to)`. A license key reads its "
        "own license's alerts; an admin key reads every license, or `license_id=N`. Keyset pages: pass "
        "`next_cursor` back as `cursor` with the same filters."
    ),
)
def list_alerts(
    request: Request,
    caller: ReadCaller,
    status: str | None = Query(None, description="active, acknowledged, suppressed, resolved", examples=["active,acknowledged"]),
    severity: str | None = Query(None, description="info, warning, error, critical", examples=["critical"]),
    rule_id: str | None = Query(None, description="Alerts of this rule"),
    service: str | None = Query(None, description="The alert's affected_service", examples=["api"]),
    assigned_to: str | None = Query(None, description="Alerts assigned to this user"),
    from_: str | None = Query(None, alias="from", description="ISO 8601 instant: triggered at or after it"),
    to: str | None = Query(None, description="ISO 8601 instant: triggered before it"),
    license_id: str | None = Query(None, description="Admin keys: only this license's alerts"),
    cursor: str | None = Query(None, description="next_cursor of the previous page"),
    limit: str | None = Query(None, description=f"Alerts per page, 1 to {alerts.MAX_LIMIT} (default {alerts.DEFAULT_LIMIT})"),
) -> AlertPageOut:
    check_names(
        request,
        allowed={"status", "severity", "rule_id", "service", "assigned_to", "from", "to", "license_id", "cursor", "limit"},
    )
    filters = alerts.AlertFilters(
        license_id=integer(license_id, parameter="license_id", minimum=1),
        statuses=_list_param(status),
        severities=_list_param(severity),
        rule_id=integer(rule_id, parameter="rule_id", minimum=1),
        service=service,
        assigned_to=assigned_to,
        triggered_from=time_range.parse_instant(from_, parameter="from"),
        triggered_before=time_range.parse_instant(to, parameter="to"),
        cursor=cursor,
        limit=integer(limit, parameter="limit", default=alerts.DEFAULT_LIMIT, minimum=1, maximum=alerts.MAX_LIMIT),
    )
    page = alerts.search_alerts(
        request.app.state.sessions, caller=caller, filters=filters, cursor_key=request.app.state.cursor_key
    )
    return AlertPageOut(alerts=[_out(view) for view in page.alerts], next_cursor=page.next_cursor)


@router.get("/{alert_id}", response_model=AlertOut, responses=_ONE_ERRORS, summary="One alert")
def get_alert(request: Request, caller: ReadCaller, alert_id: int = _ALERT_ID) -> AlertOut:
    return _out(alerts.read_alert(request.app.state.sessions, caller=caller, alert_id=alert_id))


@router.get(
    "/{alert_id}/history",
    response_model=HistoryOut,
    responses=_ONE_ERRORS,
    summary="An alert's transitions and notification attempts",
    description=(
        "Every transition of the alert (who or what: `evaluator`, `key:<id>`, ...; from, to, when, the value seen), "
        "including the pending steps before it fired, and every notification attempt (channel, attempt, outcome, "
        "HTTP status or SMTP reply, error, latency), each oldest first."
    ),
)
def alert_history(request: Request, caller: ReadCaller, alert_id: int = _ALERT_ID) -> HistoryOut:
    found = alerts.read_history(request.app.state.sessions, caller=caller, alert_id=alert_id)
    return HistoryOut(
        alert=_out(found.alert),
        events=[EventOut.model_validate(asdict(event)) for event in found.events],
        deliveries=[DeliveryOut.model_validate(asdict(delivery)) for delivery in found.deliveries],
    )


@router.post(
    "/{alert_id}/acknowledge",
    response_model=AlertOut,
    responses=_CHANGE_ERRORS,
    summary="Acknowledge an alert",
    description=(
        "Someone has seen it: its status becomes `acknowledged` and repeat notifications stop. It still resolves by "
        "itself when the condition clears. A suppressed alert stays suppressed and comes back acknowledged when its "
        "silence ends. The body is optional."
    ),
)
def acknowledge_alert(
    request: Request, caller: ReadCaller, body: AcknowledgeIn | None = None, alert_id: int = _ALERT_ID
) -> AlertOut:
    body = body or AcknowledgeIn()
    view = alerts.acknowledge_alert(
        request.app.state.sessions, caller=caller, alert_id=alert_id, user_id=body.user_id, note=body.note
    )
    return _out(view)


@router.post(
    "/{alert_id}/assign",
    response_model=AlertOut,
    responses=_CHANGE_ERRORS,
    summary="Assign an alert to a user (or unassign it)",
)
def assign_alert(request: Request, caller: ReadCaller, body: AssignIn, alert_id: int = _ALERT_ID) -> AlertOut:
    view = alerts.assign_alert(
        request.app.state.sessions, caller=caller, alert_id=alert_id, assignee=body.user_id, note=body.note
    )
    return _out(view)


@router.post(
    "/{alert_id}/resolve",
    response_model=AlertOut,
    responses=_CHANGE_ERRORS,
    summary="Resolve an alert by hand",
    description=(
        "Closes the alert with optional notes. Its rule's group starts over: if the condition still holds, a new "
        "alert fires after the rule's `for_minutes`. Channels that were told it fired are told it resolved."
    ),
)
def resolve_alert(request: Request, caller: ReadCaller, body: ResolveIn | None = None, alert_id: int = _ALERT_ID) -> AlertOut:
    body = body or ResolveIn()
    view = alerts.resolve_alert(
        request.app.state.sessions, caller=caller, alert_id=alert_id, user_id=body.user_id, note=body.note
    )
    return _out(view)
