"""The HMAC-SHA256 signature of webhook bodies, and its check for receivers. Pure.

Header (sent when the channel has a ``secret``)::

    X-Fernando-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>

A receiver recomputes the HMAC over the timestamp, a dot and the raw body bytes exactly as received, compares
it in constant time, and refuses a timestamp too far from its clock (replays). ``verify`` does all three.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

__all__ = ["SIGNATURE_HEADER", "sign", "signature_header", "verify"]

SIGNATURE_HEADER = "X-Fernando-Signature"


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """Hex HMAC-SHA256 of ``b"<timestamp>." + body`` under ``secret`` (UTF-8)."""
    return hmac.new(secret.encode("utf-8"), str(timestamp).encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes, *, now: datetime) -> str:
    timestamp = int(now.timestamp())
    return f"t={timestamp},v1={sign(secret, body, timestamp)}"


def verify(secret: str, header: str | None, body: bytes, *, now: datetime, tolerance_s: int = 300) -> bool:
    """True when ``header`` carries a ``v1`` signature of ``body`` under ``secret`` with a timestamp within
    ``tolerance_s`` of ``now``. Unknown parts are ignored, so a later ``v2`` can be added beside ``v1``."""
    if not header:
        return False
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t":
            try:
                timestamp = int(value)
            except ValueError:
                return False
        elif name == "v1":
            candidates.append(value)
    if timestamp is None or not candidates or abs(now.timestamp() - timestamp) > tolerance_s:
        return False
    expected = sign(secret, body, timestamp)
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)
