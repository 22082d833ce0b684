"""A token bucket per key: ``rate`` items a second, bursts up to ``burst`` items. The clock is passed in."""

from __future__ import annotations

import threading
from dataclasses import dataclass

__all__ = ["KeyedRateLimiter"]

_PRUNE_AT_KEYS = 10_000
"""Past this many keys, a new key first drops the buckets that have refilled."""


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

    def wait_s(self, key: object, amount: float, *, now_s: float) -> float:
        """The seconds until ``amount`` tokens could be taken (0.0: now), taking none."""
        if self.rate_per_s <= 0:
            return 0.0
        with self._lock:
            bucket = self._buckets.get(key)
            tokens = (
                self.burst if bucket is None else min(self.burst, bucket.tokens + (now_s - bucket.updated_at) * self.rate_per_s)
            )
        return max(0.0, (min(amount, self.burst) - tokens) / self.rate_per_s)

    def try_take(self, key: object, amount: float, *, now_s: float) -> float:
        """Take ``amount`` tokens; 0.0 when granted, else the seconds to wait until they would be."""
        if self.rate_per_s <= 0:
            return 0.0
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= _PRUNE_AT_KEYS:
                    self._forget_full(now_s)
                bucket = self._buckets[key] = _Bucket(self.burst, now_s)
            bucket.tokens = min(self.burst, bucket.tokens + (now_s - bucket.updated_at) * self.rate_per_s)
            bucket.updated_at = now_s
            if bucket.tokens >= amount or (amount > self.burst and bucket.tokens >= self.burst):
                bucket.tokens -= amount
                return 0.0
            return (min(amount, self.burst) - bucket.tokens) / self.rate_per_s

    def _forget_full(self, now_s: float) -> None:
        # a bucket refilled to its burst is the same as no bucket: keys that come and go (client addresses)
        # cannot grow the table without bound
        refill_s = self.burst / self.rate_per_s
        self._buckets = {key: bucket for key, bucket in self._buckets.items() if now_s - bucket.updated_at < refill_s}
