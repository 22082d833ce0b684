"""The email of a notification: subject, plain-text body and the ``EmailMessage`` with its headers. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from fernando_telemetry.notify.message import AlertMessage, condition_text, format_value, group_text

__all__ = ["build_email", "email_body", "email_subject"]

_TAGS = {"firing": "FIRING", "resolved": "RESOLVED", "repeat": "STILL FIRING", "test": "TEST"}


def email_subject(message: AlertMessage) -> str:
    """``[FIRING] [critical] High CPU Usage (host=web-1): 93.2 (avg(cpu_usage) over 5 min > 80)``."""
    tag = _TAGS.get(message.kind, message.kind.upper())
    subject = f"[{tag}] [{message.severity}] {message.title}"
    group = group_text(message.group_key)
    if group:
        subject += f" ({group})"
    if message.kind != "test" and message.observed_value is not None:
        subject += f": {format_value(message.observed_value)} ({condition_text(message)})"
    # one header line: no CR/LF may come through from a title or a label
    return " ".join(subject.split())[:250]


def email_body(message: AlertMessage) -> str:
    """The plain-text body: what happened, the figures, the labels and annotations, and the links."""
    lines: list[str] = []
    headline = {
        "firing": f"The alert '{message.title}' is firing.",
        "resolved": f"The alert '{message.title}' is resolved.",
        "repeat": f"The alert '{message.title}' is still firing and nobody has acknowledged it.",
        "test": message.title + ".",
    }.get(message.kind, message.title)
    lines += [headline, ""]
    if message.message:
        lines += [message.message, ""]
    rows: list[tuple[str, str]] = [("Severity", message.severity)]
    if message.kind != "test":
        rows += [
            ("Value", format_value(message.observed_value)),
            ("Condition", condition_text(message)),
            ("Rule", f"{message.rule_name} (#{message.rule_id})" if message.rule_id is not None else message.rule_name),
        ]
        group = group_text(message.group_key)
        if group:
            rows.append(("Group", group))
        if message.affected_service:
            rows.append(("Service", message.affected_service))
        rows.append(("Started", _when(message.starts_at)))
        if message.ends_at is not None:
            rows.append(("Ended", _when(message.ends_at)))
        rows.append(("Status", message.alert_status))
    width = max(len(name) for name, _ in rows) + 2
    lines += [f"{name + ':':<{width}}{value}" for name, value in rows]
    for title, mapping in (("Labels", message.labels), ("Annotations", message.annotations)):
        shown = {key: value for key, value in mapping.items() if key not in ("runbook_url",)}
        if shown:
            lines += ["", f"{title}:"] + [f"  {key} = {shown[key]}" for key in sorted(shown)]
    links = [
        ("Open the alert", message.links.alert_url),
        ("Runbook", message.links.runbook_url),
        ("History and deliveries (API)", message.links.history_url),
    ]
    shown_links = [(name, url) for name, url in links if url]
    if shown_links:
        lines.append("")
        lines += [f"{name}: {url}" for name, url in shown_links]
    footer = "Fernando Telemetry"
    if message.alert_id is not None:
        footer += f" - alert {message.alert_id}"
    if message.notification_id is not None:
        footer += f", notification {message.notification_id}"
    lines += ["", "-- ", footer]
    return "\n".join(lines) + "\n"


def build_email(message: AlertMessage, *, sender: str, recipients: Sequence[str], now: datetime) -> EmailMessage:
    email = EmailMessage()
    email["Subject"] = email_subject(message)
    email["From"] = sender
    email["To"] = ", ".join(recipients)
    email["Date"] = format_datetime(now.astimezone(UTC))
    email["Message-ID"] = make_msgid(domain="fernando-telemetry.invalid")
    email["Auto-Submitted"] = "auto-generated"
    email["X-Fernando-Event"] = message.kind
    if message.alert_id is not None:
        email["X-Fernando-Alert-Id"] = str(message.alert_id)
        email["X-Fernando-Fingerprint"] = message.fingerprint
    if message.notification_id is not None:
        email["X-Fernando-Notification-Id"] = str(message.notification_id)
    email.set_content(email_body(message))
    return email


def _when(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
