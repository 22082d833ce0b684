"""The demo's planned incident: an error burst in the payments service, a while after the traffic starts.

The payments service asks ``Incidents`` whether it is failing; the traffic loop reports when the burst
starts and ends. The clock is injected (monotonic seconds).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Incidents"]


@dataclass
class Incidents:
    """An error burst from ``burst_after_s`` for ``burst_duration_s`` seconds after ``begin()`` (0: never)."""

    burst_after_s: float
    burst_duration_s: float
    monotonic: Callable[[], float] = time.monotonic
    _started_at: float | None = field(default=None, init=False)

    def begin(self) -> None:
        self._started_at = self.monotonic()

    def elapsed_s(self) -> float:
        return 0.0 if self._started_at is None else self.monotonic() - self._started_at

    def payments_failing(self) -> bool:
        if self._started_at is None or self.burst_duration_s <= 0:
            return False
        return self.burst_after_s <= self.elapsed_s() < self.burst_after_s + self.burst_duration_s

    def phase(self) -> str:
        """``before``, ``burst`` or ``after`` the error burst."""
        if self.payments_failing():
            return "burst"
        if self.burst_duration_s > 0 and self.elapsed_s() < self.burst_after_s:
            return "before"
        return "after"
