"""Raised alerts: list and filter, get one, acknowledge, assign, resolve by hand, and their history.

Every change writes an ``alert_events`` row (who, from, to, when, the value seen). ``license_id`` arguments
are the license the caller may see (``services.tenancy.visible_license``; None = every license): an alert
outside it is ``NotFound``, never ``Forbidden``, so ids of other licenses are not confirmed.
Status changes go through ``services.alert_lifecycle.apply`` (which also writes the history and queues
notifications); ``record_event``, ``state_name`` and ``announced`` live there and are re-exported here.
The session-level functions never commit; the use cases at the end (taking ``sessions`` and a ``Caller``) own
their transaction and scope check. Imports storage, core and ``services.alert_lifecycle``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from fernando_telemetry.core import cursor as cursors
from fernando_telemetry.core.alert_lifecycle import Action
from fernando_telemetry.core.caller import Caller
from fernando_telemetry.core.enums import AlertStatus, Severity
from fernando_telemetry.core.errors import Conflict, InvalidInput, NotFound, field_problem
from fernando_telemetry.services import alert_lifecycle
from fernando_telemetry.services.alert_lifecycle import announced, record_event, state_name
from fernando_telemetry.storage import lookups
from fernando_telemetry.storage.models import Alert, AlertDelivery, AlertEvent, AlertRule, AlertRuleState

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "MAX_NOTE_CHARS",
    "OPEN_STATUSES",
    "AlertFilters",
    "AlertHistory",
    "AlertPage",
    "AlertView",
    "DeliveryView",
    "EventView",
    "acknowledge",
    "acknowledge_alert",
    "announced",
    "assign",
    "assign_alert",
    "get",
    "history",
    "labels_of",
    "list_alerts",
    "lock_open",
    "read_alert",
    "read_history",
    "record_event",
    "resolve",
    "resolve_alert",
    "search_alerts",
    "state_name",
]

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_NOTE_CHARS = 4000
OPEN_STATUSES = (AlertStatus.ACTIVE, AlertStatus.ACKNOWLEDGED, AlertStatus.SUPPRESSED)


@dataclass(frozen=True)
class AlertView:
    """One alert as the API and the CLI show it."""

    alert_id: int
    rule_id: int | None
    rule_name: str | None
    status: str
    severity: str
    title: str
    message: str | None
    fingerprint: str
    group_key: dict[str, Any]
    labels: dict[str, Any]
    annotations: dict[str, Any]
    observed_value: float | None
    threshold_value: float | None
    affected_service: str | None
    license_id: int | None
    triggered_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    assigned_to: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    resolution_notes: str | None
    silenced_by: int | None
    notification_status: dict[str, Any]
    error_count: int
    """failed notification attempts (deliveries failed or abandoned), over all channels"""
    last_evaluated_at: datetime | None
    last_notified_at: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class AlertFilters:
    """What a list of alerts asks for; None or empty means "not given". ``license_id``: the visible license."""

    license_id: int | None = None
    statuses: Sequence[str] = ()
    severities: Sequence[str] = ()
    rule_id: int | None = None
    service: str | None = None
    assigned_to: str | None = None
    triggered_from: datetime | None = None
    triggered_before: datetime | None = None
    cursor: str | None = None
    limit: int = DEFAULT_LIMIT


@dataclass(frozen=True)
class AlertPage:
    """Alerts newest first; ``next_cursor`` is None on the last page."""

    alerts: list[AlertView]
    next_cursor: str | None


@dataclass(frozen=True)
class EventView:
    event_id: int
    occurred_at: datetime
    from_state: str
    to_state: str
    actor: str
    note: str | None
    observed_value: float | None
    details: dict[str, Any]


@dataclass(frozen=True)
class DeliveryView:
    delivery_id: int
    attempted_at: datetime
    channel_name: str
    channel_type: str
    kind: str
    attempt: int
    outcome: str
    http_status: int | None
    smtp_reply: str | None
    error: str | None
    latency_ms: float | None


@dataclass(frozen=True)
class AlertHistory:
    """An alert with every transition (oldest first) and every notification attempt (oldest first)."""

    alert: AlertView
    events: list[EventView] = field(default_factory=list)
    deliveries: list[DeliveryView] = field(default_factory=list)


# --- shared with the evaluator and silences --------------------------------------------------------------


def labels_of(alert: Alert) -> dict[str, str]:
    """The labels silences match: the alert's labels and group key, plus ``alertname``, ``rule_id``, ``severity``."""
    labels = {str(key): _text(value) for key, value in (alert.labels or {}).items()}
    labels.update({str(key): _text(value) for key, value in (alert.group_key or {}).items()})
    labels.setdefault("alertname", alert.title)
    labels["rule_id"] = "" if alert.rule_id is None else str(alert.rule_id)
    labels["severity"] = str(Severity(alert.severity).value)
    return labels


