"""Applying the alert lifecycle (``core.alert_lifecycle``) to an ``alerts`` row: its status and timestamps,
the ``alert_events`` entry, and the notifications the step queues. The only code that sets ``Alert.status``;
evaluation, people's actions (acknowledge, assign, resolve) and silences all come through ``apply``.
Also the history writer (``record_event``) the group steps without an alert use. Imports storage, core and
``services.alert_notifications``; never commits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from fernando_telemetry.core.alert_lifecycle import Action, Notify, State, Step, alert_status, transition
from fernando_telemetry.core.enums import AlertStatus
from fernando_telemetry.services import alert_notifications
from fernando_telemetry.storage.models import Alert, AlertEvent, AlertNotification, AlertRule

__all__ = ["Applied", "announced", "apply", "record_event", "state_name"]

_UNSET: Any = object()


@dataclass(frozen=True)
class Applied:
    """What ``apply`` did: the step of the table, the state before, the event written, how many notifications it queued."""

    step: Step
    from_state: str
    event: AlertEvent
    queued: int


def state_name(status: AlertStatus | str) -> str:
    """The ``alert_events`` state of an alert status (the same words)."""
    return str(AlertStatus(status).value)


def record_event(
    session: Session,
    *,
    alert: Alert | None,
    from_state: str,
    to_state: str,
    actor: str,
    now: datetime,
    action: str,
    rule_id: int | None = None,
    license_id: int | None = None,
    fingerprint: str | None = None,
    group_key: Mapping[str, Any] | None = None,
    value: float | None = None,
    note: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> AlertEvent:
    """Write one ``alert_events`` row; ``action`` (fire, acknowledge, assign, ...) goes into ``details``."""
    event = AlertEvent(
        alert_id=alert.alert_id if alert is not None else None,
        rule_id=alert.rule_id if alert is not None else rule_id,
        license_id=alert.license_id if alert is not None else license_id,
        fingerprint=alert.fingerprint if alert is not None else fingerprint,
        group_key=dict(alert.group_key if alert is not None else (group_key or {})),
        from_state=from_state,
        to_state=to_state,
        actor=actor,
        note=note,
        observed_value=value,
        details={"action": action, **(details or {})},
        occurred_at=now,
    )
    session.add(event)
    return event


def announced(session: Session, alert_id: int) -> bool:
    """Whether a firing (or repeat) notification was ever queued for the alert: only then is a resolve announced."""
    return bool(
        session.scalar(
            select(exists().where(AlertNotification.alert_id == alert_id, AlertNotification.kind.in_(("firing", "repeat"))))
        )
    )


def apply(
    session: Session,
    alert: Alert,
    action: Action,
    *,
    actor: str,
    now: datetime,
    group_state: State = State.INACTIVE,
    value: float | None = _UNSET,
    note: str | None = None,
    details: Mapping[str, Any] | None = None,
    silence_id: int | None = None,
    rule: AlertRule | None = _UNSET,
) -> Applied:
    """Take ``action`` on ``alert`` as the table says, at ``now``, by ``actor``.

    A new alert (not yet added: no status) starts from ``group_state`` (inactive or pending) and is added and
    flushed, so its event carries its id. The step sets ``acknowledged_at`` (acknowledge), ``resolved_at``
    (resolve) and ``silenced_by`` (``silence_id`` for a silence step, cleared when one ends); other fields (who
    acknowledged, the resolution note, the value seen) are the caller's. ``value`` is the event's observed value
    (default: the alert's). Notifications go through ``alert_notifications.enqueue`` to ``rule``'s channels (default:
    the alert's rule, read when needed). ``Conflict`` when the table has no such step."""
    new = alert.status is None
    before = group_state.value if new else state_name(alert.status)
    step = transition(before, action)
    alert.status = alert_status(step.to_state)
    match action:
        case Action.ACKNOWLEDGE:
            alert.acknowledged_at = now
        case Action.RESOLVE | Action.RESOLVE_BY_HAND:
            alert.resolved_at = now
        case Action.FIRE_SILENCED | Action.SILENCE | Action.RESILENCE:
            alert.silenced_by = silence_id
        case Action.UNSILENCE | Action.UNSILENCE_ACKNOWLEDGED:
            alert.silenced_by = None
    if new:
        session.add(alert)
        session.flush()
    event = record_event(
        session,
        alert=alert,
        from_state=before,
        to_state=step.to_state.value,
        actor=actor,
        now=now,
        action=step.event,
        value=alert.observed_value if value is _UNSET else value,
        note=note,
        details=details,
    )
    queued = _notify(session, alert, step.notify, rule=rule, now=now)
    return Applied(step=step, from_state=before, event=event, queued=queued)


def _notify(session: Session, alert: Alert, notify: Notify, *, rule: AlertRule | None, now: datetime) -> int:
    match notify:
        case Notify.NONE:
            return 0
        case Notify.FIRING:
            kind = "firing"
        case Notify.RESOLVED_IF_ANNOUNCED:
            session.flush()
            if not announced(session, alert.alert_id):
                return 0
            kind = "resolved"
        case Notify.FIRING_IF_UNANNOUNCED:
            if announced(session, alert.alert_id):
                return 0
            kind = "firing"
    if rule is _UNSET:
        rule = None if alert.rule_id is None else session.get(AlertRule, alert.rule_id)
    return alert_notifications.enqueue(session, alert=alert, rule=rule, kind=kind, now=now)
