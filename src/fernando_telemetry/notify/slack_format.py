"""The Slack incoming-webhook message of a notification: a one-line ``text`` (what phones show) and an
attachment coloured by severity holding Block Kit blocks: title, message, severity, value, threshold, group,
start, and the links. Pure."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fernando_telemetry.notify.message import AlertMessage, condition_text, format_value, group_text

__all__ = ["SEVERITY_COLORS", "escape", "slack_payload"]

SEVERITY_COLORS = {"critical": "#b00020", "error": "#e8590c", "warning": "#f2c744", "info": "#1c7ed6"}
RESOLVED_COLOR = "#2f9e44"
_TAGS = {"firing": "FIRING", "resolved": "RESOLVED", "repeat": "STILL FIRING", "test": "TEST"}
_ICONS = {"firing": ":rotating_light:", "resolved": ":white_check_mark:", "repeat": ":repeat:", "test": ":wave:"}


def escape(text: str) -> str:
    """Slack's mrkdwn escaping: ``&``, ``<`` and ``>`` (the link syntax) become entities."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(message: AlertMessage) -> dict[str, Any]:
    tag = _TAGS.get(message.kind, message.kind.upper())
    group = group_text(message.group_key)
    headline = f"[{tag}] {message.title}" + (f" ({group})" if group else "")
    text = f"{headline}: {message.severity}"
    if message.kind != "test":
        text += f", value {format_value(message.observed_value)}, threshold {condition_text(message)}"
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": _cut(f"{_ICONS.get(message.kind, '')} {headline}".strip(), 150),
                "emoji": True,
            },
        },
    ]
    summary = message.annotations.get("summary") or message.message
    if summary:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _cut(escape(summary), 3000)}})
    fields = [("Severity", message.severity)]
    if message.kind != "test":
        fields += [("Value", format_value(message.observed_value)), ("Threshold", condition_text(message))]
        if group:
            fields.append(("Group", group))
        if message.affected_service:
            fields.append(("Service", message.affected_service))
        fields.append(("Started", _slack_date(message.starts_at)))
        if message.ends_at is not None:
            fields.append(("Ended", _slack_date(message.ends_at)))
    blocks.append(
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": _cut(f"*{name}*\n{value if name in ('Started', 'Ended') else escape(value)}", 2000)}
                for name, value in fields[:10]
            ],
        }
    )
    links = [
        (message.links.alert_url, "Open alert"),
        (message.links.runbook_url, "Runbook"),
    ]
    shown = [f"<{url}|{label}>" for url, label in links if url and _linkable(url)]
    context = f"Rule: {escape(message.rule_name)}" if message.kind != "test" else "Fernando Telemetry"
    if shown:
        context += "  |  " + "  ·  ".join(shown)
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _cut(context, 3000)}]})
    color = RESOLVED_COLOR if message.kind == "resolved" else SEVERITY_COLORS.get(message.severity, "#868e96")
    return {"text": text, "attachments": [{"color": color, "fallback": text, "blocks": blocks}]}


def _slack_date(value: datetime) -> str:
    """Slack's date token (shown in the reader's time zone), with a UTC fallback."""
    fallback = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"<!date^{int(value.timestamp())}^{{date_short_pretty}} {{time_secs}}|{fallback}>"


def _linkable(url: str) -> bool:
    # a '|' or '>' inside a URL would break Slack's <url|label> syntax
    return url.startswith(("http://", "https://")) and "|" not in url and ">" not in url


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
