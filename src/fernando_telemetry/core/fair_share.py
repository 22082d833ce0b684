"""Fair shares of one bounded queue among licenses: who holds how many queued items, and whether one more batch of
a license is admitted. Pure bookkeeping (the caller holds the lock); imports nothing but the standard library."""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable
from dataclasses import dataclass

__all__ = ["FairShareRefusal", "QueueShares"]

_MIN_SHARERS = 2
"""The queued items are divided among at least this many licenses: a license alone in the queue still leaves the
upper half of it to the next license that comes (it would otherwise be refused by the hard limit)."""


@dataclass(frozen=True)
class FairShareRefusal:
    """Why a license's batch was refused: what it holds, its share, and what the queue holds."""

    owner: Hashable
    held: int
    share: int
    queued: int
    sharers: int
    capacity: int


class QueueShares:
    """Items queued per owner (a license id; None for admin keys) in a queue of ``capacity`` items.

    Above half full, an owner that already holds more than its fair share (the queued items divided by the owners
    with items queued, counted as at least two) is refused while owners under their share are admitted, so one
    license flooding the queue cannot take the ingest path from the others."""

    def __init__(self, capacity: int, *, fair: bool = True) -> None:
        self.capacity = capacity
        self.fair = fair
        self.queued = 0
        self._held: Counter[Hashable] = Counter()

    def held(self, owner: Hashable) -> int:
        return self._held.get(owner, 0)

    def refusal(self, owner: Hashable) -> FairShareRefusal | None:
        """The reason ``owner`` may not queue more now, or None when it may (the hard capacity is checked apart)."""
        if not self.fair or self.queued * 2 <= self.capacity:
            return None
        sharers = max(_MIN_SHARERS, len(self._held))
        held = self._held.get(owner, 0)
        if held * sharers <= self.queued:  # held <= queued / sharers, in integers
            return None
        return FairShareRefusal(owner, held, self.queued // sharers, self.queued, sharers, self.capacity)

    def add(self, owner: Hashable, items: int) -> None:
        self.queued += items
        if items:
            self._held[owner] += items

    def remove(self, owner: Hashable, items: int) -> None:
        self.queued -= items
        left = self._held.get(owner, 0) - items
        if left > 0:
            self._held[owner] = left
        else:
            # an owner with nothing queued no longer counts among the sharers
            self._held.pop(owner, None)
