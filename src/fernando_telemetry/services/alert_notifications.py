"""Alert notifications through an outbox: ``enqueue`` writes one ``alert_notifications`` row per channel in
the caller's transaction (the evaluation's), and ``dispatch_due`` sends what is due afterwards.

``dispatch_due`` claims due rows in a short transaction (``FOR UPDATE SKIP LOCKED``, so several servers can
dispatch at once; each claimed row is leased by moving its ``next_attempt_at`` ahead), sends with no
transaction open, then records each attempt in ``alert_deliveries`` and the outcome on the outbox row and
on ``alerts.notification_status`` / ``last_notified_at``, one short transaction per attempt. A failed
attempt is retried with exponential backoff up to ``RetryPolicy.max_attempts``, then abandoned; a failure
that cannot pass on a retry (a 4xx, an SMTP 5xx, a refused target) is abandoned at once; a target name that
does not resolve is retried (a resolver outage passes).

A run takes due rows round-robin across licenses (each license's oldest first, then each one's second, ...):
a license with thousands queued takes at most its share of a run, and another license's notification goes
out in the first run after it is due.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, literal, select, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session, sessionmaker

from fernando_telemetry.core.errors import InvalidInput
from fernando_telemetry.notify.message import AlertMessage, links_for
from fernando_telemetry.notify.notifier import Channel, Notifier
from fernando_telemetry.notify.result import SendResult
from fernando_telemetry.services import notification_channels
from fernando_telemetry.services.secret_box import SecretBox, SecretsUnreadable
from fernando_telemetry.storage.models import Alert, AlertDelivery, AlertNotification, AlertRule, NotificationChannel

__all__ = ["KINDS", "DispatchSummary", "RetryPolicy", "dispatch_due", "enqueue", "message_for"]

logger = logging.getLogger(__name__)

KINDS = ("firing", "resolved", "repeat")
SUPERSEDED = "superseded by the resolved notification"


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    """Attempts per notification, the first included; after the last failure it is abandoned."""
    backoff_s: float = 30.0
    """Wait after the first failed attempt; doubled after each further one."""
    backoff_max_s: float = 3600.0
    """Longest wait between two attempts."""

    def delay_after(self, attempt: int) -> timedelta:
        """How long to wait after failed attempt number ``attempt`` (1-based)."""
        return timedelta(seconds=min(self.backoff_max_s, self.backoff_s * 2 ** max(0, attempt - 1)))


@dataclass(frozen=True)
class DispatchSummary:
    claimed: int = 0
    sent: int = 0
    retrying: int = 0
    abandoned: int = 0
    errors: tuple[str, ...] = field(default=())

    def describe(self) -> str:
        return f"notifications: {self.claimed} due, {self.sent} sent, {self.retrying} to retry, {self.abandoned} abandoned"


def message_for(alert: Alert, rule: AlertRule | None, *, kind: str, now: datetime) -> AlertMessage:
    """The alert as it stands now, as a notification of ``kind`` will tell it."""
    rule_name = rule.name if rule is not None else alert.title
    labels = {str(key): str(value) for key, value in (alert.labels or {}).items()}
    annotations = {str(key): str(value) for key, value in (alert.annotations or {}).items()}
    if rule is not None:
        for key, value in (rule.labels or {}).items():
            labels.setdefault(str(key), str(value))
        for key, value in (rule.annotations or {}).items():
            annotations.setdefault(str(key), str(value))
    return AlertMessage(
        kind=kind,
        alert_id=alert.alert_id,
        rule_id=alert.rule_id,
        rule_name=rule_name,
        title=alert.title,
        severity=str(alert.severity),
        alert_status=str(alert.status),
        fingerprint=alert.fingerprint,
        starts_at=alert.triggered_at,
        ends_at=(alert.resolved_at or now) if kind == "resolved" else None,
        message=alert.message,
        group_key={str(key): str(value) for key, value in (alert.group_key or {}).items()},
        labels=labels,
        annotations=annotations,
        observed_value=alert.observed_value,
        threshold_value=alert.threshold_value,
        condition=dict(rule.condition_config or {}) if rule is not None else {},
        affected_service=alert.affected_service,
        license_id=alert.license_id,
        queued_at=now,
    )


def _channel_state(kind: str, status: str, *, attempts: int, now: datetime, **extra: Any) -> dict[str, Any]:
    return {"status": status, "kind": kind, "attempts": attempts, "updated_at": now.isoformat(), **extra}


def enqueue(session: Session, *, alert: Alert, rule: AlertRule | None, kind: str, now: datetime) -> int:
    """Queue one notification of ``alert`` per channel named in ``rule.notification_channels`` that exists for
    the rule's license and is enabled (for ``resolved``: only channels with ``send_resolved``); returns how
    many were queued. A channel type named instead of a channel means the license's default channel of that
    type (``notification_channels.resolve_for_rule``); a type with none is marked ``failed`` with the reason in
    ``notification_status[<type>]``. Sends nothing. On the alert it sets only ``notification_status``
    (``pending`` per channel).

    A ``resolved`` notification supersedes the alert's firing and repeat notifications still waiting for the
    same channel (so a late retry cannot tell a receiver that a resolved alert fires); a ``repeat`` is not
    queued for a channel that still has one of the alert's notifications waiting."""
    if kind not in KINDS:
        raise InvalidInput(f"notification kind {kind!r} is not one of {', '.join(KINDS)}")
    if rule is None:
        return 0
    resolved = notification_channels.resolve_for_rule(
        session, license_id=rule.license_id, entries=rule.notification_channels or []
    )
    channels = sorted((channel for channel in resolved.channels if channel.enabled), key=lambda channel: channel.name)
    if resolved.missing_types:
        _note_missing_types(alert, rule, resolved.missing_types, kind=kind, now=now)
    if kind == "resolved":
        channels = [channel for channel in channels if channel.send_resolved]
    if not channels:
        return 0
    if alert.alert_id is None:
        session.flush()
    waiting = set(
        session.scalars(
            select(AlertNotification.channel_id).where(
                AlertNotification.alert_id == alert.alert_id, AlertNotification.status == "pending"
            )
        )
    )
    if kind == "resolved" and waiting:
        session.execute(
            update(AlertNotification)
            .where(
                AlertNotification.alert_id == alert.alert_id,
                AlertNotification.status == "pending",
                AlertNotification.kind.in_(("firing", "repeat")),
                AlertNotification.channel_id.in_([channel.channel_id for channel in channels]),
            )
            .values(status="failed", last_error=SUPERSEDED)
        )
    if kind == "repeat":
        channels = [channel for channel in channels if channel.channel_id not in waiting]
    payload = message_for(alert, rule, kind=kind, now=now).to_payload()
    status = dict(alert.notification_status or {})
    for channel in channels:
        session.add(
            AlertNotification(
                alert_id=alert.alert_id,
                channel_id=channel.channel_id,
                channel_name=channel.name,
                license_id=alert.license_id,
                kind=kind,
                payload=payload,
                status="pending",
                attempts=0,
                next_attempt_at=now,
            )
        )
        status[channel.name] = _channel_state(kind, "pending", attempts=0, now=now)
    alert.notification_status = status
    session.flush()
    return len(channels)


