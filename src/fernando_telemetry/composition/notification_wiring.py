"""What the notification parts are built from at an entry point (server, jobs, CLI): the ``SecretBox`` from the
secret key, the ``ChannelNotifier`` with the SMTP defaults, the retry policy and the external URL."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from fernando_telemetry.composition import runtime
from fernando_telemetry.notify.notifier import ChannelNotifier, SmtpDefaults
from fernando_telemetry.notify.targets import TargetPolicy, parse_networks
from fernando_telemetry.services import alert_notifications
from fernando_telemetry.services.alert_notifications import DispatchSummary, RetryPolicy
from fernando_telemetry.services.notification_channels import NotificationSetup
from fernando_telemetry.services.secret_box import SecretBox
from fernando_telemetry.settings import Settings

__all__ = ["dispatcher", "external_url", "notifier", "retry_policy", "secret_box", "setup", "target_policy"]


def secret_box(settings: Settings) -> SecretBox:
    """The box sealing channel secrets, keyed by ``runtime.secret_key`` (the setting, or the generated file)."""
    return SecretBox(runtime.secret_key(settings))


def notifier(settings: Settings) -> ChannelNotifier:
    return ChannelNotifier(
        smtp_defaults=SmtpDefaults(
            host=settings.smtp_host,
            port=settings.smtp_port,
            security=settings.smtp_security,
            username=settings.smtp_username,
            password=settings.smtp_password,
            sender=settings.smtp_from,
        ),
        timeout_s=settings.notification_timeout_s,
        targets=target_policy(settings),
    )


def target_policy(settings: Settings) -> TargetPolicy:
    """Public addresses, plus the networks of ``webhook_allowed_networks``."""
    return TargetPolicy(allowed_networks=parse_networks(settings.webhook_allowed_networks))


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=settings.notification_max_attempts,
        backoff_s=settings.notification_backoff_s,
        backoff_max_s=settings.notification_backoff_max_s,
    )


def external_url(settings: Settings) -> str:
    """``external_url``, or the address the server listens on (``0.0.0.0`` shown as ``127.0.0.1``)."""
    if settings.external_url:
        return settings.external_url.rstrip("/")
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{settings.port}"


def dispatcher(settings: Settings) -> Callable[[sessionmaker[Session], datetime], DispatchSummary]:
    """One run of the notification dispatcher as the job calls it; the secret key is read at the first run."""
    notifier_ = notifier(settings)
    policy = retry_policy(settings)
    base_url = external_url(settings)
    boxes: list[SecretBox] = []

    def run(sessions: sessionmaker[Session], now: datetime) -> DispatchSummary:
        if not boxes:
            boxes.append(secret_box(settings))
        return alert_notifications.dispatch_due(
            sessions,
            now=now,
            notifier=notifier_,
            box=boxes[0],
            external_url=base_url,
            policy=policy,
            batch_size=settings.notification_batch_size,
        )

    return run


def setup(settings: Settings, *, secret_key: str | None) -> NotificationSetup:
    """What the channel routes use: a box keyed by ``secret_key`` (None: a key that lives as long as the
    process, as for the dashboard's sessions), the notifier with the SMTP defaults, and the external URL."""
    return NotificationSetup(
        box=SecretBox(secret_key or secrets.token_urlsafe(32)),
        notifier=notifier(settings),
        external_url=external_url(settings),
        targets=target_policy(settings),
    )
