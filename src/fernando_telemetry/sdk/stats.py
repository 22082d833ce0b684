"""``ClientStats``: what became of everything a client recorded. Standard library only."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ClientStats"]


@dataclass(frozen=True, slots=True)
class ClientStats:
    """A snapshot of a client's counters since it started (or since a fork, in the child).

    Every recorded item ends in exactly one of ``sent``, ``rejected``, ``failed`` or ``dropped``; until then it is
    ``queued`` (waiting) or in flight (being exported).
    """

    queued: int = 0
    """Items waiting in the queue now."""
    sent: int = 0
    """Items the server committed."""
    rejected: int = 0
    """Items refused one by one as permanently bad (the server's per-item rejections, or not encodable as JSON)."""
    failed: int = 0
    """Items lost with their batch: a permanent 4xx, or retries that ran out of time."""
    dropped: int = 0
    """Items never queued or pushed out: bad arguments, a full queue (oldest first), recording after shutdown."""
    retries: int = 0
    """Batch attempts made after the first one."""