def _note_missing_types(alert: Alert, rule: AlertRule, types: Sequence[str], *, kind: str, now: datetime) -> None:
    """A type the rule names has no channel in its license: say so on the alert (and in the log), send the rest."""
    status = dict(alert.notification_status or {})
    for channel_type in types:
        message = notification_channels.missing_type_message(channel_type, license_id=rule.license_id)
        logger.warning("alert rule %s (%s): %s", rule.rule_id, rule.name, message)
        status[channel_type] = _channel_state(kind, "failed", attempts=0, now=now, error=message)
    alert.notification_status = status


@dataclass(frozen=True)
class _Claimed:
    notification_id: int
    alert_id: int
    license_id: int | None
    channel_id: int | None
    channel_name: str
    channel_type: str
    kind: str
    attempt: int
    message: AlertMessage
    channel: Channel | None
    problem: str | None
    """Why it cannot be sent at all (channel deleted or disabled, secrets unreadable)."""


def _claim(
    sessions: sessionmaker[Session], *, now: datetime, limit: int, lease: timedelta, box: SecretBox, external_url: str | None
) -> list[_Claimed]:
    with sessions.begin() as session:
        # fair across licenses: each license's due rows are ranked oldest first, and the batch takes every
        # license's first, then every license's second... so one license's storm cannot fill a run
        due = (
            select(
                AlertNotification.notification_id,
                AlertNotification.next_attempt_at,
                func.row_number()
                .over(
                    partition_by=AlertNotification.license_id,
                    order_by=(AlertNotification.next_attempt_at, AlertNotification.notification_id),
                )
                .label("turn"),
            )
            .where(AlertNotification.status == "pending", AlertNotification.next_attempt_at <= now)
            .subquery()
        )
        chosen = (
            select(due.c.notification_id)
            .where(due.c.turn <= limit)
            .order_by(due.c.turn, due.c.next_attempt_at, due.c.notification_id)
            .limit(limit)
        )
        rows = session.scalars(
            select(AlertNotification)
            .where(
                AlertNotification.notification_id.in_(chosen.scalar_subquery()),
                # checked again on the row as locked: another dispatcher may have claimed it meanwhile
                AlertNotification.status == "pending",
                AlertNotification.next_attempt_at <= now,
            )
            .order_by(AlertNotification.next_attempt_at, AlertNotification.notification_id)
            .with_for_update(skip_locked=True)
        ).all()
        if not rows:
            return []
        channel_ids = {row.channel_id for row in rows if row.channel_id is not None}
        channels = {
            channel.channel_id: channel
            for channel in session.scalars(select(NotificationChannel).where(NotificationChannel.channel_id.in_(channel_ids)))
        }
        claimed = []
        for row in rows:
            row.attempts += 1
            row.next_attempt_at = now + lease  # the lease: if this process dies mid-send, the row is due again after it
            channel_row = channels.get(row.channel_id) if row.channel_id is not None else None
            channel: Channel | None = None
            problem: str | None = None
            if channel_row is None:
                problem = "the channel was deleted"
            elif not channel_row.enabled:
                problem = "the channel is disabled"
            else:
                try:
                    channel = notification_channels.sendable(channel_row, box=box)
                except SecretsUnreadable as exc:
                    problem = exc.message
            message = AlertMessage.from_payload(row.payload)
            message = message.with_delivery(notification_id=row.notification_id, links=links_for(message, external_url))
            claimed.append(
                _Claimed(
                    notification_id=row.notification_id,
                    alert_id=row.alert_id,
                    license_id=row.license_id,
                    channel_id=row.channel_id,
                    channel_name=row.channel_name,
                    channel_type=channel_row.type if channel_row is not None else "unknown",
                    kind=row.kind,
                    attempt=row.attempts,
                    message=message,
                    channel=channel,
                    problem=problem,
                )
            )
        return claimed


