"""Test sends: a test message (no alert behind it) to one channel, now, answering how it went.
Imports notify and core; opens no transaction (the caller reads the channel first, then calls with none open).
"""

from __future__ import annotations

from datetime import datetime

from fernando_telemetry.notify.message import channel_test_message
from fernando_telemetry.notify.notifier import Channel, Notifier
from fernando_telemetry.notify.result import SendResult

__all__ = ["send_test"]


def send_test(channel: Channel, *, notifier: Notifier, now: datetime, external_url: str | None = None) -> SendResult:
    """Send a test message (no alert behind it) to ``channel``; call it with no transaction open."""
    return notifier.send(channel, channel_test_message(channel_name=channel.name, now=now, external_url=external_url), now=now)
