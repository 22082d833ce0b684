"""Shared by the notification tests: a real HTTP receiver on a free local port, and rules, alerts and channels
written straight into the committed-writes database (dispatch opens its own transactions)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sqlalchemy import Engine, delete, select

from fernando_telemetry.core.caller import Caller
from fernando_telemetry.core.enums import AlertStatus, Severity
from fernando_telemetry.services import alert_notifications, keys, notification_channels
from fernando_telemetry.services.secret_box import SecretBox
from fernando_telemetry.storage.database import session_factory
from fernando_telemetry.storage.models import (
    Alert,
    AlertDelivery,
    AlertNotification,
    AlertRule,
    NotificationChannel,
)

__all__ = [
    "BOX",
    "FIXED_NOW",
    "Received",
    "Receiver",
    "TenantSeed",
    "add_alert",
    "add_channel",
    "add_rule",
    "deliveries",
    "enqueue",
    "load_alert",
    "outbox",
    "tenant_seed",
]

FIXED_NOW = datetime(2021, 3, 4, 5, 6, 7, tzinfo=UTC)
"""Long before any real clock: dispatches at this time never claim rows other tests queued at the real now."""

BOX = SecretBox("test-secret-key-for-notification-channels")


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """A threaded HTTP server answering POSTs with the next status of ``statuses`` (the last one repeats)."""

    def __init__(self, statuses: list[int] | None = None, *, body: bytes = b"ok") -> None:
        self.statuses = list(statuses or [200])
        self.reply_body = body
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.requests.append(
                        Received(self.path, {name.lower(): value for name, value in self.headers.items()}, body)
                    )
                    status = receiver.statuses.pop(0) if len(receiver.statuses) > 1 else receiver.statuses[0]
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(receiver.reply_body)))
                self.end_headers()
                self.wfile.write(receiver.reply_body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


@dataclass
class TenantSeed:
    """A license of its own, and everything a test adds to it (removed at the end)."""

    engine: Engine
    license_id: int
    alert_ids: list[int] = field(default_factory=list)

    def cleanup(self) -> None:
        with session_factory(self.engine).begin() as session:
            session.execute(delete(AlertDelivery).where(AlertDelivery.license_id == self.license_id))
            session.execute(delete(AlertNotification).where(AlertNotification.license_id == self.license_id))
            session.execute(delete(Alert).where(Alert.license_id == self.license_id))
            session.execute(delete(AlertRule).where(AlertRule.license_id == self.license_id))
            session.execute(delete(NotificationChannel).where(NotificationChannel.license_id == self.license_id))


def tenant_seed(engine: Engine) -> Iterator[TenantSeed]:
    with session_factory(engine).begin() as session:
        license_id = keys.create_license(session, name=f"notify-{uuid.uuid4().hex[:6]}")
    seed = TenantSeed(engine, license_id)
    try:
        yield seed
    finally:
        seed.cleanup()


def add_channel(seed: TenantSeed, spec: dict[str, Any], *, box: SecretBox = BOX) -> notification_channels.ChannelView:
    with session_factory(seed.engine).begin() as session:
        return notification_channels.create(session, caller=Caller.for_cli(), license_id=seed.license_id, spec=spec, box=box)


def add_rule(seed: TenantSeed, *, channels: list[str], name: str = "High CPU Usage", **fields: Any) -> int:
    with session_factory(seed.engine).begin() as session:
        rule = AlertRule(
            name=f"{name}",
            license_id=seed.license_id,
            condition_config=fields.pop(
                "condition_config",
                {
                    "source": "system_metrics",
                    "metric": "cpu_usage",
                    "aggregation": "avg",
                    "operator": ">",
                    "threshold": 80,
                    "window_minutes": 5,
                },
            ),
            severity=fields.pop("severity", Severity.CRITICAL),
            notification_channels=channels,
            labels=fields.pop("labels", {"team": "platform"}),
            annotations=fields.pop(
                "annotations", {"summary": "CPU above 80% on {{host}}", "runbook_url": "https://runbooks.example.com/cpu"}
            ),
            **fields,
        )
        session.add(rule)
        session.flush()
        return rule.rule_id


def add_alert(seed: TenantSeed, *, rule_id: int, triggered_at: datetime = FIXED_NOW - timedelta(minutes=5), **fields: Any) -> int:
    with session_factory(seed.engine).begin() as session:
        alert = Alert(
            rule_id=rule_id,
            license_id=seed.license_id,
            status=fields.pop("status", AlertStatus.ACTIVE),
            severity=fields.pop("severity", Severity.CRITICAL),
            title=fields.pop("title", "High CPU Usage"),
            message=fields.pop("message", "avg(cpu_usage) is 93.2 on web-1"),
            fingerprint=fields.pop("fingerprint", uuid.uuid4().hex + uuid.uuid4().hex),
            group_key=fields.pop("group_key", {"host": "web-1"}),
            observed_value=fields.pop("observed_value", 93.2),
            threshold_value=fields.pop("threshold_value", 80.0),
            triggered_at=triggered_at,
            affected_service=fields.pop("affected_service", "api"),
            **fields,
        )
        session.add(alert)
        session.flush()
        seed.alert_ids.append(alert.alert_id)
        return alert.alert_id


def enqueue(seed: TenantSeed, alert_id: int, kind: str, *, now: datetime = FIXED_NOW, **alert_changes: Any) -> int:
    """Queue a notification the way the evaluator does: in a transaction of its own, alert and rule loaded."""
    with session_factory(seed.engine).begin() as session:
        alert = session.get(Alert, alert_id)
        assert alert is not None
        for name, value in alert_changes.items():
            setattr(alert, name, value)
        rule = session.get(AlertRule, alert.rule_id) if alert.rule_id is not None else None
        return alert_notifications.enqueue(session, alert=alert, rule=rule, kind=kind, now=now)


def deliveries(engine: Engine, alert_id: int) -> list[AlertDelivery]:
    with session_factory(engine)() as session:
        return list(
            session.scalars(select(AlertDelivery).where(AlertDelivery.alert_id == alert_id).order_by(AlertDelivery.delivery_id))
        )


def outbox(engine: Engine, alert_id: int) -> list[AlertNotification]:
    with session_factory(engine)() as session:
        return list(
            session.scalars(
                select(AlertNotification)
                .where(AlertNotification.alert_id == alert_id)
                .order_by(AlertNotification.notification_id)
            )
        )


def load_alert(engine: Engine, alert_id: int) -> Alert:
    with session_factory(engine)() as session:
        alert = session.get(Alert, alert_id)
        assert alert is not None
        return alert
