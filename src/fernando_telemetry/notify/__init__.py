"""Notification channels (email, Slack, webhooks). Imports only core."""

__all__: list[str] = []
