"""Identifiers the SDK mints: UUIDv7 event ids, W3C trace and span ids. Imports only the standard library.

The generator is a private ``random.Random`` seeded from the OS and reseeded in a forked child, so a host
that calls ``random.seed(...)`` or forks cannot make two processes mint the same ids.
"""

from __future__ import annotations

import os
import random
from datetime import UTC, datetime, timedelta

__all__ = ["new_span_id", "new_trace_and_span_id", "new_trace_id", "since_epoch", "unix_ms", "uuid7"]

_random = random.Random()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_random.seed)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_NAIVE = datetime(1970, 1, 1)
_MS_48 = (1 << 48) - 1
_RAND_B = (1 << 62) - 1
_getrandbits = _random.getrandbits


def since_epoch(at: datetime) -> timedelta:
    """The time from the Unix epoch to ``at``; a naive datetime is taken as UTC."""
    try:
        return at - (_EPOCH if at.tzinfo is not None else _EPOCH_NAIVE)
    except TypeError:  # a tzinfo whose utcoffset() is None: naive by Python's rules
        return at.replace(tzinfo=None) - _EPOCH_NAIVE


def unix_ms(at: datetime) -> int:
    """Whole milliseconds from the Unix epoch to ``at`` (floored; a naive datetime is taken as UTC).

    Integer arithmetic on the timedelta: ``at.timestamp() * 1000`` is a float and can land a millisecond short.
    """
    delta = since_epoch(at)
    return delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000


def uuid7(at: datetime) -> str:
    """A time-ordered UUID (RFC 9562 version 7) for the instant ``at``: 48-bit Unix ms, then 74 random bits."""
    rand = _getrandbits(74)
    value = (unix_ms(at) & _MS_48) << 80 | 0x7 << 76 | (rand >> 62) << 64 | 0b10 << 62 | (rand & _RAND_B)
    text = value.to_bytes(16, "big").hex()  # hex() of the bytes: a third of the cost of formatting the int
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def new_trace_id() -> str:
    """32 lowercase hex characters, never all zeros."""
    return (_getrandbits(128) or 1).to_bytes(16, "big").hex()


def new_span_id() -> str:
    """16 lowercase hex characters, never all zeros."""
    return (_getrandbits(64) or 1).to_bytes(8, "big").hex()


_ZERO_TRACE_ID = "0" * 32
_ZERO_SPAN_ID = "0" * 16


def new_trace_and_span_id() -> tuple[str, str]:
    """A new trace id and the id of its root span, from one draw of the generator (a span starting a trace)."""
    text = _getrandbits(192).to_bytes(24, "big").hex()
    trace_id, span_id = text[:32], text[32:]
    if trace_id == _ZERO_TRACE_ID:
        trace_id = new_trace_id()
    if span_id == _ZERO_SPAN_ID:
        span_id = new_span_id()
    return trace_id, span_id
