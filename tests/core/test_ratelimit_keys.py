"""The keyed token bucket forgets refilled buckets, so many passing keys (client addresses) stay bounded."""

from __future__ import annotations

from fernando_telemetry.core import ratelimit
from fernando_telemetry.core.ratelimit import KeyedRateLimiter


class TestKeyedRateLimiter:
    def test_refilled_buckets_are_forgotten_once_the_table_is_large(self) -> None:
        """Keys seen once and long refilled are dropped when a new key arrives past the threshold."""
        limiter = KeyedRateLimiter(rate_per_s=1.0, burst=2.0)
        for key in range(ratelimit._PRUNE_AT_KEYS):
            assert limiter.try_take(key, 1, now_s=0.0) == 0.0
        assert limiter.try_take("late", 1, now_s=100.0) == 0.0
        assert len(limiter._buckets) == 1

    def test_buckets_still_refilling_are_kept(self) -> None:
        """A key that spent its burst keeps its debt across a prune: pruning never hands out extra tokens."""
        limiter = KeyedRateLimiter(rate_per_s=0.001, burst=2.0)
        assert limiter.try_take("spender", 2, now_s=0.0) == 0.0
        for key in range(ratelimit._PRUNE_AT_KEYS):
            limiter.try_take(key, 1, now_s=1.0)
        assert limiter.try_take("spender", 1, now_s=2.0) > 0
        assert limiter.wait_s("spender", 1, now_s=2.0) > 0