def _send_group(items: Sequence[_Claimed], notifier: Notifier, now: datetime) -> list[tuple[_Claimed, SendResult]]:
    results = []
    for item in items:
        if item.channel is None:
            results.append((item, SendResult.failure(item.problem or "cannot be sent", retryable=False)))
            continue
        try:
            result = notifier.send(item.channel, item.message, now=now)
        except Exception as exc:  # a notifier must not raise; if one does, it is this delivery's failure
            result = SendResult.failure(f"{type(exc).__name__}: {exc}")
        results.append((item, result))
    return results


def _record(session: Session, item: _Claimed, result: SendResult, *, now: datetime, policy: RetryPolicy) -> str:
    """Write one attempt; returns its outcome: sent, failed (to retry) or abandoned."""
    if result.ok:
        outcome = "sent"
    elif result.retryable and item.attempt < policy.max_attempts:
        outcome = "failed"
    else:
        outcome = "abandoned"
    if session.get(Alert, item.alert_id) is None:
        return outcome  # the alert was deleted meanwhile: its outbox and log went with it
    session.add(
        AlertDelivery(
            notification_id=item.notification_id,
            alert_id=item.alert_id,
            license_id=item.license_id,
            channel_id=item.channel_id,
            channel_name=item.channel_name,
            channel_type=item.channel_type,
            kind=item.kind,
            attempt=item.attempt,
            outcome=outcome,
            http_status=result.http_status,
            smtp_reply=result.smtp_reply,
            error=result.error,
            latency_ms=result.latency_ms,
            attempted_at=now,
        )
    )
    next_attempt_at = now + policy.delay_after(item.attempt) if outcome == "failed" else now
    # only while the row is still ours: not superseded, not re-claimed by another dispatcher after the lease
    still_ours = session.execute(
        update(AlertNotification)
        .where(
            AlertNotification.notification_id == item.notification_id,
            AlertNotification.status == "pending",
            AlertNotification.attempts == item.attempt,
        )
        .values(
            status={"sent": "sent", "failed": "pending", "abandoned": "failed"}[outcome],
            next_attempt_at=next_attempt_at,
            last_error=None if result.ok else result.error,
        )
        .returning(AlertNotification.notification_id)
    ).first()
    if still_ours is None:
        return outcome
    extra: dict[str, Any] = {"notification_id": item.notification_id}
    if result.http_status is not None:
        extra["http_status"] = result.http_status
    if result.smtp_reply is not None:
        extra["smtp_reply"] = result.smtp_reply
    if result.error is not None:
        extra["error"] = result.error
    if outcome == "failed":
        extra["next_attempt_at"] = next_attempt_at.isoformat()
    state = _channel_state(
        item.kind,
        {"sent": "sent", "failed": "retrying", "abandoned": "abandoned"}[outcome],
        attempts=item.attempt,
        now=now,
        **extra,
    )
    values: dict[str, Any] = {
        # merged in SQL: dispatchers of other channels of the same alert may write their entry at the same time
        "notification_status": Alert.notification_status.op("||")(literal({item.channel_name: state}, JSONB)),
    }
    if outcome == "sent":
        values["last_notified_at"] = func.greatest(func.coalesce(Alert.last_notified_at, now), now)
    else:
        values["error_count"] = Alert.error_count + 1  # failed notification attempts of the alert, all channels
    session.execute(update(Alert).where(Alert.alert_id == item.alert_id).values(**values))
    return outcome


