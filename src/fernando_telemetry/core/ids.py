"""Time-ordered UUIDs (version 7, RFC 9562): new rows land at the right edge of the primary-key index."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable

__all__ = ["uuid7", "uuid7_factory"]


def uuid7(unix_ms: int, random_bytes: bytes) -> uuid.UUID:
    """A version-7 UUID from a Unix time in milliseconds and 10 random bytes."""
    if len(random_bytes) < 10:
        raise ValueError("uuid7 needs 10 random bytes")
    value = (unix_ms & ((1 << 48) - 1)) << 80
    value |= int.from_bytes(random_bytes[:10], "big") & ((1 << 80) - 1)
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # variant
    return uuid.UUID(int=value)


def uuid7_factory(
    clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    entropy: Callable[[int], bytes] = os.urandom,
) -> Callable[[], uuid.UUID]:
    """A generator of version-7 UUIDs; the clock and the entropy source are injectable for tests."""
    return lambda: uuid7(clock_ms(), entropy(10))