def lock_open(session: Session, *, rule_id: int, fingerprint: str) -> Alert | None:
    """The open alert of a rule and group key (at most one: ``uq_alerts_rule_id_fingerprint_open``), locked."""
    return session.scalars(
        select(Alert)
        .where(Alert.rule_id == rule_id, Alert.fingerprint == fingerprint, Alert.status != AlertStatus.RESOLVED)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


# --- reads ---------------------------------------------------------------------------------------------------


def _vocabulary(values: Sequence[str], vocabulary: type[AlertStatus] | type[Severity], parameter: str) -> list[str]:
    allowed = [member.value for member in vocabulary]
    wrong = [value for value in values if value not in allowed]
    if wrong:
        raise InvalidInput(
            f"{parameter}: {', '.join(repr(value[:40]) for value in wrong)} not one of {', '.join(allowed)}",
            details=[field_problem(parameter, "unknown value", allowed=allowed)],
        )
    return list(dict.fromkeys(values))


def list_alerts(session: Session, *, filters: AlertFilters, cursor_key: bytes) -> AlertPage:
    """One page of the alerts in ``filters.license_id`` (None: every license), newest triggered first."""
    if not 1 <= filters.limit <= MAX_LIMIT:
        raise InvalidInput(
            f"limit must be between 1 and {MAX_LIMIT}, got {filters.limit}",
            details=[field_problem("limit", f"not in 1..{MAX_LIMIT}")],
        )
    start, end = filters.triggered_from, filters.triggered_before
    if start is not None and end is not None and end <= start:
        raise InvalidInput(
            f"to ({end.isoformat()}) must be after from ({start.isoformat()})",
            details=[field_problem("to", "not after from")],
        )
    statuses = _vocabulary(filters.statuses, AlertStatus, "status")
    severities = _vocabulary(filters.severities, Severity, "severity")
    digest = cursors.query_digest(
        {
            "license_id": filters.license_id,
            "status": sorted(statuses),
            "severity": sorted(severities),
            "rule_id": filters.rule_id,
            "service": filters.service,
            "assigned_to": filters.assigned_to,
            "from": start,
            "to": end,
        }
    )
    position = None if filters.cursor is None else cursors.decode(filters.cursor, query=digest, key=cursor_key)
    query = select(Alert, AlertRule.name).outerjoin(AlertRule, AlertRule.rule_id == Alert.rule_id)
    if filters.license_id is not None:
        query = query.where(Alert.license_id == filters.license_id)
    if statuses:
        query = query.where(Alert.status.in_(statuses))
    if severities:
        query = query.where(Alert.severity.in_(severities))
    if filters.rule_id is not None:
        query = query.where(Alert.rule_id == filters.rule_id)
    if filters.service is not None:
        query = query.where(Alert.affected_service == filters.service)
    if filters.assigned_to is not None:
        query = query.where(Alert.assigned_to == filters.assigned_to)
    if start is not None:
        query = query.where(Alert.triggered_at >= start)
    if end is not None:
        query = query.where(Alert.triggered_at < end)
    if position is not None:
        if not position.key.isdigit():
            raise InvalidInput("cursor: not a cursor of an alerts list", details=[field_problem("cursor", "bad key")])
        after_id = int(position.key)
        query = query.where(
            or_(Alert.triggered_at < position.at, and_(Alert.triggered_at == position.at, Alert.alert_id < after_id))
        )
    rows = session.execute(query.order_by(Alert.triggered_at.desc(), Alert.alert_id.desc()).limit(filters.limit + 1)).all()
    views = [_view(alert, rule_name) for alert, rule_name in rows]
    if len(views) <= filters.limit:
        return AlertPage(alerts=views, next_cursor=None)
    page = views[: filters.limit]
    last = page[-1]
    next_position = cursors.Cursor(
        at=last.triggered_at, key=str(last.alert_id), range_start=start or last.triggered_at, query=digest
    )
    return AlertPage(alerts=page, next_cursor=cursors.encode(next_position, key=cursor_key))


def _find(session: Session, *, alert_id: int, license_id: int | None, lock: bool = False) -> Alert:
    query = select(Alert).where(Alert.alert_id == alert_id)
    if license_id is not None:
        query = query.where(Alert.license_id == license_id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    alert = session.scalars(query).one_or_none()
    if alert is None:
        raise NotFound(f"no alert {alert_id}" + ("" if license_id is None else f" in license {license_id}"))
    return alert


def _rule_name(session: Session, rule_id: int | None) -> str | None:
    return None if rule_id is None else session.scalar(select(AlertRule.name).where(AlertRule.rule_id == rule_id))


def get(session: Session, *, alert_id: int, license_id: int | None) -> AlertView:
    alert = _find(session, alert_id=alert_id, license_id=license_id)
    return _view(alert, _rule_name(session, alert.rule_id))


def history(session: Session, *, alert_id: int, license_id: int | None) -> AlertHistory:
    """The alert, its transitions and its notification attempts, each oldest first."""
    alert = _find(session, alert_id=alert_id, license_id=license_id)
    events = session.scalars(
        select(AlertEvent).where(AlertEvent.alert_id == alert_id).order_by(AlertEvent.occurred_at, AlertEvent.event_id)
    ).all()
    deliveries = session.scalars(
        select(AlertDelivery)
        .where(AlertDelivery.alert_id == alert_id)
        .order_by(AlertDelivery.attempted_at, AlertDelivery.delivery_id)
    ).all()
    return AlertHistory(
        alert=_view(alert, _rule_name(session, alert.rule_id)),
        events=[
            EventView(
                event_id=event.event_id,
                occurred_at=event.occurred_at,
                from_state=event.from_state,
                to_state=event.to_state,
                actor=event.actor,
                note=event.note,
                observed_value=event.observed_value,
                details=dict(event.details),
            )
            for event in events
        ],
        deliveries=[
            DeliveryView(
                delivery_id=delivery.delivery_id,
                attempted_at=delivery.attempted_at,
                channel_name=delivery.channel_name,
                channel_type=delivery.channel_type,
                kind=delivery.kind,
                attempt=delivery.attempt,
                outcome=delivery.outcome,
                http_status=delivery.http_status,
                smtp_reply=delivery.smtp_reply,
                error=delivery.error,
                latency_ms=delivery.latency_ms,
            )
            for delivery in deliveries
        ],
    )


# --- changes by people ----------------------------------------------------------------------------------------


def _check_note(note: str | None) -> str | None:
    if note is None:
        return None
    if len(note) > MAX_NOTE_CHARS or "\x00" in note:
        raise InvalidInput(
            f"note: at most {MAX_NOTE_CHARS} characters and no NUL",
            details=[field_problem("note", f"longer than {MAX_NOTE_CHARS} characters or holds NUL")],
        )
    return note.strip() or None


def _check_user(session: Session, user_id: str | None, alert: Alert, *, field_name: str = "user_id") -> str | None:
    """``user_id`` when it names a user of the alert's license (of any license for a platform-wide alert)."""
    if user_id is None:
        return None
    if not lookups.known_user(session, user_id, license_id=alert.license_id):
        where = "" if alert.license_id is None else f" of license {alert.license_id}"
        raise InvalidInput(f"{field_name}: no user {user_id[:60]!r}{where}", details=[field_problem(field_name, "unknown user")])
    return user_id


def _open(alert: Alert, verb: str) -> None:
    if alert.status == AlertStatus.RESOLVED:
        raise Conflict(f"alert {alert.alert_id} is resolved; a resolved alert cannot be {verb}")


def acknowledge(
    session: Session,
    *,
    alert_id: int,
    license_id: int | None,
    caller: Caller,
    user_id: str | None = None,
    note: str | None = None,
) -> AlertView:
    """Someone has seen the alert: no more repeats. It still resolves by itself when its condition clears.

    A suppressed alert keeps its status (the silence decides it) and comes back acknowledged when the silence
    ends. ``Conflict`` when the alert is resolved or already acknowledged."""
    actor, now = caller.actor, caller.now()
    note = _check_note(note)
    alert = _find(session, alert_id=alert_id, license_id=license_id, lock=True)
    _open(alert, "acknowledged")
    if alert.acknowledged_at is not None:
        raise Conflict(
            f"alert {alert_id} was already acknowledged at {alert.acknowledged_at.isoformat()}"
            + (f" by {alert.acknowledged_by}" if alert.acknowledged_by else "")
        )
    alert.acknowledged_by = _check_user(session, user_id, alert)
    alert_lifecycle.apply(
        session,
        alert,
        Action.ACKNOWLEDGE,
        actor=actor,
        now=now,
        note=note,
        details={"user_id": alert.acknowledged_by} if alert.acknowledged_by else None,
    )
    session.flush()
    return _view(alert, _rule_name(session, alert.rule_id))


def assign(
    session: Session,
    *,
    alert_id: int,
    license_id: int | None,
    assignee: str | None,
    caller: Caller,
    note: str | None = None,
) -> AlertView:
    """Give the alert to a user (``assignee`` None takes it back); recorded as an event that keeps the state."""
    actor, now = caller.actor, caller.now()
    note = _check_note(note)
    alert = _find(session, alert_id=alert_id, license_id=license_id, lock=True)
    _open(alert, "assigned")
    previous = alert.assigned_to
    alert.assigned_to = _check_user(session, assignee, alert, field_name="user_id")
    alert_lifecycle.apply(
        session,
        alert,
        Action.ASSIGN,
        actor=actor,
        now=now,
        note=note,
        details={"assigned_to": alert.assigned_to, "previous": previous},
    )
    session.flush()
    return _view(alert, _rule_name(session, alert.rule_id))


def resolve(
    session: Session,
    *,
    alert_id: int,
    license_id: int | None,
    caller: Caller,
    user_id: str | None = None,
    note: str | None = None,
) -> AlertView:
    """Close the alert by hand with a note. The rule's group starts over (inactive): if the condition still
    holds, a new alert fires after the rule's ``for``. Channels that heard it fire hear it resolve."""
    actor, now = caller.actor, caller.now()
    note = _check_note(note)
    alert = _find(session, alert_id=alert_id, license_id=license_id)
    if alert.rule_id is not None:
        # the evaluator's lock order: the group's state row, then its alert
        session.execute(
            select(AlertRuleState.rule_id)
            .where(AlertRuleState.rule_id == alert.rule_id, AlertRuleState.fingerprint == alert.fingerprint)
            .with_for_update()
        ).all()
    alert = _find(session, alert_id=alert_id, license_id=license_id, lock=True)
    _open(alert, "resolved again")
    alert.resolved_by = _check_user(session, user_id, alert)
    alert.resolution_notes = note
    alert_lifecycle.apply(
        session,
        alert,
        Action.RESOLVE_BY_HAND,
        actor=actor,
        now=now,
        note=note,
        details={"user_id": alert.resolved_by} if alert.resolved_by else None,
    )
    if alert.rule_id is not None:
        session.execute(
            update(AlertRuleState)
            .where(AlertRuleState.rule_id == alert.rule_id, AlertRuleState.fingerprint == alert.fingerprint)
            .values(state="inactive", active_since=None, alert_id=None)
        )
    session.flush()
    return _view(alert, _rule_name(session, alert.rule_id))


def _view(alert: Alert, rule_name: str | None) -> AlertView:
    return AlertView(
        alert_id=alert.alert_id,
        rule_id=alert.rule_id,
        rule_name=rule_name,
        status=state_name(alert.status),
        severity=str(Severity(alert.severity).value),
        title=alert.title,
        message=alert.message,
        fingerprint=alert.fingerprint,
        group_key=dict(alert.group_key or {}),
        labels=dict(alert.labels or {}),
        annotations=dict(alert.annotations or {}),
        observed_value=alert.observed_value,
        threshold_value=alert.threshold_value,
        affected_service=alert.affected_service,
        license_id=alert.license_id,
        triggered_at=alert.triggered_at,
        acknowledged_at=alert.acknowledged_at,
        acknowledged_by=alert.acknowledged_by,
        assigned_to=alert.assigned_to,
        resolved_at=alert.resolved_at,
        resolved_by=alert.resolved_by,
        resolution_notes=alert.resolution_notes,
        silenced_by=alert.silenced_by,
        notification_status=dict(alert.notification_status or {}),
        error_count=alert.error_count,
        last_evaluated_at=alert.last_evaluated_at,
        last_notified_at=alert.last_notified_at,
        created_at=alert.created_at,
        updated_at=alert.updated_at,
    )


def search_alerts(sessions: sessionmaker[Session], *, caller: Caller, filters: AlertFilters, cursor_key: bytes) -> AlertPage:
    """The use case behind ``GET /api/v1/alerts``: ``filters.license_id`` is the license asked for, checked against
    the caller's scope."""
    scoped = replace(filters, license_id=caller.visible_license(filters.license_id))
    with sessions() as session:
        return list_alerts(session, filters=scoped, cursor_key=cursor_key)


def read_alert(sessions: sessionmaker[Session], *, caller: Caller, alert_id: int) -> AlertView:
    """The use case behind ``GET /api/v1/alerts/{id}``."""
    with sessions() as session:
        return get(session, alert_id=alert_id, license_id=caller.visible_license())


def read_history(sessions: sessionmaker[Session], *, caller: Caller, alert_id: int) -> AlertHistory:
    """The use case behind ``GET /api/v1/alerts/{id}/history``."""
    with sessions() as session:
        return history(session, alert_id=alert_id, license_id=caller.visible_license())


def acknowledge_alert(
    sessions: sessionmaker[Session], *, caller: Caller, alert_id: int, user_id: str | None = None, note: str | None = None
) -> AlertView:
    """The use case behind ``POST /api/v1/alerts/{id}/acknowledge``: ``acknowledge`` in its own transaction."""
    with sessions.begin() as session:
        return acknowledge(
            session, caller=caller, alert_id=alert_id, license_id=caller.visible_license(), user_id=user_id, note=note
        )


def assign_alert(
    sessions: sessionmaker[Session], *, caller: Caller, alert_id: int, assignee: str | None, note: str | None = None
) -> AlertView:
    """The use case behind ``POST /api/v1/alerts/{id}/assign``: ``assign`` in its own transaction."""
    with sessions.begin() as session:
        return assign(
            session, caller=caller, alert_id=alert_id, license_id=caller.visible_license(), assignee=assignee, note=note
        )


def resolve_alert(
    sessions: sessionmaker[Session], *, caller: Caller, alert_id: int, user_id: str | None = None, note: str | None = None
) -> AlertView:
    """The use case behind ``POST /api/v1/alerts/{id}/resolve``: ``resolve`` in its own transaction."""
    with sessions.begin() as session:
        return resolve(session, caller=caller, alert_id=alert_id, license_id=caller.visible_license(), user_id=user_id, note=note)