def dispatch_due(
    sessions: sessionmaker[Session],
    *,
    now: datetime,
    notifier: Notifier,
    box: SecretBox,
    external_url: str | None = None,
    policy: RetryPolicy = RetryPolicy(),
    batch_size: int = 50,
    parallel: int = 8,
    lease: timedelta = timedelta(minutes=5),
) -> DispatchSummary:
    """Send the notifications due at ``now`` (at most ``batch_size``), ``parallel`` channels at a time; a
    channel's notifications of one alert go in order. Must be called with no transaction open: it opens
    its own (``sessions.begin()``), and none is open while a message is on its way."""
    claimed = _claim(sessions, now=now, limit=batch_size, lease=lease, box=box, external_url=external_url)
    if not claimed:
        return DispatchSummary()
    groups: dict[tuple[int, int | None], list[_Claimed]] = defaultdict(list)
    for item in claimed:
        groups[(item.alert_id, item.channel_id)].append(item)
    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(groups))), thread_name_prefix="notify") as pool:
        sent_groups = list(pool.map(lambda items: _send_group(items, notifier, now), groups.values()))
    counts = {"sent": 0, "failed": 0, "abandoned": 0}
    errors: list[str] = []
    for item, result in (pair for group in sent_groups for pair in group):
        try:
            with sessions.begin() as session:
                outcome = _record(session, item, result, now=now, policy=policy)
        except Exception as exc:  # the lease makes the row due again later: it will be retried
            logger.exception("could not record notification %s", item.notification_id)
            errors.append(f"notification {item.notification_id}: {type(exc).__name__}: {exc}")
            continue
        counts[outcome] += 1
    return DispatchSummary(
        claimed=len(claimed), sent=counts["sent"], retrying=counts["failed"], abandoned=counts["abandoned"], errors=tuple(errors)
    )
