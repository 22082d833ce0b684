"""A token bucket per key: ``rate`` items a second, bursts up to ``burst`` items. The clock is passed in."""

from __future__ import annotations

import threading
from dataclasses import dataclass

__all__ = ["KeyedRateLimiter"]


@dataclass
class _Bucket:
    tokens: float
    updated_at: float


class KeyedRateLimiter:
    def __init__(self, *, rate_per_s: float, burst: float) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._buckets: dict[object, _Bucket] = {}
        self._lock = threading.Lock()

    def try_take(self, key: object, amount: float, *, now_s: float) -> float:
        """Take ``amount`` tokens; 0.0 when granted, else the seconds to wait until they would be."""
        if self.rate_per_s <= 0:
            return 0.0
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(self.burst, now_s)
            bucket.tokens = min(self.burst, bucket.tokens + (now_s - bucket.updated_at) * self.rate_per_s)
            bucket.updated_at = now_s
            if bucket.tokens >= amount or (amount > self.burst and bucket.tokens >= self.burst):
                bucket.tokens -= amount
                return 0.0
            return (min(amount, self.burst) - bucket.tokens) / self.rate_per_s
