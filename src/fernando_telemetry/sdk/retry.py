"""When to try a batch again: status classes, ``Retry-After`` and exponential backoff with jitter. Standard library only."""

from __future__ import annotations

import email.utils
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum

__all__ = ["Outcome", "RetryPolicy", "classify", "retry_after_s"]


class Outcome(Enum):
    COMMITTED = "committed"
    """2xx: the rows are committed."""
    PERMANENT = "permanent"
    """The batch will never be accepted as sent (400, 401, 403, 413, 415, 422, any other 3xx/4xx): drop it."""
    RETRY_AFTER = "retry_after"
    """429 or 503: the server is overloaded and says when to come back."""
    RETRY = "retry"
    """Other 5xx and 408: a transient failure; back off."""


def classify(status_code: int) -> Outcome:
    if 200 <= status_code < 300:
        return Outcome.COMMITTED
    if status_code in (429, 503):
        return Outcome.RETRY_AFTER
    if status_code >= 500 or status_code == 408:
        return Outcome.RETRY
    return Outcome.PERMANENT


def retry_after_s(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retry a batch until ``max_elapsed_s`` after its first attempt, backing off exponentially with jitter."""

    max_elapsed_s: float = 60.0
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 30.0

    def backoff_s(self, retry_number: int, uniform: Callable[[], float]) -> float:
        """Delay before retry ``retry_number`` (0-based): half the exponential ceiling plus up to half again at random."""
        ceiling = min(self.max_backoff_s, self.initial_backoff_s * 2.0 ** min(retry_number, 60))
        return ceiling / 2.0 + uniform() * ceiling / 2.0
