"""Sending one message to one channel: the channel kinds as values (secrets already decrypted), the
``Notifier`` protocol, the real ``ChannelNotifier`` (SMTP, Slack, webhooks) and the in-memory
``RecordingNotifier`` for tests."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import orjson

from fernando_telemetry.notify.email_format import build_email
from fernando_telemetry.notify.http_post import post_json
from fernando_telemetry.notify.message import AlertMessage
from fernando_telemetry.notify.result import SendResult
from fernando_telemetry.notify.signature import SIGNATURE_HEADER, signature_header
from fernando_telemetry.notify.slack_format import slack_payload
from fernando_telemetry.notify.smtp import SmtpServer, deliver
from fernando_telemetry.notify.targets import TargetPolicy
from fernando_telemetry.notify.webhook_format import alertmanager_payload, native_payload

__all__ = [
    "Channel",
    "ChannelNotifier",
    "EmailChannel",
    "Notifier",
    "RecordingNotifier",
    "SlackChannel",
    "SmtpDefaults",
    "WebhookChannel",
    "webhook_body",
]


@dataclass(frozen=True)
class EmailChannel:
    """Recipients, and either an SMTP server of its own (``smtp_host`` set) or the server's defaults."""

    name: str
    to: tuple[str, ...]
    sender: str | None = None
    smtp_host: str | None = None
    smtp_port: int | None = None
    smtp_security: str | None = None
    smtp_username: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    tls_verify: bool = True
    ca_cert: str | None = None
    type: str = "email"


@dataclass(frozen=True)
class SlackChannel:
    name: str
    webhook_url: str = field(repr=False)
    type: str = "slack"


@dataclass(frozen=True)
class WebhookChannel:
    name: str
    url: str = field(repr=False)
    secret: str | None = field(default=None, repr=False)
    format: str = "native"
    """``native`` or ``alertmanager``"""
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    type: str = "webhook"


Channel = EmailChannel | SlackChannel | WebhookChannel


@dataclass(frozen=True)
class SmtpDefaults:
    """The SMTP server of email channels that name none (from settings, at the entry point)."""

    host: str | None = None
    port: int | None = None
    security: str = "starttls"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sender: str = "fernando-telemetry@localhost"
    local_hostname: str | None = None


class Notifier(Protocol):
    """Sends one message to one channel and says how it went; never raises for a failed delivery."""

    def send(self, channel: Channel, message: AlertMessage, *, now: datetime) -> SendResult: ...


def webhook_body(channel: WebhookChannel, message: AlertMessage, *, now: datetime) -> bytes:
    if channel.format == "alertmanager":
        payload = alertmanager_payload(message, receiver=channel.name)
    else:
        payload = native_payload(message, receiver=channel.name, sent_at=now)
    return orjson.dumps(payload)


class ChannelNotifier:
    """The real thing: email over SMTP, Slack incoming webhooks, generic webhooks (optionally signed)."""

    def __init__(
        self, *, smtp_defaults: SmtpDefaults = SmtpDefaults(), timeout_s: float = 10.0, targets: TargetPolicy | None = None
    ) -> None:
        self._smtp_defaults = smtp_defaults
        self._timeout_s = timeout_s
        self._targets = targets or TargetPolicy()

    def smtp_server(self, channel: EmailChannel) -> SmtpServer | None:
        """The channel's own server when it names one (its credentials only), else the defaults; None if neither."""
        if channel.smtp_host:
            return SmtpServer(
                host=channel.smtp_host,
                port=channel.smtp_port,
                security=channel.smtp_security or "starttls",
                username=channel.smtp_username,
                password=channel.smtp_password,
                timeout_s=self._timeout_s,
                tls_verify=channel.tls_verify,
                ca_cert=channel.ca_cert,
                local_hostname=self._smtp_defaults.local_hostname,
            )
        defaults = self._smtp_defaults
        if not defaults.host:
            return None
        return SmtpServer(
            host=defaults.host,
            port=defaults.port,
            security=defaults.security,
            username=defaults.username,
            password=defaults.password,
            timeout_s=self._timeout_s,
            local_hostname=defaults.local_hostname,
        )

    def send(self, channel: Channel, message: AlertMessage, *, now: datetime) -> SendResult:
        try:
            if isinstance(channel, EmailChannel):
                return self._send_email(channel, message, now=now)
            if isinstance(channel, SlackChannel):
                return post_json(
                    channel.webhook_url,
                    orjson.dumps(slack_payload(message)),
                    headers={},
                    timeout_s=self._timeout_s,
                    targets=self._targets,
                )
            return self._send_webhook(channel, message, now=now)
        except Exception as exc:  # a formatting bug must cost one delivery, not the dispatcher
            return SendResult.failure(f"could not send: {type(exc).__name__}: {exc}", retryable=False)

    def _send_email(self, channel: EmailChannel, message: AlertMessage, *, now: datetime) -> SendResult:
        server = self.smtp_server(channel)
        if server is None:
            return SendResult.failure(
                "no SMTP server: give the channel smtp_host, or set FERNANDO_TELEMETRY_SMTP_HOST", retryable=False
            )
        sender = channel.sender or self._smtp_defaults.sender
        email = build_email(message, sender=sender, recipients=channel.to, now=now)
        # the channel's own server is the tenant's choice: checked like a webhook; the defaults are the operator's
        targets = self._targets if channel.smtp_host else None
        return deliver(server, email, sender=sender, recipients=channel.to, targets=targets)

    def _send_webhook(self, channel: WebhookChannel, message: AlertMessage, *, now: datetime) -> SendResult:
        body = webhook_body(channel, message, now=now)
        headers = dict(channel.headers)
        headers["X-Fernando-Event"] = message.kind
        if message.notification_id is not None:
            headers["X-Fernando-Notification-Id"] = str(message.notification_id)
        if channel.secret:
            headers[SIGNATURE_HEADER] = signature_header(channel.secret, body, now=now)
        return post_json(channel.url, body, headers=headers, timeout_s=self._timeout_s, targets=self._targets)


class RecordingNotifier:
    """Keeps every ``(channel, message)`` it is asked to send and answers from ``results``: a list used in
    order (the last one repeats), a function of the channel and message, or ``ok`` when None."""

    def __init__(self, results: Iterable[SendResult] | Callable[[Channel, AlertMessage], SendResult] | None = None) -> None:
        self._answer = results if callable(results) else None
        self._script = list(results) if results is not None and not callable(results) else []
        self._lock = threading.Lock()
        self.sent: list[tuple[Channel, AlertMessage]] = []

    def send(self, channel: Channel, message: AlertMessage, *, now: datetime) -> SendResult:
        with self._lock:
            self.sent.append((channel, message))
            if self._answer is not None:
                return self._answer(channel, message)
            if not self._script:
                return SendResult(ok=True, latency_ms=0.0)
            return self._script.pop(0) if len(self._script) > 1 else self._script[0]
