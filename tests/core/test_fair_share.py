"""The fair-share rule of the write queue, as a table: who holds what, and who is admitted."""

from __future__ import annotations

import pytest

from fernando_telemetry.core.fair_share import QueueShares


def _shares(capacity: int, held: dict[object, int], *, fair: bool = True) -> QueueShares:
    shares = QueueShares(capacity, fair=fair)
    for owner, items in held.items():
        shares.add(owner, items)
    return shares


class TestQueueShares:
    @pytest.mark.parametrize(
        ("held", "owner", "refused"),
        [
            ({"a": 50}, "a", False),  # exactly half full: everyone admitted
            ({"a": 51}, "a", True),  # a license alone above half: its share is half of the queued rows
            ({"a": 51}, "b", False),  # a newcomer holds nothing: admitted
            ({"a": 90, "b": 5}, "a", True),
            ({"a": 90, "b": 5}, "b", False),
            ({"a": 30, "b": 30, "c": 30}, "a", False),  # equal shares: nobody over
            ({"a": 31, "b": 30, "c": 30}, "a", True),
            ({"a": 31, "b": 30, "c": 30}, "b", False),
            ({None: 80, 7: 10}, None, True),  # admin keys (no license) share the queue as one more owner
        ],
    )
    def test_admission(self, held: dict[object, int], owner: object, refused: bool) -> None:
        """Above half full, an owner holding more than queued / owners (at least two) is refused, the others not."""
        refusal = _shares(100, held).refusal(owner)
        assert (refusal is not None) is refused
        if refusal is not None:
            assert refusal.held == held[owner] and refusal.queued == sum(held.values())

    def test_unfair_queue_admits_everyone(self) -> None:
        """With fairness off, the rule never refuses (the hard capacity is the writer's own check)."""
        assert _shares(100, {"a": 99}, fair=False).refusal("a") is None

    def test_removing_everything_forgets_the_owner(self) -> None:
        """An owner whose rows are all written no longer counts among the sharers."""
        shares = _shares(100, {"a": 60, "b": 10})
        shares.remove("b", 10)
        assert shares.held("b") == 0 and shares.queued == 60
        assert shares.refusal("a") is not None  # alone above half again
        shares.remove("a", 60)
        assert shares.queued == 0 and shares.refusal("a") is None
