"""What one send attempt came to: ``SendResult`` (ok, HTTP status or SMTP reply, error, latency). Imports nothing."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SendResult"]


@dataclass(frozen=True)
class SendResult:
    """The outcome of one attempt to deliver one message to one channel."""

    ok: bool
    http_status: int | None = None
    """The receiver's HTTP status (Slack and webhooks)."""
    smtp_reply: str | None = None
    """The SMTP server's last reply, code first, e.g. ``250 OK`` or ``535 5.7.8 Authentication credentials invalid``."""
    error: str | None = None
    """Why it failed (or, for a partly refused email, which recipients were refused)."""
    latency_ms: float | None = None
    """From opening the connection to the receiver's final answer."""
    retryable: bool = True
    """False when trying again cannot help (a 4xx other than 408/425/429, an SMTP 5xx, a bad target): no retry."""

    @classmethod
    def failure(cls, error: str, *, retryable: bool = True, latency_ms: float | None = None) -> SendResult:
        return cls(ok=False, error=error, retryable=retryable, latency_ms=latency_ms)
