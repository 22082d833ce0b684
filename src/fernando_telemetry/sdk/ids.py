"""Identifiers the SDK mints: UUIDv7 event ids, W3C trace and span ids. Imports only the standard library.

The generator is a private ``random.Random`` seeded from the OS and reseeded in a forked child, so a host
that calls ``random.seed(...)`` or forks cannot make two processes mint the same ids.
"""

from __future__ import annotations

import os
import random
from datetime import UTC, datetime, timedelta

__all__ = ["new_span_id", "new_trace_id", "uuid7"]

_random = random.Random()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_random.seed)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS_48 = (1 << 48) - 1
_RAND_B = (1 << 62) - 1
_ONE_MS = timedelta(milliseconds=1)


def uuid7(at: datetime) -> str:
    """A time-ordered UUID (RFC 9562 version 7) for the instant ``at``: 48-bit Unix ms, then 74 random bits."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    unix_ms = ((at - _EPOCH) // _ONE_MS) & _MS_48
    rand = _random.getrandbits(74)
    value = unix_ms << 80 | 0x7 << 76 | (rand >> 62) << 64 | 0b10 << 62 | (rand & _RAND_B)
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def new_trace_id() -> str:
    """32 lowercase hex characters, never all zeros."""
    return f"{_random.getrandbits(128) or 1:032x}"


def new_span_id() -> str:
    """16 lowercase hex characters, never all zeros."""
    return f"{_random.getrandbits(64) or 1:016x}"
