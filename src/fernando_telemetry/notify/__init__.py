"""Notification channels: email over SMTP, Slack incoming webhooks, generic webhooks (native JSON or
Alertmanager's webhook v4, optionally signed with HMAC-SHA256). Pure formatting plus the two transports
(``smtplib``, ``httpx``); imports only core. Modules:

- ``message``: ``AlertMessage`` (what a notification says) and shared formatting helpers
- ``email_format``, ``slack_format``, ``webhook_format``: the message in each channel's format (pure)
- ``signature``: the ``X-Fernando-Signature`` header and its check
- ``targets``: which webhook URLs may be used, and how a URL is shown masked
- ``smtp``, ``http_post``: the transports; ``result``: ``SendResult``
- ``notifier``: channel values, the ``Notifier`` protocol, ``ChannelNotifier`` and ``RecordingNotifier``
"""

from fernando_telemetry.notify import (
    email_format,
    http_post,
    message,
    notifier,
    result,
    signature,
    slack_format,
    smtp,
    targets,
    webhook_format,
)
from fernando_telemetry.notify.message import AlertMessage, Links
from fernando_telemetry.notify.notifier import (
    Channel,
    ChannelNotifier,
    EmailChannel,
    Notifier,
    RecordingNotifier,
    SlackChannel,
    SmtpDefaults,
    WebhookChannel,
)
from fernando_telemetry.notify.result import SendResult

__all__ = [
    "AlertMessage",
    "Channel",
    "ChannelNotifier",
    "EmailChannel",
    "Links",
    "Notifier",
    "RecordingNotifier",
    "SendResult",
    "SlackChannel",
    "SmtpDefaults",
    "WebhookChannel",
    "email_format",
    "http_post",
    "message",
    "notifier",
    "result",
    "signature",
    "slack_format",
    "smtp",
    "targets",
    "webhook_format",
]
