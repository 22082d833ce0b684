"""Test sends: a test message (no alert behind it) to one channel, now, answering how it went.
``send_test`` opens no transaction (the caller reads the channel first, then calls with none open);
``send_channel_test`` is the use case that does both. Imports notify, core and ``services.notification_channels``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from fernando_telemetry.core.caller import Caller
from fernando_telemetry.notify.message import channel_test_message
from fernando_telemetry.notify.notifier import Channel, Notifier
from fernando_telemetry.notify.result import SendResult
from fernando_telemetry.services import notification_channels
from fernando_telemetry.services.secret_box import SecretBox

__all__ = [
    "send_channel_test",
    "send_test",
]


def send_test(channel: Channel, *, notifier: Notifier, now: datetime, external_url: str | None = None) -> SendResult:
    """Send a test message (no alert behind it) to ``channel``; call it with no transaction open."""
    return notifier.send(channel, channel_test_message(channel_name=channel.name, now=now, external_url=external_url), now=now)


def send_channel_test(
    sessions: sessionmaker[Session],
    *,
    caller: Caller,
    name: str,
    box: SecretBox,
    notifier: Notifier,
    license_id: int | None = None,
    external_url: str | None = None,
) -> SendResult:
    """The use case behind ``POST /api/v1/notification-channels/{name}/test``: the channel read in the caller's scope,
    then the test sent with the transaction closed, so a slow receiver holds no database connection."""
    scope = caller.visible_license(license_id)
    with sessions.begin() as session:
        channel = notification_channels.sendable_by_name(session, license_id=scope, name=name, box=box)
    return send_test(channel, notifier=notifier, now=caller.now(), external_url=external_url)
